package s3store_test

import (
	"bytes"
	"context"
	"fmt"
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

// Short timeouts for the calls of hung-server tests that must time out, and
// the bound every such call must meet: the timeout plus room for a loaded
// machine, far below "forever". A call that must succeed never runs under
// hungTimeout (CI runs the race detector on a loaded 2-core machine, where
// a healthy answer can take longer): it goes through a Backend with the
// default timeouts, or timeouts of at least okTimeout.
const (
	hungTimeout = 200 * time.Millisecond
	hungBound   = 3 * time.Second
	okTimeout   = 2 * time.Second
)

// newHung returns a Backend whose every timeout is hungTimeout (opts may
// change some), for calls that must time out, and the server it uses.
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
	requireUnavailableIn(t, err, took, hungTimeout, op, bucketKey)
}

// requireUnavailableIn is requireUnavailable for a call whose timeout is d.
func requireUnavailableIn(t *testing.T, err error, took, d time.Duration, op, bucketKey string) {
	t.Helper()
	require.ErrorIs(t, err, cas.ErrUnavailable)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NotErrorIs(t, err, context.Canceled)
	require.Contains(t, err.Error(), "s3store: "+op+" "+bucketKey)
	require.Less(t, took, d-hungTimeout+hungBound, "the call took too long: %v", err)
	require.GreaterOrEqual(t, took, d/2, "too early for a timeout: %v", err)
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
	// The setup must succeed: the default timeouts for the Put, okTimeout
	// for the Open (whose Object's GET, below, must time out, after the
	// operation timeout of the Backend that opened it).
	setup := s3store.New(srv.Client, srv.Bucket)
	require.NoError(t, setup.Put(ctx, "exists", bytes.NewReader(small), int64(len(small)), cas.PutOptions{}))
	opener := s3store.New(srv.Client, srv.Bucket, s3store.WithOpTimeout(okTimeout))
	obj, err := opener.Open(ctx, "exists") // opened before the hang: its GET hangs
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
	requireUnavailableIn(t, err, took, okTimeout, "GetObject", bk+"exists")
	require.Contains(t, err.Error(), "no answer in 2s")

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
	// 200 ms timeout; the Object opened before the hang keeps its own
	// (okTimeout).
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
// time, and the upload is aborted: nothing is left open. (Only the stall
// timeout is short: the Create and Abort around the parts must succeed.)
func TestHungPartsAbortTheUpload(t *testing.T) {
	t.Parallel()
	srv := s3test.New(t)
	b := s3store.New(srv.Client, srv.Bucket, s3store.WithStallTimeout(hungTimeout), s3store.WithMultipartThreshold(1<<10), s3store.WithPartSize(1<<10))
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
// (no Read for longer than the stall timeout) is no stall. Only the stall
// timeout of the stalled read is short: the Put, the Opens and the GET
// headers must succeed, and so must the slow reader's reads, whose stall
// timeout is okTimeout/2 (a pause of twice that is still no stall).
func TestHungGetBodyStalls(t *testing.T) {
	t.Parallel()
	var stall atomic.Bool
	release := make(chan struct{})
	srv := stallingGets(t, &stall, nil, release)
	t.Cleanup(func() { close(release) })
	data := testutil.Bytes(4, 1000)
	require.NoError(t, s3store.New(srv.Client, srv.Bucket).Put(t.Context(), "k", bytes.NewReader(data), int64(len(data)), cas.PutOptions{}))

	// A slow reader: pauses longer than the stall timeout between reads of
	// a healthy body, and still gets every byte.
	const slowStall = okTimeout / 2
	slow := s3store.New(srv.Client, srv.Bucket, s3store.WithStallTimeout(slowStall))
	obj, err := slow.Open(t.Context(), "k")
	require.NoError(t, err)
	p := make([]byte, 100)
	_, err = io.ReadFull(obj, p)
	require.NoError(t, err)
	time.Sleep(2 * slowStall)
	rest, err := io.ReadAll(obj)
	require.NoError(t, err)
	require.Equal(t, data, append(p, rest...))
	require.NoError(t, obj.Close())

	stall.Store(true)
	b := s3store.New(srv.Client, srv.Bucket, s3store.WithStallTimeout(hungTimeout))
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
// total-time limit that would cut off a large blob. The gaps between
// chunks are a tenth of the stall timeout, so that a loaded machine cannot
// stretch one into a stall.
func TestSlowTransferIsNoStall(t *testing.T) {
	t.Parallel()
	const stall = time.Second
	srv := s3test.New(t)
	b := s3store.New(srv.Client, srv.Bucket, s3store.WithStallTimeout(stall))
	data := testutil.Bytes(5, 48<<10)
	r := &trickle{r: bytes.NewReader(data), chunk: 2 << 10, pause: stall / 10}
	// 24 chunks x 100 ms = 2.4 s, more than two stall timeouts.
	start := time.Now()
	require.NoError(t, b.Put(t.Context(), "slow", r, int64(len(data)), cas.PutOptions{SHA256: cas.SumBytes(data)}))
	require.Greater(t, time.Since(start), 2*stall, "the transfer took longer than the stall timeout in total")
	require.Equal(t, data, readAll(t, s3store.New(srv.Client, srv.Bucket), "slow"))
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
// succeeds, within the operation timeout. The attempt timeout is okTimeout:
// the second attempt must succeed within it.
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
	const opTimeout = 15 * time.Second
	b := s3store.New(srv.Client, srv.Bucket, s3store.WithAttemptTimeout(okTimeout), s3store.WithOpTimeout(opTimeout))
	require.NoError(t, b.Put(t.Context(), "k", strings.NewReader("x"), 1, cas.PutOptions{}))
	start := time.Now()
	info, err := b.Stat(t.Context(), "k")
	require.NoError(t, err)
	require.EqualValues(t, 1, info.Size)
	require.EqualValues(t, 2, heads.Load(), "one hung attempt, one retry")
	took := time.Since(start)
	require.GreaterOrEqual(t, took, okTimeout, "the hung attempt ran to its timeout")
	require.Less(t, took, opTimeout, "within the operation timeout")
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
	require.Equal(t, 5*time.Minute, s3store.DefaultCompleteTimeout)
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
	// The calls that must succeed get the default attempt timeout, which
	// (below the operation timeout) installs the same middleware.
	ok := s3store.New(client, srv.Bucket)
	require.NoError(t, ok.Put(t.Context(), "k", strings.NewReader("x"), 1, cas.PutOptions{}))
	_, err := ok.Stat(t.Context(), "k")
	require.NoError(t, err)
	b := s3store.New(client, srv.Bucket, s3store.WithAttemptTimeout(hungTimeout), s3store.WithOpTimeout(10*time.Second))
	srv.Hang()
	start := time.Now()
	_, err = b.Stat(t.Context(), "k")
	requireUnavailable(t, err, time.Since(start), "HeadObject", srv.Bucket+"/k")
}

// TestHungCompleteHasItsOwnBound: CompleteMultipartUpload, which S3 may
// take minutes to answer for a large object, is bounded by the complete
// timeout (or the operation timeout when that is longer), in one attempt:
// before the fix it was a metadata call, cut off by the attempt timeout,
// resent, and failed after the operation timeout. The server answers
// everything but Complete, so the upload is aborted and nothing is left.
func TestHungCompleteHasItsOwnBound(t *testing.T) {
	t.Parallel()
	const attempt = 500 * time.Millisecond // > hungTimeout: the Create must succeed
	for _, tc := range []struct {
		name               string
		op, complete, want time.Duration
	}{
		{"complete timeout", okTimeout, 3 * time.Second, 3 * time.Second},
		{"op timeout is longer", 3 * time.Second, time.Second, 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := s3test.New(t)
			b := s3store.New(srv.Client, srv.Bucket,
				s3store.WithMultipartThreshold(1<<10), s3store.WithPartSize(1<<10),
				s3store.WithOpTimeout(tc.op), s3store.WithAttemptTimeout(attempt), s3store.WithCompleteTimeout(tc.complete))
			large := testutil.Bytes(12, 4<<10)
			srv.Hang("CompleteMultipartUpload")
			start := time.Now()
			err := b.Put(t.Context(), "multi", bytes.NewReader(large), int64(len(large)), cas.PutOptions{IfAbsent: true})
			took := time.Since(start)
			requireUnavailableIn(t, err, took, tc.want, "CompleteMultipartUpload", srv.Bucket+"/multi")
			require.GreaterOrEqual(t, took, tc.want, "the whole bound, not the attempt or a shorter timeout: %v", err)
			require.Contains(t, err.Error(), fmt.Sprintf("no answer in %v", tc.want))
			require.EqualValues(t, 1, srv.Requests("CompleteMultipartUpload"), "one attempt: no attempt timeout cut it short")
			require.Zero(t, srv.OpenUploads(t), "the upload was aborted")
			srv.Resume()
			require.Eventually(t, func() bool { return srv.Held() == 0 }, 5*time.Second, 10*time.Millisecond)
			require.Zero(t, srv.OpenUploads(t))
			requireMissing(t, s3store.New(srv.Client, srv.Bucket), "multi")
		})
	}
}
