package stream

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgward/pgward/wal"
)

var slotNameRE = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// ValidateSlotName checks a replication slot name as PostgreSQL does.
func ValidateSlotName(name string) error {
	if !slotNameRE.MatchString(name) {
		return fmt.Errorf("invalid slot name %q: use 1 to 63 lower-case letters, digits and underscores", name)
	}
	return nil
}

// slotState is what READ_REPLICATION_SLOT says.
type slotState struct {
	exists   bool
	restart  wal.LSN
	timeline uint32
}

func readSlot(ctx context.Context, conn *pgconn.PgConn, slot string) (slotState, error) {
	rows, err := wal.SimpleQuery(ctx, conn, "READ_REPLICATION_SLOT "+slot)
	if err != nil {
		return slotState{}, fmt.Errorf("READ_REPLICATION_SLOT: %w", err)
	}
	if len(rows) != 1 || len(rows[0]) != 3 || rows[0][0] == nil {
		return slotState{}, nil
	}
	if string(rows[0][0]) != "physical" {
		return slotState{}, fmt.Errorf("replication slot %q is a %s slot; pgward needs a physical one: choose another --slot", slot, rows[0][0])
	}
	st := slotState{exists: true}
	if rows[0][1] != nil {
		if st.restart, err = wal.ParseLSN(string(rows[0][1])); err != nil {
			return slotState{}, err
		}
	}
	if rows[0][2] != nil {
		tli, err := strconv.ParseUint(string(rows[0][2]), 10, 32)
		if err != nil {
			return slotState{}, err
		}
		st.timeline = uint32(tli)
	}
	return st, nil
}

func createSlot(ctx context.Context, conn *pgconn.PgConn, slot string) error {
	_, err := wal.SimpleQuery(ctx, conn, "CREATE_REPLICATION_SLOT "+slot+" PHYSICAL RESERVE_WAL")
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42710" { // duplicate_object: created meanwhile
		return nil
	}
	if err != nil {
		return fmt.Errorf("create replication slot %q: %w", slot, err)
	}
	return nil
}

// resumePoint says where to start streaming to continue stored WAL that
// ends at end (a segment boundary) on timeline tli, given the server's
// current timeline and its history: WAL stored on a timeline beyond the
// point where the server's history left it is not on the server's path,
// so streaming restarts at the segment of that switch point.
func resumePoint(tli uint32, end wal.LSN, server uint32, history []wal.HistoryEntry, segSize uint32) (uint32, wal.LSN, error) {
	seg := func(l wal.LSN) wal.LSN { return l - wal.LSN(uint64(l)%uint64(segSize)) }
	cur, pos := tli, seg(end)
	for cur != server {
		i := -1
		for j, e := range history {
			if e.Parent == cur {
				i = j
			}
		}
		if i < 0 {
			return 0, 0, fmt.Errorf("the repository continues timeline %d, which is not in the history of the server's timeline %d: "+
				"is this server a copy of another history? Use another --cluster", cur, server)
		}
		if pos < history[i].SwitchPoint {
			return cur, pos, nil
		}
		pos = seg(history[i].SwitchPoint)
		if i+1 < len(history) {
			cur = history[i+1].Parent
		} else {
			cur = server
		}
	}
	return cur, pos, nil
}
