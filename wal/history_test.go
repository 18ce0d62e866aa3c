package wal_test

import (
	"bytes"
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

// PostgreSQL writes switch points out of order when a recovery stopped on
// a timeline before that timeline's parent's switch (seen in the stream
// e2e test): such a history must parse.
func TestParseHistoryAcceptsEarlierSwitchPoints(t *testing.T) {
	got, err := wal.ParseHistory(strings.NewReader("1\t0/B0000A0\tno recovery target specified\n2\t0/ABA5A98\tbefore 2026-11-21\n"))
	if err != nil || len(got) != 2 || got[1].SwitchPoint != 0xABA5A98 {
		t.Fatalf("ParseHistory = %+v, %v", got, err)
	}
}

// earlierSwitchHistory is 00000003.history as PostgreSQL wrote it in the
// stream e2e test: timeline 2 was left before timeline 1's switch.
const earlierSwitchHistory = "1\t0/B0000A0\tno recovery target specified\n\n2\t0/ABA5A98\tbefore 2026-11-21 10:04:31.130712+00\n"

func TestValidateHistory(t *testing.T) {
	tests := []struct {
		name string
		tli  uint32
		in   string
		want []wal.HistoryEntry
	}{
		{"postgres file", 3, realHistory, []wal.HistoryEntry{
			{Parent: 1, SwitchPoint: 0x3000000, Reason: "no recovery target specified"},
			{Parent: 2, SwitchPoint: 0x5000158, Reason: `at restore point "x"`},
		}},
		{"first promotion", 2, "1\t0/3000158\tno recovery target specified\n", []wal.HistoryEntry{
			{Parent: 1, SwitchPoint: 0x3000158, Reason: "no recovery target specified"},
		}},
		{"parent below tli-1", 4, "1\t0/3000000\tx\n\n2\t0/5000158\ty\n", []wal.HistoryEntry{
			{Parent: 1, SwitchPoint: 0x3000000, Reason: "x"},
			{Parent: 2, SwitchPoint: 0x5000158, Reason: "y"},
		}},
		// PostgreSQL writes and reads these: refusing them would stop
		// archiving.
		{"earlier switch point", 3, earlierSwitchHistory, []wal.HistoryEntry{
			{Parent: 1, SwitchPoint: 0xB0000A0, Reason: "no recovery target specified"},
			{Parent: 2, SwitchPoint: 0xABA5A98, Reason: "before 2026-11-21 10:04:31.130712+00"},
		}},
		{"equal switch points", 3, "1\t0/3000000\tx\n2\t0/3000000\ty\n", []wal.HistoryEntry{
			{Parent: 1, SwitchPoint: 0x3000000, Reason: "x"},
			{Parent: 2, SwitchPoint: 0x3000000, Reason: "y"},
		}},
		// CRLF: PostgreSQL reads '\r' as blank space; accepted.
		{"CRLF", 3, "1\t0/3000000\tfirst\r\n\r\n2\t0/5000158\tsecond\r\n", []wal.HistoryEntry{
			{Parent: 1, SwitchPoint: 0x3000000, Reason: "first"},
			{Parent: 2, SwitchPoint: 0x5000158, Reason: "second"},
		}},
		// A bare CR ends no line, for PostgreSQL as here: the rest is
		// the reason.
		{"bare CR", 3, "1\t0/3000000\tx\r2\t0/5000158\ty\r", []wal.HistoryEntry{
			{Parent: 1, SwitchPoint: 0x3000000, Reason: "x\r2\t0/5000158\ty"},
		}},
		{"comments and blanks", 2, "# made by hand\n\n  \t\n1\t0/3000000\tx\n# end\n", []wal.HistoryEntry{
			{Parent: 1, SwitchPoint: 0x3000000, Reason: "x"},
		}},
		{"no reason", 2, "1\t0/3000000\n", []wal.HistoryEntry{{Parent: 1, SwitchPoint: 0x3000000}}},
		{"no trailing newline", 2, "1\t0/3000000\tx", []wal.HistoryEntry{{Parent: 1, SwitchPoint: 0x3000000, Reason: "x"}}},
		{"spaces for tabs", 3, "1 0/3000000 x y\n2 \t0/5000158\tz\n", []wal.HistoryEntry{
			{Parent: 1, SwitchPoint: 0x3000000, Reason: "x y"},
			{Parent: 2, SwitchPoint: 0x5000158, Reason: "z"},
		}},
		{"lower case LSN", 2, "1\t16/b374d848\tx\n", []wal.HistoryEntry{{Parent: 1, SwitchPoint: 0x16B374D848, Reason: "x"}}},
		{"largest values", 0xFFFFFFFF, "4294967294\tFFFFFFFF/FFFFFFFF\tend\n", []wal.HistoryEntry{
			{Parent: 0xFFFFFFFE, SwitchPoint: wal.LSN(^uint64(0)), Reason: "end"},
		}},
		{"longest line", 2, "1\t0/3000000\t" + strings.Repeat("r", 1023-len("1\t0/3000000\t")) + "\n", []wal.HistoryEntry{
			{Parent: 1, SwitchPoint: 0x3000000, Reason: strings.Repeat("r", 1023-len("1\t0/3000000\t"))},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := wal.ValidateHistory(tc.tli, []byte(tc.in))
			if err != nil {
				t.Fatalf("ValidateHistory(%d, %q): %v", tc.tli, tc.in, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ValidateHistory(%d, %q) =\n%+v\nwant\n%+v", tc.tli, tc.in, got, tc.want)
			}
			// What it accepts, ParseHistory reads the same.
			if parsed := mustParseHistory(t, tc.in); !reflect.DeepEqual(parsed, got) {
				t.Errorf("ParseHistory = %+v, ValidateHistory = %+v", parsed, got)
			}
		})
	}
}

func TestValidateHistoryErrors(t *testing.T) {
	tests := []struct {
		name     string
		tli      uint32
		in       string
		wantLine int
		wantMsg  []string
	}{
		{"junk", 2, "junk\n", 1, []string{`00000002.history: line 1 "junk"`, "want \"<parent timeline><TAB><switch LSN><TAB><reason>\""}},
		{"empty", 2, "", 0, []string{"no timeline entries"}},
		{"blank lines only", 2, "\n\n \t\r\n", 0, []string{"no timeline entries"}},
		{"comments only", 2, "# 1\t0/3000000\tx\n", 0, []string{"no timeline entries"}},
		{"timeline one", 1, "1\t0/3000000\tx\n", 0, []string{"timeline 1 has no history file"}},
		{"timeline zero", 0, "1\t0/3000000\tx\n", 0, []string{"timeline 0 does not exist"}},
		{"descending", 4, "2\t0/3000000\tx\n1\t0/5000000\ty\n", 2, []string{"timeline 1 does not follow timeline 2"}},
		{"repeated", 4, "1\t0/3000000\tx\n\n1\t0/5000000\ty\n", 3, []string{"timeline 1 does not follow timeline 1"}},
		{"parent equal to own", 2, "2\t0/3000000\tx\n", 1, []string{"timeline 2 is not below the file's own timeline 2"}},
		{"parent above own", 3, "1\t0/3000000\tx\n\n7\t0/5000000\ty\n", 3, []string{"timeline 7 is not below the file's own timeline 3"}},
		{"parent zero", 2, "0\t0/3000000\tx\n", 1, []string{"timeline 0 does not exist"}},
		{"huge timeline", 0xFFFFFFFF, "4294967296\t0/3000000\tx\n", 1, []string{"timeline 4294967296 is out of range"}},
		{"enormous timeline", 2, "99999999999999999999999999\t0/3000000\tx\n", 1, []string{"out of range"}},
		{"huge LSN high half", 2, "1\t100000000/0\tx\n", 1, []string{`switch point "100000000/0" is not an LSN`}},
		{"huge LSN low half", 2, "1\t0/100000000\tx\n", 1, []string{"is not an LSN"}},
		{"negative timeline", 2, "-1\t0/3000000\tx\n", 1, []string{"want \"<parent timeline>"}},
		{"hex timeline", 2, "0x1\t0/3000000\tx\n", 1, []string{"want \"<parent timeline>"}},
		{"no LSN", 2, "1\n", 1, []string{"no switch point after timeline 1"}},
		{"no LSN after blanks", 2, "1 \t \n", 1, []string{"no switch point after timeline 1"}},
		{"LSN without slash", 2, "1\t3000000\tx\n", 1, []string{`switch point "3000000" is not an LSN`}},
		{"LSN with 0x", 2, "1\t0x0/3000000\tx\n", 1, []string{"is not an LSN"}},
		{"garbage after LSN", 2, "1\t0/3000000junk\n", 1, []string{`switch point "0/3000000junk"`}},
		{"garbage after timeline", 2, "1x\t0/3000000\n", 1, []string{"want \"<parent timeline>"}},
		{"trailing garbage line", 3, realHistory + "garbage\n", 4, []string{`line 4 "garbage"`}},
		{"trailing garbage no newline", 3, realHistory + "\x7fELF", 4, []string{"line 4"}},
		{"NUL byte", 2, "1\t0/3000000\tx\x00y\n", 1, []string{"holds a NUL byte"}},
		{"NUL in comment", 2, "# \x00\n1\t0/3000000\tx\n", 1, []string{"holds a NUL byte"}},
		{"line too long", 2, "1\t0/3000000\t" + strings.Repeat("r", 1024-len("1\t0/3000000\t")) + "\n", 1, []string{"1024 bytes long"}},
		{"line too long with CR", 2, "1\t0/3000000\t" + strings.Repeat("r", 1023-len("1\t0/3000000\t")) + "\r\n", 1, []string{"1024 bytes long"}},
		{"too big", 2, "1\t0/3000000\tx\n" + strings.Repeat("#\n", wal.MaxHistorySize/2), 0, []string{"more than the 1048576"}},
		{"BOM", 2, "\ufeff1\t0/3000000\tx\n", 1, []string{"want \"<parent timeline>"}},
		{"non-breaking space before timeline", 2, "\u00a01\t0/3000000\tx\n", 1, []string{"want \"<parent timeline>"}},
		{"vertical tab separator", 2, "1\v0/3000000\tx\n", 1, []string{"want \"<parent timeline>"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := wal.ValidateHistory(tc.tli, []byte(tc.in))
			if err == nil {
				t.Fatalf("ValidateHistory(%d, %q) = %+v, want error", tc.tli, tc.in, got)
			}
			if got != nil {
				t.Errorf("entries %+v returned with error", got)
			}
			if !errors.Is(err, wal.ErrInvalidHistory) {
				t.Errorf("error %v does not match ErrInvalidHistory", err)
			}
			var he *wal.HistoryError
			if !errors.As(err, &he) {
				t.Fatalf("error %v is not a *HistoryError", err)
			}
			if he.Line != tc.wantLine || he.TLI != tc.tli {
				t.Errorf("error names line %d of timeline %d, want line %d of %d: %v", he.Line, he.TLI, tc.wantLine, tc.tli, err)
			}
			for _, want := range tc.wantMsg {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error = %q, want it to contain %q", err, want)
				}
			}
			if len(err.Error()) > 400 {
				t.Errorf("error is %d bytes long: %.100q...", len(err.Error()), err)
			}
		})
	}
}

// `echo junk > 00000002.history` is refused with a message that says
// which line is wrong and what it should be.
func TestValidateHistoryJunkMessage(t *testing.T) {
	_, err := wal.ValidateHistory(2, []byte("junk\n"))
	want := `invalid history file 00000002.history: line 1 "junk": want "<parent timeline><TAB><switch LSN><TAB><reason>", a '#' comment or a blank line`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant    %s", err, want)
	}
}

