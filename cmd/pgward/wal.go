package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/pgward/pgward/archive"
	"github.com/pgward/pgward/wal"
)

func walPushCommand() *cli.Command {
	return &cli.Command{
		Name:      "wal-push",
		Usage:     "store one WAL file (PostgreSQL's archive_command)",
		ArgsUsage: "WAL_FILE_PATH",
		Description: `Compresses, encrypts and stores one WAL segment, .partial, .history or .backup
file under its own name. Use it as PostgreSQL's archive_command:

   archive_command = 'pgward --config /etc/pgward/pgward.yaml wal-push %p'

Exit status 0 means the file is safely stored: written completely and synced,
or already stored with identical content. Different content already stored
under the same name is an error and nothing is overwritten. The first segment
pushed records the system identifier in <cluster>/cluster.json; segments from
any other PostgreSQL system are refused.

With --push-ahead N, when more files wait in pg_wal/archive_status (a
backlog after an outage), it stores up to N of them too, --push-jobs at a
time, and PostgreSQL's calls for them then return as soon as they find them
stored: for a repository far away, where each object costs round trips.

Needs a recipient (--recipient / PGWARD_RECIPIENT) or --no-encryption.`,
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "push-ahead", Value: defaultPushAhead, EnvVars: []string{"PGWARD_PUSH_AHEAD"},
				Usage: "also store up to `N` more files waiting in archive_status (0: only the one asked for)"},
			&cli.IntFlag{Name: "push-jobs", Value: defaultPushJobs, EnvVars: []string{"PGWARD_PUSH_JOBS"},
				Usage: "store at most `N` files at once when pushing ahead"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("wal-push takes one argument, the WAL file path (%%p), got %d", c.NArg())
			}
			a, log, err := archiveFor(c, true, false)
			if err != nil {
				return err
			}
			limitMemory(walMemoryLimit)
			path := c.Args().First()
			// archive_command passes pg_wal/<file>: PGDATA's pg_control then
			// says which system the file belongs to, history files included.
			if dir := filepath.Dir(path); filepath.Base(dir) == "pg_wal" {
				control := filepath.Join(dir, "..", "global", "pg_control")
				if sysid, err := wal.ReadControlSystemIdentifier(control); err == nil {
					a.SystemIdentifier = sysid
				} else if !errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("check system identifier: %w", err)
				}
			}
			ahead, jobs := c.Int("push-ahead"), c.Int("push-jobs")
			if ahead < 0 || ahead > 256 {
				return fmt.Errorf("--push-ahead %d: want 0 to 256", ahead)
			}
			if jobs < 1 || jobs > 32 {
				return fmt.Errorf("--push-jobs %d: want 1 to 32", jobs)
			}
			_, err = a.PushAhead(c.Context, path, archive.ReadyAfter(path, ahead), jobs, func(name string, err error) {
				log.Warn("could not store ahead; PostgreSQL's own call will", "segment", name, "err", err)
			})
			return err
		},
	}
}

// Defaults for wal-push. Pushing ahead is off: on 2 cores with a local
// repository or MinIO it measured 10-20% slower than one file at a time
// (compression, not the repository, is the limit there); it pays where
// each object costs round trips to a store far away.
const (
	defaultPushAhead = 0
	defaultPushJobs  = 2
)

// Defaults for wal-fetch.
const defaultPrefetch = 8

func walFetchCommand() *cli.Command {
	return &cli.Command{
		Name:      "wal-fetch",
		Usage:     "fetch one WAL file for recovery (PostgreSQL's restore_command)",
		ArgsUsage: "WAL_FILE_NAME DESTINATION_PATH",
		Description: `Fetches WAL file %f from the repository, decrypts and decompresses it, checks
it against the checksum stored with it, and writes it to %p. Use it as
PostgreSQL's restore_command:

   restore_command = 'pgward --config /etc/pgward/pgward.yaml wal-fetch %f %p'

Exit status: 0 when the file was written; 1 when the repository does not hold
it (PostgreSQL then ends recovery); 255 on any real error (storage unreachable,
wrong key, corrupt object), which makes PostgreSQL stop instead of promoting at
the wrong point. A partial file is never left at the destination.

While PostgreSQL replays one segment, the next --prefetch segments are fetched
in parallel by a background pgward into --spool-dir, and later calls are
served from there.

Reading encrypted objects needs --identity-file / PGWARD_IDENTITY_FILE.`,
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "prefetch", EnvVars: []string{"PGWARD_PREFETCH"}, Value: defaultPrefetch, Usage: "fetch up to `N` following segments ahead, in parallel (0 turns prefetching off)"},
			&cli.StringFlag{Name: "spool-dir", EnvVars: []string{"PGWARD_SPOOL_DIR"}, Usage: "keep prefetched segments in `DIR` (default: .pgward-prefetch next to the destination, inside pg_wal)"},
		},
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			return withStatus(exitFatal, flagUsageError(c, err, false))
		},
		Action: func(c *cli.Context) error {
			// Every failure but "not in the repository" must exit above 125.
			return withStatus(exitFatal, walFetch(c))
		},
	}
}

