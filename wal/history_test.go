package wal_test

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/pgward/pgward/wal"
)

// realHistory is 00000003.history as PostgreSQL writes it after two
// promotions, the second one at a restore point.
const realHistory = "1\t0/3000000\tno recovery target specified\n\n2\t0/5000158\tat restore point \"x\"\n"

func mustParseHistory(t *testing.T, s string) []wal.HistoryEntry {
	t.Helper()
	got, err := wal.ParseHistory(strings.NewReader(s))
	if err != nil {
		t.Fatalf("ParseHistory(%q): %v", s, err)
	}
	return got
}

func TestParseHistory(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []wal.HistoryEntry
	}{
		{"postgres file", realHistory, []wal.HistoryEntry{
			{Parent: 1, SwitchPoint: 0x3000000, Reason: "no recovery target specified"},
			{Parent: 2, SwitchPoint: 0x5000158, Reason: `at restore point "x"`},
		}},
		{"empty", "", nil},
		{"blank lines only", "\n\n  \n\t\n", nil},
		{"comments", "# timeline history\n1\t0/3000000\treason\n  # indented comment\n#2\t0/4000000\tcommented out\n", []wal.HistoryEntry{
			{Parent: 1, SwitchPoint: 0x3000000, Reason: "reason"},
		}},
		{"no trailing newline", "1\t0/3000000\tno recovery target specified", []wal.HistoryEntry{
			{Parent: 1, SwitchPoint: 0x3000000, Reason: "no recovery target specified"},
		}},
		{"CRLF", "1\t0/3000000\tfirst\r\n2\t0/5000158\tsecond\r\n", []wal.HistoryEntry{
			{Parent: 1, SwitchPoint: 0x3000000, Reason: "first"},
			{Parent: 2, SwitchPoint: 0x5000158, Reason: "second"},
		}},
		{"no reason", "1\t0/3000000\n", []wal.HistoryEntry{
			{Parent: 1, SwitchPoint: 0x3000000},
		}},
		{"empty reason", "1\t0/3000000\t\n", []wal.HistoryEntry{
			{Parent: 1, SwitchPoint: 0x3000000},
		}},
		{"reason with tab", "1\t0/3000000\tbefore\tafter\n", []wal.HistoryEntry{
			{Parent: 1, SwitchPoint: 0x3000000, Reason: "before\tafter"},
		}},
		{"reason surrounding space trimmed", "1\t0/3000000\t  padded reason  \n", []wal.HistoryEntry{
			{Parent: 1, SwitchPoint: 0x3000000, Reason: "padded reason"},
		}},
		{"space separated", "1 0/3000000\n2  0/5000158 reason\n", []wal.HistoryEntry{
			{Parent: 1, SwitchPoint: 0x3000000},
			{Parent: 2, SwitchPoint: 0x5000158, Reason: "reason"},
		}},
		{"spaces around tab fields", " 1 \t 0/3000000 \t reason \n", []wal.HistoryEntry{
			{Parent: 1, SwitchPoint: 0x3000000, Reason: "reason"},
		}},
		{"lower case LSN", "1\t16/b374d848\tx\n", []wal.HistoryEntry{
			{Parent: 1, SwitchPoint: 0x16B374D848, Reason: "x"},
		}},
		{"leading zeros in timeline", "0001\t0/3000000\n", []wal.HistoryEntry{
			{Parent: 1, SwitchPoint: 0x3000000},
		}},
		{"gap in timelines", "1\t0/3000000\tx\n4\t0/9000000\ty\n", []wal.HistoryEntry{
			{Parent: 1, SwitchPoint: 0x3000000, Reason: "x"},
			{Parent: 4, SwitchPoint: 0x9000000, Reason: "y"},
		}},
		{"equal switch points", "1\t0/3000000\tx\n2\t0/3000000\ty\n", []wal.HistoryEntry{
			{Parent: 1, SwitchPoint: 0x3000000, Reason: "x"},
			{Parent: 2, SwitchPoint: 0x3000000, Reason: "y"},
		}},
		{"max values", "4294967295\tFFFFFFFF/FFFFFFFF\tend\n", []wal.HistoryEntry{
			{Parent: 0xFFFFFFFF, SwitchPoint: wal.LSN(^uint64(0)), Reason: "end"},
		}},
		{"long history", "1\t0/3000000\ta\n2\t0/5000158\tb\n3\t1/0\tc\n4\t1/100\td\n5\t16/B374D848\te\n", []wal.HistoryEntry{
			{Parent: 1, SwitchPoint: 0x3000000, Reason: "a"},
			{Parent: 2, SwitchPoint: 0x5000158, Reason: "b"},
			{Parent: 3, SwitchPoint: 0x100000000, Reason: "c"},
			{Parent: 4, SwitchPoint: 0x100000100, Reason: "d"},
			{Parent: 5, SwitchPoint: 0x16B374D848, Reason: "e"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := mustParseHistory(t, tc.in)
			if want := tc.want; !reflect.DeepEqual(got, want) {
				t.Errorf("ParseHistory(%q) =\n%+v\nwant\n%+v", tc.in, got, want)
			}
		})
	}
}