// pgEntry is what PostgreSQL keeps of a history line.
type pgEntry struct {
	tli uint32
	lsn uint64
}

// pgReadHistory models readTimeLineHistory (src/backend/access/transam/
// timeline.c) for the file of timeline target: fgets into a 1024-byte
// buffer, skip blank and '#' lines, sscanf(line, "%u\t%X/%X"), timelines
// increasing and below target. ok is false where PostgreSQL stops with
// FATAL.
func pgReadHistory(content []byte, target uint32) (out []pgEntry, ok bool) {
	isspace := func(c byte) bool { return c == ' ' || (c >= '\t' && c <= '\r') }
	// scan is scanf's %u or %X (strtoul): blanks, a sign, for base 16 an
	// optional 0x, digits; the value is cut to 32 bits.
	scan := func(b []byte, base uint64) (uint32, []byte, bool) {
		for len(b) > 0 && isspace(b[0]) {
			b = b[1:]
		}
		neg := false
		if len(b) > 0 && (b[0] == '+' || b[0] == '-') {
			neg, b = b[0] == '-', b[1:]
		}
		if base == 16 && len(b) > 2 && b[0] == '0' && (b[1] == 'x' || b[1] == 'X') && strings.ContainsRune("0123456789abcdefABCDEF", rune(b[2])) {
			b = b[2:]
		}
		var v uint64
		n := 0
		for ; n < len(b); n++ {
			var d uint64
			switch c := b[n]; {
			case c >= '0' && c <= '9':
				d = uint64(c - '0')
			case c >= 'a' && c <= 'f':
				d = uint64(c-'a') + 10
			case c >= 'A' && c <= 'F':
				d = uint64(c-'A') + 10
			default:
				d = base
			}
			if d >= base {
				break
			}
			if v > (^uint64(0)-d)/base {
				v = ^uint64(0) // strtoul saturates
			} else {
				v = v*base + d
			}
		}
		if n == 0 {
			return 0, b, false
		}
		if neg {
			v = -v
		}
		return uint32(v), b[n:], true
	}
	var last uint32
	for len(content) > 0 {
		n := min(len(content), 1023)
		if i := bytes.IndexByte(content[:n], '\n'); i >= 0 {
			n = i + 1
		}
		line := content[:n]
		content = content[n:]
		if i := bytes.IndexByte(line, 0); i >= 0 {
			line = line[:i] // C strings end at NUL
		}
		p := 0
		for p < len(line) && isspace(line[p]) {
			p++
		}
		if p == len(line) || line[p] == '#' {
			continue
		}
		tli, rest, ok := scan(line, 10)
		if !ok {
			return nil, false
		}
		for len(rest) > 0 && isspace(rest[0]) { // the format's '\t'
			rest = rest[1:]
		}
		hi, rest, ok := scan(rest, 16)
		if !ok || len(rest) == 0 || rest[0] != '/' {
			return nil, false
		}
		lo, _, ok := scan(rest[1:], 16)
		if !ok {
			return nil, false
		}
		if len(out) > 0 && tli <= last {
			return nil, false
		}
		last = tli
		out = append(out, pgEntry{tli, uint64(hi)<<32 | uint64(lo)})
	}
	if len(out) > 0 && target <= last {
		return nil, false
	}
	return out, true
}

