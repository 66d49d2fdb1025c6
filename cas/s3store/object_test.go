package s3store_test

import (
	"bytes"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/s3store"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/internal/testutil/s3test"
)

// stallingGets returns an S3 test server whose GetObject answers while
// stall is set send their headers and the first 10 bytes, signal sent
// (when it has room), then hold the body until release is closed or the
// client hangs up. A nil sent or release is never used.
func stallingGets(t *testing.T, stall *atomic.Bool, sent chan<- struct{}, release <-chan struct{}) *s3test.Server {
	t.Helper()
	return s3test.New(t, s3test.WithMiddleware(func(next http.Handler) http.Handler {
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
			case sent <- struct{}{}:
			default:
			}
			select {
			case <-release:
			case <-r.Context().Done():
			}
		})
	}))
}

// stalledKey returns a Backend with default timeouts holding 1000 bytes
// (testutil.Bytes(seed, 1000)) under "k", whose GETs from now on stall
// after 10 bytes (stallingGets), and the channel on which a GET says it
// sent them.
func stalledKey(t *testing.T, seed uint64) (*s3store.Backend, <-chan struct{}) {
	t.Helper()
	var stall atomic.Bool
	sent := make(chan struct{}, 1)
	srv := stallingGets(t, &stall, sent, nil)
	b := s3store.New(srv.Client, srv.Bucket)
	data := testutil.Bytes(seed, 1000)
	require.NoError(t, b.Put(t.Context(), "k", bytes.NewReader(data), int64(len(data)), cas.PutOptions{}))
	stall.Store(true)
	return b, sent
}

// TestCloseDuringRead is the Close-while-reading defect: an Object closed
// from another goroutine while a Read waits for S3 (as net/http's
// ServeContent does for a multi-range response, reading in a goroutine of
// its own that outlives the handler) made the Read dereference the call
// that Close had dropped, a SIGSEGV that killed the process, and raced on
// the object's fields. Now the blocked Read returns an error at once (not
// after the stall timeout) and the race detector sees no race. Close comes
// at several moments: while the GET waits for its headers, while the body
// read is blocked, and after a Read returned.
func TestCloseDuringRead(t *testing.T) {
	t.Parallel()
	// Default timeouts: nothing here may end by a timeout; only Close
	// ends the blocked reads.
	b, sent := stalledKey(t, 10)

	const iterations = 60
	for i := range iterations {
		obj, err := b.Open(t.Context(), "k")
		require.NoError(t, err)
		done := make(chan error, 1)
		var got atomic.Int64
		go func() {
			n, err := io.ReadFull(obj, make([]byte, 1000))
			got.Store(int64(n))
			done <- err
		}()
		switch i % 3 {
		case 0: // the body read is blocked: the 10 bytes came, no more will
			<-sent
		case 1: // anywhere: before the GET, during it, or in the body read
			time.Sleep(time.Duration(i) * 50 * time.Microsecond)
		case 2: // at once
		}
		start := time.Now()
		require.NoError(t, obj.Close())
		select {
		case err := <-done:
			require.Error(t, err, "iteration %d: a read of a stalled body cannot succeed", i)
			require.NotErrorIs(t, err, cas.ErrUnavailable, "iteration %d: Close, not the stall timeout, ended the read", i)
			require.LessOrEqual(t, got.Load(), int64(10), "iteration %d", i)
		case <-time.After(5 * time.Second):
			t.Fatalf("iteration %d: Read still blocked %v after Close", i, time.Since(start))
		}
		// Closed is closed: every later call fails, Close again is fine.
		_, err = obj.Read(make([]byte, 1))
		require.ErrorContains(t, err, "s3store: object is closed")
		_, err = obj.Seek(0, io.SeekStart)
		require.ErrorContains(t, err, "s3store: object is closed")
		require.NoError(t, obj.Close())
		select { // a GET that Close cut off before its 10 bytes leaves none
		case <-sent:
		default:
		}
	}
}

// TestCloseDuringReadReturnsBytesRead: a Read that Close interrupts
// reports the closed object, and the bytes a Read got before are the
// object's.
func TestCloseDuringReadReturnsBytesRead(t *testing.T) {
	t.Parallel()
	b, sent := stalledKey(t, 11)
	obj, err := b.Open(t.Context(), "k")
	require.NoError(t, err)
	p := make([]byte, 1000)
	n, err := obj.Read(p)
	require.NoError(t, err)
	require.Positive(t, n)
	require.LessOrEqual(t, n, 10)
	<-sent
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(obj, p[n:])
		done <- err
	}()
	time.Sleep(20 * time.Millisecond) // most likely blocked in the body read by now
	require.NoError(t, obj.Close())
	select {
	case err := <-done:
		require.ErrorContains(t, err, "s3store: object is closed")
	case <-time.After(5 * time.Second):
		t.Fatal("Read still blocked after Close")
	}
}

// TestCloseEndsGetInFlight: Close while a Read's GetObject still waits for
// its response headers ends that GET, and the Read returns at once, not
// after the operation timeout (10 s by default): the server holds every
// GET unanswered.
func TestCloseEndsGetInFlight(t *testing.T) {
	t.Parallel()
	srv := s3test.New(t)
	b := s3store.New(srv.Client, srv.Bucket)
	data := testutil.Bytes(14, 100)
	require.NoError(t, b.Put(t.Context(), "k", bytes.NewReader(data), int64(len(data)), cas.PutOptions{}))
	obj, err := b.Open(t.Context(), "k")
	require.NoError(t, err)
	srv.Hang("GetObject")
	done := make(chan error, 1)
	go func() {
		_, err := obj.Read(make([]byte, 10))
		done <- err
	}()
	require.Eventually(t, func() bool { return srv.Held() == 1 }, 5*time.Second, time.Millisecond, "the GET is in flight")
	start := time.Now()
	require.NoError(t, obj.Close())
	select {
	case err := <-done:
		require.ErrorContains(t, err, "s3store: object is closed")
		require.NotErrorIs(t, err, cas.ErrUnavailable)
		require.Less(t, time.Since(start), s3store.DefaultOpTimeout/2)
	case <-time.After(5 * time.Second):
		t.Fatal("Read still waiting for its GET after Close")
	}
	require.Eventually(t, func() bool { return srv.Held() == 0 }, 5*time.Second, time.Millisecond, "the held GET ended with the client")
}