func walFetch(c *cli.Context) error {
	if c.NArg() != 2 {
		return fmt.Errorf("wal-fetch takes two arguments, the WAL file name (%%f) and the destination path (%%p), got %d", c.NArg())
	}
	name, dest := c.Args().Get(0), c.Args().Get(1)
	fn, err := wal.ParseFileName(name)
	if err != nil {
		return err
	}
	limitMemory(walMemoryLimit)
	prefetch := c.Int("prefetch")
	if prefetch < 0 || prefetch > 256 {
		return fmt.Errorf("--prefetch %d: want 0 to 256", prefetch)
	}
	s := settingsFrom(c)
	a, log, err := archiveFor(c, false, true)
	if err != nil {
		return err
	}
	archive.RemoveStaleTemps(filepath.Dir(dest), 10*time.Minute)

	if fn.Kind != wal.KindSegment || prefetch == 0 {
		return fetchOrNotFound(a.Fetch(c.Context, name, dest))
	}
	spool := archive.Spool{Dir: c.String("spool-dir")}
	if spool.Dir == "" {
		spool.Dir = filepath.Join(filepath.Dir(dest), ".pgward-prefetch")
	}
	// The spool is an optimisation: when it fails, fetch directly.
	took := false
	if err := spool.Claim(s.Cluster + " " + s.Repo); err != nil {
		log.Warn("prefetch spool unusable", "err", err)
	} else if took, err = spool.Await(c.Context, name, dest, 30*time.Second); err != nil {
		log.Warn("prefetch spool unusable", "err", err)
		took = false
	}
	if took {
		log.Debug("served from the prefetch spool", "segment", name)
	} else if err := a.Fetch(c.Context, name, dest); err != nil {
		return fetchOrNotFound(err)
	}
	// The segment is in place; recovery can go on. Keep the window ahead
	// of it full. A failure here only costs speed, never correctness.
	fi, err := os.Stat(dest)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", name, err)
	}
	if err := spool.Want(name); err != nil {
		log.Warn("prefetch disabled", "err", err)
		return nil
	}
	if !spool.Busy() {
		if err := startPrefetcher(s, spool, prefetch, fi.Size()); err != nil {
			log.Warn("prefetch disabled", "err", err)
		}
	}
	return nil
}

// fetchOrNotFound maps "not in the repository" to exit status 1, which
// PostgreSQL reads as the end of the archive.
func fetchOrNotFound(err error) error {
	if errors.Is(err, archive.ErrNotFound) {
		return withStatus(exitNotFound, errSilent)
	}
	return err
}

// startPrefetcher starts a detached `pgward wal-prefetch`, which outlives
// this call: PostgreSQL waits for restore_command to exit before replaying.
// Settings travel in the environment, never on the command line.
func startPrefetcher(s settings, spool archive.Spool, count int, segSize int64) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	logFile, err := os.OpenFile(filepath.Join(spool.Dir, "prefetch.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(exe, "wal-prefetch", "--spool-dir", spool.Dir,
		"--prefetch", strconv.Itoa(count), "--segment-size", strconv.FormatInt(segSize, 10))
	cmd.Env = append(os.Environ(), s.env()...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	return cmd.Process.Release()
}

func walPrefetchCommand() *cli.Command {
	return &cli.Command{
		Name:   "wal-prefetch",
		Usage:  "fill wal-fetch's prefetch spool (started by wal-fetch)",
		Hidden: true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "spool-dir", Required: true},
			&cli.IntFlag{Name: "prefetch", Value: defaultPrefetch},
			&cli.Int64Flag{Name: "segment-size", Value: wal.DefaultSegmentSize},
		},
		Action: func(c *cli.Context) error {
			segSize := c.Int64("segment-size")
			if segSize > wal.MaxSegmentSize || !wal.ValidSegmentSize(uint32(segSize)) {
				return fmt.Errorf("invalid --segment-size %d", segSize)
			}
			a, _, err := archiveFor(c, false, true)
			if err != nil {
				return err
			}
			return a.Prefetch(c.Context, archive.Spool{Dir: c.String("spool-dir")}, c.Int("prefetch"), uint32(segSize))
		},
	}
}
