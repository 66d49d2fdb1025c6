package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithymw "github.com/aws/smithy-go/middleware"

	"github.com/casa-go/casa/cas"
)

// Defaults of the timeout options. A hung S3 service (connections accepted,
// no answers: a network partition or a brownout) must not hang the caller.
const (
	// DefaultOpTimeout bounds a metadata call (HeadObject, a ListObjectsV2
	// page, DeleteObject, Create/AbortMultipartUpload) with all its
	// retries, and the wait for a GetObject's response headers.
	DefaultOpTimeout = 10 * time.Second
	// DefaultAttemptTimeout bounds one attempt of a metadata call, so that
	// a request stuck on one connection is retried on another within the
	// operation's time.
	DefaultAttemptTimeout = 4 * time.Second
	// DefaultStallTimeout is how long a transfer (a GetObject body, a
	// PutObject or UploadPart body and its answer) may go without moving a
	// byte before it fails. A transfer that makes progress never times out,
	// however large the blob.
	DefaultStallTimeout = 30 * time.Second
	// DefaultCompleteTimeout bounds a CompleteMultipartUpload, all SDK
	// retries included. S3 assembles the parts while the call runs and
	// may take minutes for a large object, with no byte moving that a
	// stall watchdog could see; so the call has no per-attempt timeout
	// and a bound of its own, far above the metadata calls'.
	DefaultCompleteTimeout = 5 * time.Minute
)

// WithOpTimeout sets how long a metadata call (HeadObject, one
// ListObjectsV2 page, DeleteObject, Create/AbortMultipartUpload) may take, all SDK retries included, and how long a GetObject may wait for
// its response headers. The default is DefaultOpTimeout; d must be positive.
// A call that runs out fails with an error wrapping cas.ErrUnavailable and
// context.DeadlineExceeded.
func WithOpTimeout(d time.Duration) Option {
	if d <= 0 {
		badOption("WithOpTimeout", d, "want a positive duration")
	}
	return func(b *Backend) { b.opTimeout = d }
}

// WithAttemptTimeout sets how long one attempt of a metadata call may take
// before the SDK's retryer tries again (within the operation timeout of
// WithOpTimeout). The default is DefaultAttemptTimeout; d must be positive.
func WithAttemptTimeout(d time.Duration) Option {
	if d <= 0 {
		badOption("WithAttemptTimeout", d, "want a positive duration")
	}
	return func(b *Backend) { b.attemptTimeout = d }
}

// WithStallTimeout sets how long a transfer may go without progress: a
// PutObject or UploadPart whose body is not read and that gets no answer,
// or a GetObject body that yields no byte, fails after d. Each byte moved
// starts the period again, so a slow but moving transfer of any size never
// times out. The default is DefaultStallTimeout; d must be positive. A stall
// fails with an error wrapping cas.ErrUnavailable and
// context.DeadlineExceeded.
func WithStallTimeout(d time.Duration) Option {
	if d <= 0 {
		badOption("WithStallTimeout", d, "want a positive duration")
	}
	return func(b *Backend) { b.stallTimeout = d }
}

// WithCompleteTimeout sets how long the CompleteMultipartUpload that ends
// a multipart Put may take, all SDK retries included; the bound is the
// longer of d and the operation timeout (WithOpTimeout). No per-attempt
// timeout applies to it (WithAttemptTimeout does not): AWS S3 answers a
// Complete at once with 200 OK and then keeps the response open, sending
// spaces, until the object is assembled, which for a large upload can
// take minutes, and an attempt cut short would only be sent again. The
// default is DefaultCompleteTimeout; d must be positive. A Complete that
// runs out fails with an error wrapping cas.ErrUnavailable and
// context.DeadlineExceeded, and the upload is aborted.
func WithCompleteTimeout(d time.Duration) Option {
	if d <= 0 {
		badOption("WithCompleteTimeout", d, "want a positive duration")
	}
	return func(b *Backend) { b.completeTimeout = d }
}

// timeoutCause is the cancellation cause of a call whose time ran out.
type timeoutCause struct {
	what string // "no answer" or "no progress"
	d    time.Duration
}

func (c *timeoutCause) Error() string { return fmt.Sprintf("%s in %v", c.what, c.d) }

// call is one S3 operation under a deadline of its own, derived from the
// caller's context: a fixed one for metadata calls, a watchdog that every
// byte moved re-arms for transfers. Its error method tells the call's own
// timeout (cas.ErrUnavailable) from the caller's cancellation.
type call struct {
	b      *Backend
	op     string // the S3 operation, e.g. "HeadObject"
	full   string // the S3 key
	parent context.Context
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer
	stall  time.Duration // re-arm period on progress; 0 for metadata calls
	// attemptTimedOut is set when an attempt ran past the attempt timeout
	// (the final error may then be the retryer's, not the attempt's).
	attemptTimedOut atomic.Bool
	moved           atomic.Bool // a transfer moved a byte
}

// meta starts a metadata call bounded by the operation timeout.
func (b *Backend) meta(ctx context.Context, op, full string) *call {
	return b.start(ctx, op, full, b.opTimeout, 0)
}

// complete starts a CompleteMultipartUpload: a long call bounded by the
// longer of the complete and operation timeouts, with no attempt timeout
// (see WithCompleteTimeout).
func (b *Backend) complete(ctx context.Context, full string) *call {
	return b.start(ctx, "CompleteMultipartUpload", full, max(b.completeTimeout, b.opTimeout), 0)
}

