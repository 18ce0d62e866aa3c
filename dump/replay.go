package dump

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/pgward/pgward/internal/conninfo"
)

// pauseReplay pauses WAL replay on a standby and returns the function
// that resumes it. The resume runs on its own connection and context, so
// it works after pg_dump failed, the dump's connection broke or pgward
// was asked to stop; it retries, and says loudly when it cannot. Replay
// that was already paused (by someone else) is left paused.
func pauseReplay(ctx context.Context, params conninfo.Params, log *slog.Logger) (resume func(), err error) {
	conn, err := connect(ctx, params, "")
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var state string
	if err := conn.QueryRow(ctx, "SELECT pg_get_wal_replay_pause_state()").Scan(&state); err != nil {
		return nil, fmt.Errorf("--pause-replay: %w", err)
	}
	if state != "not paused" {
		log.Warn("WAL replay on the standby was already paused; leaving it as it is", "state", state)
		return func() {}, nil
	}
	if _, err := conn.Exec(ctx, "SELECT pg_wal_replay_pause()"); err != nil {
		return nil, fmt.Errorf("--pause-replay: pause WAL replay: %w (the dump role needs EXECUTE on pg_wal_replay_pause and pg_wal_replay_resume)", err)
	}
	resume = func() {
		for attempt := 1; attempt <= 5; attempt++ {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
			err := resumeReplay(rctx, params)
			cancel()
			if err == nil {
				log.Info("WAL replay resumed")
				return
			}
			log.Warn("could not resume WAL replay; retrying", "attempt", attempt, "err", err)
			time.Sleep(time.Duration(attempt) * time.Second)
		}
		log.Error("WAL replay on the standby is still PAUSED: run SELECT pg_wal_replay_resume() on it now, or the replica falls behind")
	}
	// Replay pauses at its next record; a dump begun before that could
	// still meet a conflict. Wait until it has.
	deadline := time.Now().Add(30 * time.Second)
	for state != "paused" {
		if time.Now().After(deadline) {
			resume()
			return nil, fmt.Errorf("--pause-replay: replay did not pause within 30 s (state %q)", state)
		}
		select {
		case <-ctx.Done():
			resume()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if err := conn.QueryRow(ctx, "SELECT pg_get_wal_replay_pause_state()").Scan(&state); err != nil {
			resume()
			return nil, fmt.Errorf("--pause-replay: %w", err)
		}
	}
	log.Info("WAL replay paused for the dump")
	return resume, nil
}

func resumeReplay(ctx context.Context, params conninfo.Params) error {
	conn, err := connect(ctx, params, "")
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "SELECT pg_wal_replay_resume()")
	return err
}
