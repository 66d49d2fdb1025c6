package cli

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progressInterval is how often plain progress lines are written.
const progressInterval = 2 * time.Second

// progress shows how far long work is: a progress bar when standard error
// is a terminal, otherwise a plain line every progressInterval and one at
// the end, so that logs of a cron job or a CI run show the pace. It is
// safe for concurrent use.
type progress struct {
	mu   sync.Mutex
	w    io.Writer
	what string // "verify", "migrate"
	unit string // "blobs", "records"
	// bytesWhat follows the byte count in plain lines: "deleted" when
	// the bytes are not those read.
	bytesWhat string
	bar       *progressbar.ProgressBar
	total     int
	done      int
	bytes     int64
	start     time.Time
	last      time.Time
}

// newProgress starts a progress display for total items (-1: unknown).
// With -json the display still goes to standard error.
func (e *env) newProgress(what, unit string, total int) *progress {
	p := &progress{w: e.Stderr, what: what, unit: unit, total: total, start: time.Now()}
	p.last = p.start
	if e.StderrTerminal {
		p.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(e.Stderr),
			progressbar.OptionSetDescription(what),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString(unit),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(e.Stderr) }),
		)
	}
	return p
}

// setTotal changes the expected total (a migration learns it late).
func (p *progress) setTotal(total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.total == total {
		return
	}
	p.total = total
	if p.bar != nil {
		p.bar.ChangeMax(total)
	}
}

// set records that done items and bytes are finished so far.
func (p *progress) set(done int, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done, p.bytes = done, bytes
	if p.bar != nil {
		_ = p.bar.Set(done)
		return
	}
	if now := time.Now(); now.Sub(p.last) >= progressInterval {
		p.last = now
		p.line("")
	}
}

// add records n more items and bytes finished.
func (p *progress) add(n int, bytes int64) {
	p.mu.Lock()
	done, b := p.done+n, p.bytes+bytes
	p.mu.Unlock()
	p.set(done, b)
}

// finish ends the display: the bar drawn full, or a last plain line.
func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		_ = p.bar.Finish() // the finished bar stays, as the last line
		return
	}
	p.line(" done")
}

// stop ends the display without a last line: the work failed, and the
// error says so.
func (p *progress) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		_ = p.bar.Exit()
	}
}

func (p *progress) line(suffix string) {
	el := time.Since(p.start).Round(time.Millisecond)
	total := ""
	if p.total >= 0 {
		total = fmt.Sprintf("/%d", p.total)
	}
	b := formatBytes(p.bytes)
	if p.bytesWhat != "" {
		b += " " + p.bytesWhat
	}
	fmt.Fprintf(p.w, "casa %s: %d%s %s, %s in %v%s\n", p.what, p.done, total, p.unit, b, el, suffix)
}

// formatBytes writes n in binary units.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