func TestParseHistorySpaceSeparatedReason(t *testing.T) {
	got := mustParseHistory(t, "1 0/3000000 no recovery target specified\n")
	want := []wal.HistoryEntry{{Parent: 1, SwitchPoint: 0x3000000, Reason: "no recovery target specified"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestParseHistoryErrors(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantMsg []string
	}{
		{"repeated parent", "1\t0/3000000\tx\n1\t0/4000000\ty\n", []string{"line 2", "does not follow"}},
		{"decreasing parent", "2\t0/3000000\tx\n1\t0/4000000\ty\n", []string{"line 2", "timeline 1 does not follow timeline 2"}},
		{"non-increasing later", "1\t0/3000000\n\n2\t0/4000000\n# c\n2\t0/5000000\n", []string{"line 5", "does not follow"}},
		{"bad LSN", "1\tzz\tx\n", []string{"line 1", "invalid LSN"}},
		{"bad LSN no slash", "1\t3000000\tx\n", []string{"line 1", "invalid LSN"}},
		{"bad LSN empty low", "1\t0/\tx\n", []string{"line 1", "invalid LSN"}},
		{"bad LSN too long", "1\t123456789/0\tx\n", []string{"line 1", "invalid LSN"}},
		{"bad LSN empty", "1\t\tx\n", []string{"line 1", "invalid LSN"}},
		{"bad LSN on later line", realHistory + "3\t0/G\tx\n", []string{"line 4", "invalid LSN"}},
		{"one field", "1\n", []string{"line 1", "timeline<TAB>switch LSN"}},
		{"one field after comments", "# c\n\n1\t0/3000000\n2\n", []string{"line 4", "timeline<TAB>switch LSN"}},
		{"timeline zero", "0\t0/3000000\tx\n", []string{"line 1", "invalid timeline"}},
		{"timeline negative", "-1\t0/3000000\tx\n", []string{"line 1", "invalid timeline"}},
		{"timeline hex", "A\t0/3000000\tx\n", []string{"line 1", "invalid timeline"}},
		{"timeline too large", "4294967296\t0/3000000\tx\n", []string{"line 1", "invalid timeline"}},
		{"timeline empty", "\t0/3000000\tx\n", []string{"line 1"}},
		{"fields swapped", "0/3000000\t1\tx\n", []string{"line 1", "invalid timeline"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := wal.ParseHistory(strings.NewReader(tc.in))
			if err == nil {
				t.Fatalf("ParseHistory(%q) = %+v, want error", tc.in, got)
			}
			if got != nil {
				t.Errorf("ParseHistory(%q) returned %+v with error, want nil", tc.in, got)
			}
			for _, want := range tc.wantMsg {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("ParseHistory(%q) error = %q, want it to contain %q", tc.in, err, want)
				}
			}
		})
	}
}

func TestParseHistoryReadError(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name string
		r    io.Reader
	}{
		{"immediately", iotest.ErrReader(errBoom)},
		{"after data", io.MultiReader(strings.NewReader("1\t0/3000000\tx\n"), iotest.ErrReader(errBoom))},
		{"mid line", io.MultiReader(strings.NewReader("1\t0/30"), iotest.ErrReader(errBoom))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := wal.ParseHistory(tc.r)
			if err == nil {
				t.Fatalf("ParseHistory = %+v, want error", got)
			}
			if !errors.Is(err, errBoom) {
				t.Errorf("error %v does not wrap the read error", err)
			}
			if !strings.Contains(err.Error(), "read history") {
				t.Errorf("error = %q, want it to contain %q", err, "read history")
			}
			if got != nil {
				t.Errorf("got %+v with error, want nil", got)
			}
		})
	}
}

