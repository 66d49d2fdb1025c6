package s3store_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/s3store"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/internal/testutil/s3test"
)

// Short timeouts for hung-server tests, and the bound every call must meet:
// the timeout plus room for a loaded machine, far below "forever".
const (
	hungTimeout = 200 * time.Millisecond
	hungBound   = 3 * time.Second
)

func newHung(t *testing.T, opts ...s3store.Option) (*s3store.Backend, *s3test.Server) {
	t.Helper()
	srv := s3test.New(t)
	opts = append([]s3store.Option{
		s3store.WithOpTimeout(hungTimeout),
		s3store.WithAttemptTimeout(hungTimeout),
		s3store.WithStallTimeout(hungTimeout),
	}, opts...)
	return s3store.New(srv.Client, srv.Bucket, opts...), srv
}

// requireUnavailable checks a hung call's error: it wraps cas.ErrUnavailable
// and context.DeadlineExceeded, names the S3 operation, bucket and key, and
// came within the bound.
func requireUnavailable(t *testing.T, err error, took time.Duration, op, bucketKey string) {
	t.Helper()
	require.ErrorIs(t, err, cas.ErrUnavailable)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NotErrorIs(t, err, context.Canceled)
	require.Contains(t, err.Error(), "s3store: "+op+" "+bucketKey)
	require.Less(t, took, hungBound, "the call took too long: %v", err)
	require.GreaterOrEqual(t, took, hungTimeout/2, "too early for a timeout: %v", err)
}

// TestHungServerBoundsEveryCall is the hung-backend defect: with the S3
// server holding every request unanswered, each Backend call fails within
// its timeout (before the fix, each waited for the caller's context, i.e.
// forever), leaves nothing behind, and works again after Resume.
func TestHungServerBoundsEveryCall(t *testing.T) {
	t.Parallel()
	b, srv := newHung(t, s3store.WithMultipartThreshold(1<<10), s3store.WithPartSize(1<<10))
	ctx := t.Context()
	small := testutil.Bytes(1, 100)
	large := testutil.Bytes(2, 5<<10) // 5 parts
	require.NoError(t, b.Put(ctx, "exists", bytes.NewReader(small), int64(len(small)), cas.PutOptions{}))
	obj, err := b.Open(ctx, "exists") // opened before the hang: its GET hangs
	require.NoError(t, err)
	defer obj.Close()

	srv.Hang()
	timed := func(f func() error) (time.Duration, error) {
		start := time.Now()
		err := f()
		return time.Since(start), err
	}
	bk := srv.Bucket + "/"

	took, err := timed(func() error { _, err := b.Stat(ctx, "exists"); return err })
	requireUnavailable(t, err, took, "HeadObject", bk+"exists")
	require.Contains(t, err.Error(), "no answer in 200ms")

	took, err = timed(func() error { _, err := b.Open(ctx, "exists"); return err })
	requireUnavailable(t, err, took, "HeadObject", bk+"exists")

	took, err = timed(func() error { _, err := obj.Read(make([]byte, 10)); return err })
	requireUnavailable(t, err, took, "GetObject", bk+"exists")

	took, err = timed(func() error {
		return b.Put(ctx, "single", bytes.NewReader(small), int64(len(small)), cas.PutOptions{SHA256: cas.SumBytes(small), IfAbsent: true})
	})
	requireUnavailable(t, err, took, "PutObject", bk+"single")

	// Unseekable body too (the SDK cannot retry it).
	took, err = timed(func() error {
		return b.Put(ctx, "single", io.MultiReader(bytes.NewReader(small)), int64(len(small)), cas.PutOptions{})
	})
	requireUnavailable(t, err, took, "PutObject", bk+"single")

	took, err = timed(func() error {
		return b.Put(ctx, "multi", bytes.NewReader(large), int64(len(large)), cas.PutOptions{IfAbsent: true})
	})
	requireUnavailable(t, err, took, "CreateMultipartUpload", bk+"multi")

	took, err = timed(func() error {
		for _, err := range b.List(ctx, "") {
			return err
		}
		return nil
	})
	requireUnavailable(t, err, took, "ListObjectsV2", bk)

	// (A request held by a hung server may still be served at Resume, as
	// a resumed process would: delete a key the test does not need.)
	took, err = timed(func() error { return b.Delete(ctx, "gone") })
	requireUnavailable(t, err, took, "DeleteObject", bk+"gone")

	// The caller's context is still live: none of this was its doing.
	require.NoError(t, ctx.Err())

	srv.Resume()
	require.Eventually(t, func() bool { return srv.Held() == 0 }, 5*time.Second, 10*time.Millisecond)
	require.Zero(t, srv.OpenUploads(t), "no multipart upload left open")
	_, err = b.Stat(ctx, "multi")
	require.ErrorIs(t, err, cas.ErrNotFound, "no half-done multipart object")

	// Everything works again. The checks below use a backend over the same
	// server with the default timeouts, so that a loaded test machine (the
	// race detector, parallel packages) cannot turn a slow answer into a
	// 200 ms timeout; the Object opened before the hang keeps its own.
	b = s3store.New(srv.Client, srv.Bucket, s3store.WithMultipartThreshold(1<<10), s3store.WithPartSize(1<<10))
	info, err := b.Stat(ctx, "exists")
	require.NoError(t, err)
	require.EqualValues(t, len(small), info.Size)
	got, err := io.ReadAll(obj) // the same Object recovers: a new GET
	require.NoError(t, err)
	require.Equal(t, small, got)
	require.NoError(t, b.Put(ctx, "multi2", bytes.NewReader(large), int64(len(large)), cas.PutOptions{IfAbsent: true, SHA256: cas.SumBytes(large)}))
	require.Equal(t, large, readAll(t, b, "multi2"))
	var n int
	for _, err := range b.List(ctx, "") {
		require.NoError(t, err)
		n++
	}
	require.GreaterOrEqual(t, n, 2)
	require.NoError(t, b.Delete(ctx, "multi2"))
	requireMissing(t, b, "multi2")
}

