package wal

import (
	"bufio"
	"bytes"
	"errors"
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
// one before. It reads leniently (blanks of any kind around the fields);
// ValidateHistory is the strict check for a file about to be stored.
func ParseHistory(r io.Reader) ([]HistoryEntry, error) {
	var out []HistoryEntry
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		// Fields are separated by runs of tabs or spaces, as PostgreSQL's
		// sscanf("%u\t%X/%X") reads them; the rest is the reason.
		fields := splitBlanks(text, 3)
		if len(fields) < 2 {
			return nil, fmt.Errorf("history line %d: want \"timeline<TAB>switch LSN<TAB>reason\"", line)
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
			e.Reason = fields[2]
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

// MaxHistorySize is the largest history file ValidateHistory accepts.
// PostgreSQL writes one short line per ancestor timeline: a thousand
// switches take some 60 KiB.
const MaxHistorySize = 1 << 20

// maxHistoryLine is the longest line PostgreSQL reads whole: its reader
// (readTimeLineHistory) takes lines in 1024-byte buffers, and the rest of
// a longer one would be read as a line of its own.
const maxHistoryLine = 1023

// ErrInvalidHistory is returned (wrapped, as a *HistoryError) by
// ValidateHistory for a file that is not a timeline history PostgreSQL
// could have written and can read.
var ErrInvalidHistory = errors.New("invalid timeline history file")

// HistoryError says why ValidateHistory refused a history file.
type HistoryError struct {
	TLI    uint32 // the timeline whose history file it claims to be
	Line   int    // 1-based line number; 0 when the file as a whole is wrong
	Text   string // the start of that line
	Reason string
}

func (e *HistoryError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("invalid history file %s: %s", HistoryName(e.TLI), e.Reason)
	}
	return fmt.Sprintf("invalid history file %s: line %d %q: %s", HistoryName(e.TLI), e.Line, e.Text, e.Reason)
}

// Unwrap makes the error match ErrInvalidHistory.
func (e *HistoryError) Unwrap() error { return ErrInvalidHistory }

// ValidateHistory checks content, the history file of timeline tli
// (HistoryName(tli)), before it is stored, and returns its entries as
// ParseHistory would. It refuses whatever PostgreSQL's reader
// (readTimeLineHistory in src/backend/access/transam/timeline.c) would
// stop recovery on, and what its writer (writeTimeLineHistory) never
// writes:
//
//   - tli below 2 (timeline 1 has no history), a file over MaxHistorySize,
//     a NUL byte, or a line over 1023 bytes;
//   - a line that is neither blank, a '#' comment, nor
//     "<parent timeline><TAB><switch LSN>[<TAB><reason>]" (runs of tabs or
//     spaces may separate the fields, as PostgreSQL's sscanf allows; the
//     timeline is decimal, the LSN two hex numbers of 1 to 8 digits);
//   - no entry at all: PostgreSQL always writes the parent's line;
//   - timelines that do not strictly increase, or one that is not below
//     tli.
//
// Lines may end in CRLF: PostgreSQL reads the '\r' as blank space, so
// such a file recovers the same. Switch points need not increase:
// PostgreSQL writes a smaller one when a recovery stopped on a timeline
// before that timeline's parent switched, and reads it back, so refusing
// it would stop archiving for good.
//
// Every error is a *HistoryError matching ErrInvalidHistory, naming the
// line at fault.
func ValidateHistory(tli uint32, content []byte) ([]HistoryEntry, error) {
	fail := func(line int, text, format string, args ...any) error {
		if len(text) > 60 {
			text = text[:60] + "..."
		}
		return &HistoryError{TLI: tli, Line: line, Text: text, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case tli == 0:
		return nil, fail(0, "", "timeline 0 does not exist")
	case tli == 1:
		return nil, fail(0, "", "timeline 1 has no history file: PostgreSQL writes one only for the timelines after it")
	case len(content) > MaxHistorySize:
		return nil, fail(0, "", "%d bytes, more than the %d a history file may hold", len(content), MaxHistorySize)
	}
	var out []HistoryEntry
	rest := content
	for line := 1; len(rest) > 0; line++ {
		var raw []byte
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			raw, rest = rest[:i], rest[i+1:]
		} else {
			raw, rest = rest, nil
		}
		if len(raw) > maxHistoryLine {
			return nil, fail(line, string(raw), "%d bytes long: PostgreSQL reads history lines of at most %d bytes", len(raw), maxHistoryLine)
		}
		text := string(bytes.TrimSuffix(raw, []byte{'\r'}))
		if strings.IndexByte(text, 0) >= 0 {
			return nil, fail(line, text, "holds a NUL byte")
		}
		e, ok, msg := parseStrictHistoryLine(text)
		if msg != "" {
			return nil, fail(line, text, "%s", msg)
		}
		if !ok {
			continue // blank or comment
		}
		if e.Parent >= tli {
			return nil, fail(line, text, "timeline %d is not below the file's own timeline %d", e.Parent, tli)
		}
		if n := len(out); n > 0 && e.Parent <= out[n-1].Parent {
			return nil, fail(line, text, "timeline %d does not follow timeline %d: timelines must increase", e.Parent, out[n-1].Parent)
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil, fail(0, "", "no timeline entries: PostgreSQL writes at least the line of the parent timeline, like \"1<TAB>0/3000000<TAB>no recovery target specified\"")
	}
	return out, nil
}

// parseStrictHistoryLine parses one line (without its line end) the way
// ValidateHistory accepts it. ok is false for a blank line or a comment;
// msg says what is wrong.
func parseStrictHistoryLine(s string) (e HistoryEntry, ok bool, msg string) {
	const want = "want \"<parent timeline><TAB><switch LSN><TAB><reason>\", a '#' comment or a blank line"
	i := 0
	for i < len(s) && isCSpace(s[i]) {
		i++
	}
	if i == len(s) || s[i] == '#' {
		return e, false, ""
	}
	j := i
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		j++
	}
	if j == i {
		return e, false, want
	}
	if j < len(s) && s[j] != ' ' && s[j] != '\t' {
		return e, false, want
	}
	tli, err := strconv.ParseUint(s[i:j], 10, 32)
	if err != nil {
		return e, false, fmt.Sprintf("timeline %s is out of range (1 to %d)", s[i:j], uint32(1<<32-1))
	}
	if tli == 0 {
		return e, false, "timeline 0 does not exist"
	}
	for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
		j++
	}
	k := j
	for k < len(s) && s[k] != ' ' && s[k] != '\t' {
		k++
	}
	if k == j {
		return e, false, fmt.Sprintf("no switch point after timeline %d; %s", tli, want)
	}
	lsn, err := ParseLSN(s[j:k])
	if err != nil {
		return e, false, fmt.Sprintf("switch point %q is not an LSN like 0/3000000", s[j:k])
	}
	return HistoryEntry{Parent: uint32(tli), SwitchPoint: lsn, Reason: strings.TrimSpace(s[k:])}, true, ""
}

// isCSpace is C's isspace in the C locale, which PostgreSQL's reader
// skips at the start of a line.
func isCSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}
