package catalog

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestResolvePolicy(t *testing.T) {
	day := 24 * time.Hour
	stored := DefaultPolicy()
	stored.WindowSeconds, stored.KeepDaily = int64(14*day/time.Second), 10
	window := func(d time.Duration, set, typed bool) PolicyOption {
		return PolicyOption{Field: FieldWindow, Flag: "retention-window", Window: d, Set: set, Typed: typed}
	}
	daily := func(n int, set, typed bool) PolicyOption {
		return PolicyOption{Field: FieldKeepDaily, Flag: "keep-daily", N: n, Set: set, Typed: typed}
	}
	for _, tc := range []struct {
		name        string
		found       bool
		opts        []PolicyOption
		wantWindow  time.Duration
		wantDaily   int
		wantIgnored string
		wantErr     string
	}{
		{"none stored: the defaults", false, nil, 7 * day, 7, "", ""},
		{"none stored: the options", false, []PolicyOption{window(3*day, true, true), daily(5, true, false)}, 3 * day, 5, "", ""},
		{"none stored: a default option is the default", false, []PolicyOption{window(7*day, false, false)}, 7 * day, 7, "", ""},
		{"none stored: an unreasonable option", false, []PolicyOption{window(time.Minute, true, true)}, 0, 0, "", "want at least 1h"},
		{"stored: it decides", true, nil, 14 * day, 10, "", ""},
		{"stored: an option that agrees", true, []PolicyOption{window(336*time.Hour, true, true)}, 14 * day, 10, "", ""},
		{"stored: an unset option is its default, not a disagreement", true, []PolicyOption{window(7*day, false, false)}, 14 * day, 10, "", ""},
		{"stored: a typed disagreement is refused", true, []PolicyOption{window(7*day, true, true)}, 0, 0, "",
			"--retention-window 7d (the policy says 14d): the retention policy stored in the repository decides"},
		{"stored: one from the environment or file is ignored", true, []PolicyOption{daily(7, true, false)}, 14 * day, 10, "--keep-daily 7 (the policy says 10)", ""},
		{"stored: a schedule's zone is never compared", true, []PolicyOption{{Field: FieldDumpTimezone, Flag: "dump-timezone", Zone: "UTC", Set: true, Typed: true, Schedule: true}},
			14 * day, 10, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, ignored, err := ResolvePolicy(stored, tc.found, tc.opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(tc.wantErr, "decides") && !errors.Is(err, ErrPolicyDisagrees) {
					t.Error("a disagreement does not wrap ErrPolicyDisagrees")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Window() != tc.wantWindow || p.KeepDaily != tc.wantDaily || strings.Join(ignored, ", ") != tc.wantIgnored {
				t.Errorf("policy window %s, daily %d, ignored %q; want %s, %d, %q", p.Window(), p.KeepDaily, ignored, tc.wantWindow, tc.wantDaily, tc.wantIgnored)
			}
		})
	}
}
