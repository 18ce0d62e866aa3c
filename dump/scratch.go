package dump

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/pgward/pgward/internal/conninfo"
)

// scratchCluster is a throwaway local PostgreSQL for a drill: trust
// authentication on a Unix socket only, no durability.
type scratchCluster struct {
	dir    string
	pgCtl  string
	cred   *syscall.Credential
	params conninfo.Params
	log    *slog.Logger
}

func startScratchCluster(ctx context.Context, tools Tools, major int, log *slog.Logger) (*scratchCluster, error) {
	initdb, err := tools.Find("initdb", major)
	if err != nil {
		return nil, fmt.Errorf("throwaway cluster: %w (or give --drill-target)", err)
	}
	pgCtl, err := tools.Find("pg_ctl", major)
	if err != nil {
		return nil, fmt.Errorf("throwaway cluster: %w (or give --drill-target)", err)
	}
	dir, err := os.MkdirTemp("", "pgward-drill-")
	if err != nil {
		return nil, err
	}
	sc := &scratchCluster{dir: dir, pgCtl: pgCtl, log: log}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root.
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, errRootScratch
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		sc.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	data := filepath.Join(dir, "data")
	if err := sc.run(ctx, initdb, "-D", data, "-U", "pgward", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("throwaway cluster: %w", err)
	}
	opts := fmt.Sprintf("-c listen_addresses='' -k %s -p 5432 -c fsync=off -c full_page_writes=off -c synchronous_commit=off", dir)
	if err := sc.run(ctx, pgCtl, "-D", data, "-l", filepath.Join(dir, "log"), "-w", "-t", "120", "-o", opts, "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		os.RemoveAll(dir)
		return nil, fmt.Errorf("throwaway cluster: %w: %s", err, log)
	}
	for _, kv := range [][2]string{{"host", dir}, {"port", "5432"}, {"user", "pgward"}, {"dbname", "postgres"}} {
		sc.params.Set(kv[0], kv[1])
	}
	return sc, nil
}

func (sc *scratchCluster) run(ctx context.Context, program string, args ...string) error {
	cmd := exec.CommandContext(ctx, program, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: sc.cred}
	cmd.Dir = sc.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", filepath.Base(program), err, out)
	}
	return nil
}

// stop ends the cluster at once (nothing in it is worth a checkpoint) and
// removes it.
func (sc *scratchCluster) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := sc.run(ctx, sc.pgCtl, "-D", filepath.Join(sc.dir, "data"), "-m", "immediate", "-w", "stop"); err != nil {
		sc.log.Warn("drill: could not stop the throwaway cluster", "dir", sc.dir, "err", err)
	}
	os.RemoveAll(sc.dir)
}
