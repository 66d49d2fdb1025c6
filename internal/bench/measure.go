package main

import (
	"fmt"
	"time"
)

// rounds is how many alternating rounds a paired measurement takes; the best
// round of each side counts, which damps noise from the other core.
const rounds = 3

// op is one timed operation: it returns the time that counts (set-up and
// clean-up inside it may be left out) or an error.
type op func(i int) (time.Duration, error)

// timed runs f and returns how long it took.
func timed(f func() error) (time.Duration, error) {
	t := time.Now()
	err := f()
	return time.Since(t), err
}

// rate runs o (iteration i) for at least d of counted time and at least 2
// iterations and returns operations per second.
func rate(d time.Duration, next *int, o op) (float64, error) {
	var spent time.Duration
	n := 0
	wall := time.Now()
	for n < 2 || (spent < d && time.Since(wall) < 4*d) {
		t, err := o(*next)
		if err != nil {
			return 0, err
		}
		spent += t
		*next++
		n++
	}
	return float64(n) / spent.Seconds(), nil
}

// paired measures a and b in alternating rounds and returns each side's best
// rate in operations per second.
func paired(d time.Duration, a, b op) (ra, rb float64, err error) {
	r, err := interleaved(d, a, b)
	if err != nil {
		return 0, 0, err
	}
	return r[0], r[1], nil
}

// interleaved measures ops in rounds, each op in turn within a round, for
// d/rounds each, and returns each op's best rate in operations per second:
// every op sees the same load of the shared machine.
func interleaved(d time.Duration, ops ...op) ([]float64, error) {
	best := make([]float64, len(ops))
	next := make([]int, len(ops))
	for range rounds {
		for i, o := range ops {
			r, err := rate(d/rounds, &next[i], o)
			if err != nil {
				return nil, err
			}
			best[i] = max(best[i], r)
		}
	}
	return best, nil
}

func mbps(bytesPerSec float64) string { return fmt.Sprintf("%.0f MB/s", bytesPerSec/1e6) }

func sizeName(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%d MiB", n>>20)
	default:
		return fmt.Sprintf("%d KiB", n>>10)
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/1e6) }