// transfer starts a transfer: it fails when nothing has happened for first
// (the wait for an answer), then once no byte has moved for the stall
// timeout.
func (b *Backend) transfer(ctx context.Context, op, full string, first time.Duration) *call {
	return b.start(ctx, op, full, first, b.stallTimeout)
}

func (b *Backend) start(ctx context.Context, op, full string, first, stall time.Duration) *call {
	cctx, cancel := context.WithCancelCause(ctx)
	c := &call{b: b, op: op, full: full, parent: ctx, ctx: cctx, cancel: cancel, stall: stall}
	c.timer = time.AfterFunc(first, func() {
		if c.moved.Load() {
			cancel(&timeoutCause{"no progress", stall})
		} else {
			cancel(&timeoutCause{"no answer", first})
		}
	})
	return c
}

// progress re-arms a transfer's watchdog: bytes moved.
func (c *call) progress() {
	if c.stall > 0 {
		c.moved.Store(true)
		c.timer.Reset(c.stall)
	}
}

// disarm stops a transfer's watchdog until the next progress.
func (c *call) disarm() { c.timer.Stop() }

// end releases the call's context. Use the call's results before.
func (c *call) end() {
	c.timer.Stop()
	c.cancel(nil)
}

// timedOut reports whether the call failed because its own time ran out
// (and not because the caller's context ended).
func (c *call) timedOut() (*timeoutCause, bool) {
	if c.parent.Err() != nil {
		return nil, false
	}
	var tc *timeoutCause
	if errors.As(context.Cause(c.ctx), &tc) {
		return tc, true
	}
	if c.attemptTimedOut.Load() {
		return &timeoutCause{"no answer", c.b.attemptTimeout}, true
	}
	return nil, false
}

// err annotates a failed call's error: a timeout wraps cas.ErrUnavailable
// and context.DeadlineExceeded and names the operation, bucket and key;
// anything else is wrapped as wrap does, for the Backend method verb.
func (c *call) err(verb, key string, err error, want ...error) error {
	if err == nil {
		return nil
	}
	if tc, ok := c.timedOut(); ok {
		return fmt.Errorf("s3store: %s %s/%s: %v: %w: %w (%v)", c.op, c.b.bucket, c.full, tc, cas.ErrUnavailable, context.DeadlineExceeded, err)
	}
	return wrap(verb, key, err, want...)
}

// withAttemptTimeout bounds each attempt of a metadata call.
func (c *call) withAttemptTimeout(o *s3.Options) {
	if c.b.attemptTimeout <= 0 || c.b.attemptTimeout >= c.b.opTimeout {
		return // the operation timeout alone bounds the call
	}
	mw := &attemptTimeout{d: c.b.attemptTimeout, hit: &c.attemptTimedOut}
	o.APIOptions = append(o.APIOptions, func(s *smithymw.Stack) error {
		if _, ok := s.Finalize.Get("Retry"); !ok {
			// No retry loop in this client's stack: bound the one attempt.
			return s.Finalize.Add(mw, smithymw.After)
		}
		return s.Finalize.Insert(mw, "Retry", smithymw.After)
	})
}

// attemptTimeout is a finalize middleware inside the SDK's retry loop: it
// gives each attempt its own deadline. The SDK reports an attempt whose
// context ended as a smithy.CanceledError, which its retryer never retries;
// attemptTimeout turns that into a retryable timeout when the operation's
// own context is still live, so the next attempt can go out on a fresh
// connection. The operation's context still bounds all attempts together.
type attemptTimeout struct {
	d   time.Duration
	hit *atomic.Bool
}

func (m *attemptTimeout) ID() string { return "casa.s3store.AttemptTimeout" }

func (m *attemptTimeout) HandleFinalize(ctx context.Context, in smithymw.FinalizeInput, next smithymw.FinalizeHandler) (
	smithymw.FinalizeOutput, smithymw.Metadata, error,
) {
	actx, cancel := context.WithTimeout(ctx, m.d)
	defer cancel()
	out, md, err := next.HandleFinalize(actx, in)
	if err != nil && ctx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded) {
		m.hit.Store(true)
		err = &attemptTimeoutError{d: m.d, msg: err.Error()}
	}
	return out, md, err
}

// attemptTimeoutError is an attempt that got no answer in time. It is
// retryable (aws-sdk-go-v2's retry.RetryableError) and a timeout; it hides
// the SDK's CanceledError so that the retryer does not stop on it.
type attemptTimeoutError struct {
	d   time.Duration
	msg string
}

func (e *attemptTimeoutError) Error() string {
	return fmt.Sprintf("attempt got no answer in %v: %s", e.d, e.msg)
}
func (e *attemptTimeoutError) Unwrap() error        { return context.DeadlineExceeded }
func (e *attemptTimeoutError) RetryableError() bool { return true }
func (e *attemptTimeoutError) Timeout() bool        { return true }

// progressReader re-arms a transfer's watchdog on every byte read. It is
// an io.Seeker when its reader is, so the SDK can still rewind it.
type progressReader struct {
	r    io.Reader
	call *call
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.call.progress()
	}
	return n, err
}

type progressSeeker struct {
	progressReader
	s io.Seeker
}

func (p *progressSeeker) Seek(off int64, whence int) (int64, error) { return p.s.Seek(off, whence) }

// watchBody wraps a request body so that reading it re-arms c's watchdog.
func watchBody(r io.Reader, c *call) io.Reader {
	if s, ok := r.(io.ReadSeeker); ok {
		return &progressSeeker{progressReader{s, c}, s}
	}
	return &progressReader{r, c}
}
