package migrate

import (
	"context"
	"sync"
	"time"
)

// bucket is a token bucket: rate tokens per second, at most burst saved
// up. A wait takes its tokens at once, going into debt when there are not
// enough, and sleeps until the debt is paid, so a request larger than the
// burst is never refused, only delayed. A nil *bucket never waits.
type bucket struct {
	rate, burst float64

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func newBucket(rate, burst float64) *bucket {
	if rate <= 0 {
		return nil
	}
	return &bucket{rate: rate, burst: burst, tokens: burst, last: time.Now()}
}

// wait takes n tokens and sleeps until they are earned, or ctx is done.
func (b *bucket) wait(ctx context.Context, n float64) error {
	if b == nil || n <= 0 {
		return nil
	}
	b.mu.Lock()
	now := time.Now()
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	b.tokens -= n
	var d time.Duration
	if b.tokens < 0 {
		d = time.Duration(-b.tokens / b.rate * float64(time.Second))
	}
	b.mu.Unlock()
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// limitedReader waits for byte tokens after each read, so that reading
// the legacy objects stays under the byte rate.
type limitedReader struct {
	ctx context.Context
	r   interface{ Read([]byte) (int, error) }
	b   *bucket
}

func (l *limitedReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	if werr := l.b.wait(l.ctx, float64(n)); werr != nil && err == nil {
		err = werr
	}
	return n, err
}