func TestParseHistoryLineTooLong(t *testing.T) {
	in := "1\t0/3000000\t" + strings.Repeat("x", 100<<10) + "\n"
	got, err := wal.ParseHistory(strings.NewReader(in))
	if err == nil {
		t.Fatalf("ParseHistory of a 100 KiB line = %d entries, want error", len(got))
	}
	if !strings.Contains(err.Error(), "read history") {
		t.Errorf("error = %q, want it to contain %q", err, "read history")
	}
}

func TestParseHistoryOneByteReader(t *testing.T) {
	got, err := wal.ParseHistory(iotest.OneByteReader(strings.NewReader(realHistory)))
	if err != nil {
		t.Fatalf("ParseHistory: %v", err)
	}
	if want := mustParseHistory(t, realHistory); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// formatHistory writes entries as PostgreSQL's writeTimeLineHistory does.
func formatHistory(entries []wal.HistoryEntry) string {
	var b strings.Builder
	for i, e := range entries {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "%d\t%s\t%s\n", e.Parent, e.SwitchPoint, e.Reason)
	}
	return b.String()
}

func TestParseHistoryRoundTrip(t *testing.T) {
	entries := mustParseHistory(t, realHistory)
	if got, want := formatHistory(entries), realHistory; got != want {
		t.Errorf("formatted history = %q, want %q", got, want)
	}
}

func FuzzParseHistory(f *testing.F) {
	for _, s := range []string{
		realHistory,
		"",
		"\n",
		"# comment\n1\t0/3000000\n",
		"1 0/3000000 reason\n",
		"1\t0/3000000\tx\n1\t0/4000000\ty\n",
		"1\t0/5000000\tx\n2\t0/3000000\ty\n",
		"1\tzz\tx\n",
		"0\t0/0\n",
		"1\r\n",
		"4294967295\tFFFFFFFF/FFFFFFFF\tend\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		entries, err := wal.ParseHistory(strings.NewReader(s))
		if err != nil {
			if entries != nil {
				t.Fatalf("ParseHistory(%q) returned entries with error %v", s, err)
			}
			return
		}
		for i, e := range entries {
			if e.Parent == 0 {
				t.Fatalf("ParseHistory(%q): entry %d has timeline 0", s, i)
			}
			if i > 0 && e.Parent <= entries[i-1].Parent {
				t.Fatalf("ParseHistory(%q): entry %d %+v does not follow %+v", s, i, e, entries[i-1])
			}
			if strings.TrimSpace(e.Reason) != e.Reason {
				t.Fatalf("ParseHistory(%q): reason %q not trimmed", s, e.Reason)
			}
		}
		// What was parsed, written back in PostgreSQL's format, parses
		// to the same entries.
		again, err := wal.ParseHistory(strings.NewReader(formatHistory(entries)))
		if err != nil {
			t.Fatalf("reparse of %q: %v", formatHistory(entries), err)
		}
		if len(again) != len(entries) || (len(entries) > 0 && !reflect.DeepEqual(again, entries)) {
			t.Fatalf("ParseHistory(%q) = %+v, reparsed as %+v", s, entries, again)
		}
	})
}

// PostgreSQL writes switch points out of order when a recovery stopped on
// a timeline before that timeline's parent's switch (seen in the stream
// e2e test): such a history must parse.
func TestParseHistoryAcceptsEarlierSwitchPoints(t *testing.T) {
	got, err := wal.ParseHistory(strings.NewReader("1\t0/B0000A0\tno recovery target specified\n2\t0/ABA5A98\tbefore 2026-11-21\n"))
	if err != nil || len(got) != 2 || got[1].SwitchPoint != 0xABA5A98 {
		t.Fatalf("ParseHistory = %+v, %v", got, err)
	}
}
