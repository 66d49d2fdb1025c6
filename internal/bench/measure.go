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
	var ia, ib int
	for range rounds {
		x, err := rate(d/rounds, &ia, a)
		if err != nil {
			return 0, 0, err
		}
		y, err := rate(d/rounds, &ib, b)
		if err != nil {
			return 0, 0, err
		}
		ra, rb = max(ra, x), max(rb, y)
	}
	return ra, rb, nil
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
