package dump_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/dump"
)

func berlin(t *testing.T) *time.Location {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestPolicyKeepsSevenDailyFourWeeklyTwelveMonthly(t *testing.T) {
	loc := berlin(t)
	start := time.Date(2025, 10, 1, 0, 7, 0, 0, loc)
	var dumps []dump.Dated
	for day := range 400 {
		at := start.AddDate(0, 0, day)
		dumps = append(dumps, dump.Dated{ID: at.UTC().Format("20060102T150405Z"), Time: at})
	}
	kept := dump.DefaultPolicy(loc).Keep(dumps)
	count := map[string]int{}
	for _, why := range kept {
		count[strings.Fields(why)[0]]++
	}
	if count["daily"] != 7 || count["weekly"] != 4 || count["monthly"] != 12 || len(kept) != 23 {
		t.Fatalf("kept %v", count)
	}
	newest := start.AddDate(0, 0, 399) // 2026-11-04, a Wednesday
	for i := range 7 {
		id := newest.AddDate(0, 0, -i).UTC().Format("20060102T150405Z")
		if !strings.HasPrefix(kept[id], "daily") {
			t.Errorf("day -%d (%s) kept as %q, want daily", i, id, kept[id])
		}
	}
	// The weeks before the daily ones end on Sundays; 2026-10-29 (a
	// Thursday) is daily, so its week's Sunday is not a weekly one.
	for _, day := range []string{"2026-10-25", "2026-10-18", "2026-10-11", "2026-10-04"} {
		at, _ := time.ParseInLocation("2006-01-02 15:04", day+" 00:07", loc)
		if why := kept[at.UTC().Format("20060102T150405Z")]; !strings.HasPrefix(why, "weekly") {
			t.Errorf("%s kept as %q, want weekly", day, why)
		}
	}
	// Months: the last day of each of the twelve months before October,
	// whose last day is a daily one.
	for m := 2; m <= 13; m++ {
		first := time.Date(2026, time.Month(11-m+1), 1, 0, 7, 0, 0, loc)
		last := first.AddDate(0, 0, -1)
		if why := kept[last.UTC().Format("20060102T150405Z")]; !strings.HasPrefix(why, "monthly") {
			t.Errorf("%s kept as %q, want monthly", last.Format("2006-01-02"), why)
		}
	}
}

func TestPolicyBucketsInItsTimeZone(t *testing.T) {
	loc := berlin(t)
	// 23:30 UTC on 1 March is 00:30 on 2 March in Berlin: two dumps of the
	// same UTC day fall on two Berlin days, and both are kept.
	a := dump.Dated{ID: "a", Time: time.Date(2026, 3, 1, 22, 0, 0, 0, time.UTC)}
	b := dump.Dated{ID: "b", Time: time.Date(2026, 3, 1, 23, 30, 0, 0, time.UTC)}
	kept := dump.Policy{Daily: 2, Location: loc}.Keep([]dump.Dated{a, b})
	if len(kept) != 2 {
		t.Fatalf("Berlin buckets kept %v, want both", kept)
	}
	kept = dump.Policy{Daily: 2, Location: time.UTC}.Keep([]dump.Dated{a, b})
	if len(kept) != 1 || kept["b"] == "" {
		t.Fatalf("UTC buckets kept %v, want only the newer b", kept)
	}
}

func TestPolicyWithFewDumpsKeepsAll(t *testing.T) {
	var dumps []dump.Dated
	for i := range 5 {
		dumps = append(dumps, dump.Dated{ID: fmt.Sprint(i), Time: time.Date(2026, 1, 1+i, 1, 0, 0, 0, time.UTC)})
	}
	if kept := dump.DefaultPolicy(time.UTC).Keep(dumps); len(kept) != 5 {
		t.Fatalf("kept %v", kept)
	}
}

func TestPolicyValidate(t *testing.T) {
	if err := (dump.Policy{Location: time.UTC}).Validate(); err == nil || !strings.Contains(err.Error(), "would delete every dump") {
		t.Fatalf("Validate(0/0/0) = %v", err)
	}
	if err := (dump.Policy{Daily: -1, Weekly: 3, Location: time.UTC}).Validate(); err == nil {
		t.Fatal("Validate accepts a negative count")
	}
}
