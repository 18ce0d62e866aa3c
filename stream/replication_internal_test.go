package stream

import (
	"testing"

	"github.com/pgward/pgward/wal"
)

func TestResumePoint(t *testing.T) {
	const seg = 16 << 20
	lsn := func(s string) wal.LSN {
		l, err := wal.ParseLSN(s)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	// Timeline 1 ended at 0/A0000A0 (in segment 0A); 2 ended at 0/C123456.
	history := []wal.HistoryEntry{{Parent: 1, SwitchPoint: lsn("0/A0000A0")}, {Parent: 2, SwitchPoint: lsn("0/C123456")}}
	for _, tc := range []struct {
		name     string
		tli      uint32
		end      string
		server   uint32
		history  []wal.HistoryEntry
		wantTLI  uint32
		wantFrom string
		wantErr  bool
	}{
		{"same timeline", 1, "0/5000000", 1, nil, 1, "0/5000000", false},
		{"before the switch: finish the old timeline", 1, "0/9000000", 3, history, 1, "0/9000000", false},
		{"in the switch segment: the old timeline up to the switch", 1, "0/A000000", 3, history, 1, "0/A000000", false},
		{"past the switch on the old timeline: restart at the switch segment", 1, "0/B000000", 3, history, 2, "0/A000000", false},
		{"far past two switches: nothing held on timeline 2 yet", 1, "0/F000000", 3, history, 2, "0/A000000", false},
		{"past the second switch on the middle timeline", 2, "0/E000000", 3, history, 3, "0/C000000", false},
		{"on the middle timeline", 2, "0/B000000", 3, history, 2, "0/B000000", false},
		{"a timeline the server never had", 7, "0/B000000", 3, history, 0, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tli, from, err := resumePoint(tc.tli, lsn(tc.end), tc.server, tc.history, seg)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("resumePoint = %d, %s; want an error", tli, from)
				}
				return
			}
			if err != nil || tli != tc.wantTLI || from != lsn(tc.wantFrom) {
				t.Fatalf("resumePoint = %d, %s, %v; want %d, %s", tli, from, err, tc.wantTLI, tc.wantFrom)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]uint64{"16MB": 16 << 20, "1GB": 1 << 30, "64kB": 64 << 10, "1048576": 1 << 20} {
		if got, err := wal.ParseSizeSetting(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}

func TestValidateSlotName(t *testing.T) {
	for name, ok := range map[string]bool{"pgward": true, "slot_2": true, "": false, "Bad": false, "a-b": false, "x; DROP": false} {
		if err := ValidateSlotName(name); (err == nil) != ok {
			t.Errorf("ValidateSlotName(%q) = %v, want ok=%v", name, err, ok)
		}
	}
}
