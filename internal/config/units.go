package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/dustin/go-humanize"
)

// ParseDuration reads a duration as Go writes one (90s, 15m, 36h) or with
// days and weeks (7d, 1d12h, 2w), as a retention window is spoken of. A
// plain number is refused: "7" could be days or seconds.
func ParseDuration(s string) (time.Duration, error) {
	const want = "want a duration such as 90s, 15m, 36h, 7d or 1d12h"
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, fmt.Errorf("empty duration: %s", want)
	}
	neg := strings.HasPrefix(in, "-")
	rest := strings.TrimPrefix(in, "-")
	if rest == "0" {
		return 0, nil
	}
	// Peel off leading NNd / NNw terms; the rest is Go's.
	var total time.Duration
	for {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) || (rest[i] != 'd' && rest[i] != 'w') {
			break
		}
		n, err := strconv.ParseInt(rest[:i], 10, 64)
		unit := 24 * time.Hour
		if rest[i] == 'w' {
			unit *= 7
		}
		if err != nil || n > math.MaxInt64/int64(unit) || total > math.MaxInt64-time.Duration(n)*unit {
			return 0, fmt.Errorf("duration %s is too long", shortQuote(s))
		}
		total += time.Duration(n) * unit
		rest = rest[i+1:]
	}
	if rest != "" {
		d, err := time.ParseDuration(rest)
		if err != nil || strings.HasPrefix(rest, "-") || strings.HasPrefix(rest, "+") {
			if _, numErr := strconv.ParseFloat(in, 64); numErr == nil {
				return 0, fmt.Errorf("duration %s has no unit: %s", shortQuote(s), want)
			}
			return 0, fmt.Errorf("invalid duration %s: %s", shortQuote(s), want)
		}
		if total > math.MaxInt64-d {
			return 0, fmt.Errorf("duration %s is too long", shortQuote(s))
		}
		total += d
	}
	if neg {
		total = -total
	}
	return total, nil
}

// FormatDuration writes d the way ParseDuration reads it back, in days
// when it is whole days (7d, not 168h0m0s).
func FormatDuration(d time.Duration) string {
	const day = 24 * time.Hour
	if d != 0 && d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	return d.String()
}

// ParseSize reads a byte size with go-humanize: 4096, 512MiB, 1.5GiB,
// 100M, 2TiB, "10 MB". Decimal units are powers of 1000 (MB, M), binary
// ones powers of 1024 (MiB). Zero and negative sizes are refused.
func ParseSize(s string) (int64, error) {
	const want = "want a size such as 512MiB, 1.5GiB, 100MB or 4096 (bytes)"
	in := strings.TrimSpace(s)
	if in == "" || strings.HasPrefix(in, "-") || strings.HasPrefix(in, "+") || strings.ContainsFunc(in, unicode.IsControl) {
		return 0, fmt.Errorf("invalid size %s: %s", shortQuote(s), want)
	}
	n, err := humanize.ParseBigBytes(in)
	if err != nil {
		return 0, fmt.Errorf("invalid size %s: %s", shortQuote(s), want)
	}
	if n.Sign() <= 0 {
		return 0, fmt.Errorf("size %s is not positive: %s", shortQuote(s), want)
	}
	if !n.IsInt64() {
		return 0, fmt.Errorf("size %s is too large", shortQuote(s))
	}
	return n.Int64(), nil
}
