package wal

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// HistoryEntry is one line of a timeline history file: timeline Parent
// ended at SwitchPoint, where its child began.
type HistoryEntry struct {
	Parent      uint32
	SwitchPoint LSN
	Reason      string
}

// ParseHistory parses a timeline history file (TTTTTTTT.history). Entries
// come in file order, oldest first; each parent must be greater than the
// one before.
func ParseHistory(r io.Reader) ([]HistoryEntry, error) {
	var out []HistoryEntry
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.SplitN(text, "\t", 3)
		if len(fields) < 2 {
			// Not tab-separated: split on the first two runs of blanks.
			fields = splitBlanks(text, 3)
			if len(fields) < 2 {
				return nil, fmt.Errorf("history line %d: want \"timeline<TAB>switch LSN<TAB>reason\"", line)
			}
		}
		tli, err := strconv.ParseUint(strings.TrimSpace(fields[0]), 10, 32)
		if err != nil || tli == 0 {
			return nil, fmt.Errorf("history line %d: invalid timeline %q", line, fields[0])
		}
		lsn, err := ParseLSN(strings.TrimSpace(fields[1]))
		if err != nil {
			return nil, fmt.Errorf("history line %d: %w", line, err)
		}
		e := HistoryEntry{Parent: uint32(tli), SwitchPoint: lsn}
		if len(fields) == 3 {
			e.Reason = strings.TrimSpace(fields[2])
		}
		// PostgreSQL does not order switch points: a timeline that left its
		// parent before the parent's own switch (a recovery stopped early)
		// has a smaller one. Only timelines must grow.
		if n := len(out); n > 0 && e.Parent <= out[n-1].Parent {
			return nil, fmt.Errorf("history line %d: timeline %d does not follow timeline %d", line, e.Parent, out[n-1].Parent)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	return out, nil
}

// splitBlanks splits s at runs of spaces or tabs into at most n fields.
func splitBlanks(s string, n int) []string {
	var out []string
	for len(out) < n-1 {
		s = strings.TrimLeft(s, " \t")
		i := strings.IndexAny(s, " \t")
		if i < 0 {
			break
		}
		out = append(out, s[:i])
		s = s[i:]
	}
	if s = strings.TrimSpace(s); s != "" {
		out = append(out, s)
	}
	return out
}