// TestHungPartsAbortTheUpload: the server answers everything but
// UploadPart, which it holds. The stalled parts fail the Put in bounded
// time, and the upload is aborted: nothing is left open.
func TestHungPartsAbortTheUpload(t *testing.T) {
	t.Parallel()
	b, srv := newHung(t, s3store.WithMultipartThreshold(1<<10), s3store.WithPartSize(1<<10))
	large := testutil.Bytes(3, 4<<10)
	srv.Hang("UploadPart")
	start := time.Now()
	err := b.Put(t.Context(), "multi", bytes.NewReader(large), int64(len(large)), cas.PutOptions{})
	requireUnavailable(t, err, time.Since(start), "UploadPart", srv.Bucket+"/multi")
	require.Zero(t, srv.OpenUploads(t), "the upload was aborted while the server held the parts")
	srv.Resume()
	require.Eventually(t, func() bool { return srv.Held() == 0 }, 5*time.Second, 10*time.Millisecond)
	require.Zero(t, srv.OpenUploads(t))
	require.Empty(t, srv.ObjectKeys(t))
}

// TestHungGetBodyStalls: GetObject answers its headers and some bytes, then
// the body stops. The read fails after the stall timeout; a slow reader
// (no Read for longer than the stall timeout) is no stall.
func TestHungGetBodyStalls(t *testing.T) {
	t.Parallel()
	var stall atomic.Bool
	release := make(chan struct{})
	srv := s3test.New(t, s3test.WithMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if s3test.Operation(r) != "GetObject" || !stall.Load() {
				next.ServeHTTP(w, r)
				return
			}
			w.Header().Set("Content-Length", "1000")
			w.Header().Set("Content-Range", "bytes 0-999/1000")
			w.WriteHeader(http.StatusPartialContent)
			_, _ = w.Write(make([]byte, 10))
			http.NewResponseController(w).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			}
		})
	}))
	t.Cleanup(func() { close(release) })
	b := s3store.New(srv.Client, srv.Bucket, s3store.WithStallTimeout(hungTimeout), s3store.WithOpTimeout(hungTimeout))
	data := testutil.Bytes(4, 1000)
	require.NoError(t, b.Put(t.Context(), "k", bytes.NewReader(data), int64(len(data)), cas.PutOptions{}))

	// A slow reader: pauses longer than the stall timeout between reads of
	// a healthy body, and still gets every byte.
	obj, err := b.Open(t.Context(), "k")
	require.NoError(t, err)
	p := make([]byte, 100)
	_, err = io.ReadFull(obj, p)
	require.NoError(t, err)
	time.Sleep(3 * hungTimeout)
	rest, err := io.ReadAll(obj)
	require.NoError(t, err)
	require.Equal(t, data, append(p, rest...))
	require.NoError(t, obj.Close())

	stall.Store(true)
	obj, err = b.Open(t.Context(), "k")
	require.NoError(t, err)
	defer obj.Close()
	start := time.Now()
	n, err := io.ReadFull(obj, make([]byte, 1000))
	requireUnavailable(t, err, time.Since(start), "GetObject", srv.Bucket+"/k")
	require.Equal(t, 10, n, "the bytes that came")
}

