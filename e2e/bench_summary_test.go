//go:build e2e && bench

package e2e

import (
	"fmt"
	"os"
	"strings"
	"sync"
)

// A pathResult is one path of the summary table: pgward beside the
// reference tool, measured in the same run.
type pathResult struct {
	path, unit   string
	pgward, ref  float64
	refName      string
	higherBetter bool    // a rate (seg/s), not seconds
	cpu          float64 // pgward's CPU seconds, 0 when not measured
	rssKB        int64   // pgward's peak RSS
	target       string
}

var summary struct {
	sync.Mutex
	rows []pathResult
}

// addSummary records a path for the table printed after the benches.
func addSummary(r pathResult) {
	summary.Lock()
	defer summary.Unlock()
	summary.rows = append(summary.rows, r)
}

func init() { afterTests = append(afterTests, printSummary) }

// printSummary prints every path measured in this run in one table.
func printSummary() {
	summary.Lock()
	defer summary.Unlock()
	if len(summary.rows) == 0 {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\npgward beside pgBackRest, every path measured in this run (ratio > 1: pgward is faster)\n\n")
	fmt.Fprintf(&b, "| %-36s | %14s | %-34s | %7s | %8s | %9s | %-10s |\n", "path", "pgward", "reference, same run", "ratio", "CPU s", "peak RSS", "target")
	fmt.Fprintf(&b, "|%s|%s|%s|%s|%s|%s|%s|\n", strings.Repeat("-", 38), strings.Repeat("-", 16), strings.Repeat("-", 36), strings.Repeat("-", 9), strings.Repeat("-", 10), strings.Repeat("-", 11), strings.Repeat("-", 12))
	for _, r := range summary.rows {
		ratio := r.pgward / r.ref
		if !r.higherBetter {
			ratio = r.ref / r.pgward
		}
		cpu := ""
		if r.cpu > 0 {
			cpu = fmt.Sprintf("%.1f", r.cpu)
		}
		fmt.Fprintf(&b, "| %-36s | %9.2f %-4s | %-34s | %6.2fx | %8s | %5d MiB | %-10s |\n",
			r.path, r.pgward, r.unit, fmt.Sprintf("%s: %.2f %s", r.refName, r.ref, r.unit), ratio, cpu, r.rssKB>>10, r.target)
	}
	fmt.Fprint(os.Stdout, b.String())
}