func TestPGReadHistoryModel(t *testing.T) {
	for _, tc := range []struct {
		in   string
		tli  uint32
		want []pgEntry
		ok   bool
	}{
		{realHistory, 3, []pgEntry{{1, 0x3000000}, {2, 0x5000158}}, true},
		{realHistory, 2, nil, false},
		{"junk\n", 2, nil, false},
		{"1\n", 2, nil, false},
		{"", 2, nil, true}, // PostgreSQL reads an empty file as no ancestors
		{"10/5\n", 11, nil, false},
		{"1 0/5garbage\n", 2, []pgEntry{{1, 5}}, true},
		{"1\t0x1/0X5\n", 2, []pgEntry{{1, 0x100000005}}, true},
		{"2\t0/1\n1\t0/2\n", 3, nil, false},
		{"1\t0/1\n" + strings.Repeat("x", 1100) + "\n", 2, nil, false},
	} {
		got, ok := pgReadHistory([]byte(tc.in), tc.tli)
		if ok != tc.ok || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("pgReadHistory(%q, %d) = %v, %v; want %v, %v", tc.in, tc.tli, got, ok, tc.want, tc.ok)
		}
	}
}

func FuzzParseHistory(f *testing.F) {
	for _, s := range []struct {
		s   string
		tli uint32
	}{
		{realHistory, 3},
		{earlierSwitchHistory, 3},
		{"1\t0/3000158\tno recovery target specified\n", 2},
		{"1\t0/3000000\tfirst\r\n\r\n2\t0/5000158\tsecond\r\n", 3},
		{"", 2},
		{"\n", 2},
		{"junk\n", 2},
		{"# comment\n1\t0/3000000\n", 2},
		{"1 0/3000000 reason\n", 2},
		{"1 0/3000000\treason\n", 2},
		{"1\t0/3000000\tx\n1\t0/4000000\ty\n", 3},
		{"1\t0/5000000\tx\n2\t0/3000000\ty\n", 3},
		{"1\tzz\tx\n", 2},
		{"0\t0/0\n", 2},
		{"1\r\n", 2},
		{"1\t0/3000000\tx\x00\n", 2},
		{"\u00a01\t0/3000000\tx\n", 2},
		{"4294967295\tFFFFFFFF/FFFFFFFF\tend\n", 0xFFFFFFFF},
		{"1\t0/3000000\t" + strings.Repeat("r", 1011) + "\n", 2},
	} {
		f.Add(s.s, s.tli)
	}
	f.Fuzz(func(t *testing.T, s string, tli uint32) {
		entries, err := wal.ParseHistory(strings.NewReader(s))
		if err != nil {
			if entries != nil {
				t.Fatalf("ParseHistory(%q) returned entries with error %v", s, err)
			}
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
		if err == nil {
			// What was parsed, written back in PostgreSQL's format, parses
			// to the same entries.
			again, err := wal.ParseHistory(strings.NewReader(formatHistory(entries)))
			if err != nil {
				t.Fatalf("reparse of %q: %v", formatHistory(entries), err)
			}
			if len(again) != len(entries) || (len(entries) > 0 && !reflect.DeepEqual(again, entries)) {
				t.Fatalf("ParseHistory(%q) = %+v, reparsed as %+v", s, entries, again)
			}
		}

		valid, verr := wal.ValidateHistory(tli, []byte(s))
		if verr != nil {
			var he *wal.HistoryError
			if valid != nil || !errors.As(verr, &he) || !errors.Is(verr, wal.ErrInvalidHistory) {
				t.Fatalf("ValidateHistory(%d, %q) = %+v, %v: want nil and a *HistoryError", tli, s, valid, verr)
			}
			if he.Line < 0 || he.Line > strings.Count(s, "\n")+1 || len(he.Text) > 64 {
				t.Fatalf("ValidateHistory(%d, %q): error %v names line %d", tli, s, verr, he.Line)
			}
			return
		}
		// Accepted: ParseHistory reads the same entries, and so does
		// PostgreSQL, without stopping.
		if err != nil || !reflect.DeepEqual(valid, entries) {
			t.Fatalf("ValidateHistory(%d, %q) = %+v, but ParseHistory = %+v, %v", tli, s, valid, entries, err)
		}
		pg, ok := pgReadHistory([]byte(s), tli)
		if !ok || len(pg) != len(valid) {
			t.Fatalf("ValidateHistory(%d, %q) = %+v, but PostgreSQL reads %v (ok %v)", tli, s, valid, pg, ok)
		}
		for i, e := range valid {
			if pg[i] != (pgEntry{e.Parent, uint64(e.SwitchPoint)}) {
				t.Fatalf("ValidateHistory(%d, %q) entry %d = %+v, PostgreSQL reads %v", tli, s, i, e, pg[i])
			}
			if e.Parent >= tli {
				t.Fatalf("ValidateHistory(%d, %q) accepted parent %d", tli, s, e.Parent)
			}
		}
		if len(valid) == 0 || len(s) > wal.MaxHistorySize || strings.IndexByte(s, 0) >= 0 {
			t.Fatalf("ValidateHistory(%d, %q) accepted %d entries", tli, s, len(valid))
		}
		// Written back as PostgreSQL writes it, it is still valid.
		if out := formatHistory(valid); len(out) <= wal.MaxHistorySize {
			again, err := wal.ValidateHistory(tli, []byte(out))
			if err != nil || !reflect.DeepEqual(again, valid) {
				t.Fatalf("ValidateHistory of the rewritten %q = %+v, %v; want %+v", out, again, err, valid)
			}
		}
	})
}