// TestSlowTransferIsNoStall: a PutObject body that keeps moving, slower
// than one stall timeout in total, succeeds: the stall timeout is not a
// total-time limit that would cut off a large blob.
func TestSlowTransferIsNoStall(t *testing.T) {
	t.Parallel()
	b, _ := newHung(t)
	data := testutil.Bytes(5, 64<<10)
	r := &trickle{r: bytes.NewReader(data), chunk: 4 << 10, pause: hungTimeout / 4}
	// 16 chunks x 50 ms = 800 ms, four stall timeouts.
	require.NoError(t, b.Put(t.Context(), "slow", r, int64(len(data)), cas.PutOptions{SHA256: cas.SumBytes(data)}))
	require.Equal(t, data, readAll(t, b, "slow"))
}

// trickle yields at most chunk bytes per Read, after a pause.
type trickle struct {
	r     io.Reader
	chunk int
	pause time.Duration
}

func (t *trickle) Read(p []byte) (int, error) {
	time.Sleep(t.pause)
	if len(p) > t.chunk {
		p = p[:t.chunk]
	}
	return t.r.Read(p)
}

// TestHungAttemptIsRetried: only the first HeadObject hangs. The attempt
// timeout ends it and the SDK's retryer sends a second attempt, which
// succeeds, within the operation timeout.
func TestHungAttemptIsRetried(t *testing.T) {
	t.Parallel()
	var heads atomic.Int32
	srv := s3test.New(t, s3test.WithMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if s3test.Operation(r) == "HeadObject" && heads.Add(1) == 1 {
				<-r.Context().Done() // hang until the client gives up
				return
			}
			next.ServeHTTP(w, r)
		})
	}))
	b := s3store.New(srv.Client, srv.Bucket, s3store.WithAttemptTimeout(hungTimeout), s3store.WithOpTimeout(10*time.Second))
	require.NoError(t, b.Put(t.Context(), "k", strings.NewReader("x"), 1, cas.PutOptions{}))
	start := time.Now()
	info, err := b.Stat(t.Context(), "k")
	require.NoError(t, err)
	require.EqualValues(t, 1, info.Size)
	require.EqualValues(t, 2, heads.Load(), "one hung attempt, one retry")
	require.Less(t, time.Since(start), 5*time.Second)
}

// TestCallerCancelIsNotATimeout: when the caller's own context ends while
// the server hangs, the error is the caller's cancellation, not
// cas.ErrUnavailable.
func TestCallerCancelIsNotATimeout(t *testing.T) {
	t.Parallel()
	b, srv := newHung(t, s3store.WithOpTimeout(10*time.Second), s3store.WithStallTimeout(10*time.Second), s3store.WithAttemptTimeout(10*time.Second))
	srv.Hang()
	ctx, cancel := context.WithTimeout(t.Context(), hungTimeout)
	defer cancel()
	_, err := b.Stat(ctx, "k")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NotErrorIs(t, err, cas.ErrUnavailable)

	ctx, cancel = context.WithCancel(t.Context())
	time.AfterFunc(hungTimeout, cancel)
	err = b.Put(ctx, "k", strings.NewReader("x"), 1, cas.PutOptions{})
	require.ErrorIs(t, err, context.Canceled)
	require.NotErrorIs(t, err, cas.ErrUnavailable)
}

// TestTimeoutDefaults: New without options uses the documented defaults,
// so a hung server cannot hold a call for ever.
func TestTimeoutDefaults(t *testing.T) {
	t.Parallel()
	require.Equal(t, 10*time.Second, s3store.DefaultOpTimeout)
	require.Equal(t, 30*time.Second, s3store.DefaultStallTimeout)
	require.Less(t, s3store.DefaultAttemptTimeout, s3store.DefaultOpTimeout)
}

// TestAttemptTimeoutWithoutRetryLoop: a client whose middleware stack has
// no retry loop still gets its attempts bounded (the attempt middleware
// then wraps the one attempt instead of failing every call).
func TestAttemptTimeoutWithoutRetryLoop(t *testing.T) {
	t.Parallel()
	srv := s3test.New(t)
	client := s3.New(srv.Client.Options(), func(o *s3.Options) {
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
			_, err := s.Finalize.Remove("Retry")
			return err
		})
	})
	b := s3store.New(client, srv.Bucket, s3store.WithAttemptTimeout(hungTimeout), s3store.WithOpTimeout(10*time.Second))
	require.NoError(t, b.Put(t.Context(), "k", strings.NewReader("x"), 1, cas.PutOptions{}))
	_, err := b.Stat(t.Context(), "k")
	require.NoError(t, err)
	srv.Hang()
	start := time.Now()
	_, err = b.Stat(t.Context(), "k")
	requireUnavailable(t, err, time.Since(start), "HeadObject", srv.Bucket+"/k")
}
