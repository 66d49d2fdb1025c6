package cashttp_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/s3store"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/internal/testutil/s3test"
)

// TestMultiRangeHangupDuringStalledRead is the Close-during-Read defect on
// its real path. For a multi-range request, http.ServeContent reads the
// blob in a goroutine of its own; when the client hangs up, ServeContent
// returns on the failed write while that goroutine is still in a Read of
// the object, and the handler went on to close the object: with s3store,
// whose GET body stalled, the Read then dereferenced the call Close had
// dropped (a SIGSEGV that killed the server), and the handler and that
// goroutine raced on the source's recorded errors. Now the handler
// returns, no Read sees a Close of its object (the object is closed once
// the Read in flight has returned), the object is closed exactly once, the
// stalled GET ends with the request (not after the 30 s stall timeout),
// and the race detector sees no race.
func TestMultiRangeHangupDuringStalledRead(t *testing.T) {
	t.Parallel()
	var stall atomic.Bool
	stalled := make(chan struct{}, 1) // a stalled GET sent its headers
	var heldGets atomic.Int32         // stalled GETs not ended yet
	s3 := s3test.New(t, s3test.WithMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if s3test.Operation(r) != "GetObject" || !stall.Load() {
				next.ServeHTTP(w, r)
				return
			}
			heldGets.Add(1)
			defer heldGets.Add(-1)
			// Headers, then a body that never comes.
			w.Header().Set("Content-Length", "1000")
			w.WriteHeader(http.StatusPartialContent)
			http.NewResponseController(w).Flush()
			select {
			case stalled <- struct{}{}:
			default:
			}
			<-r.Context().Done()
		})
	}))
	watch := &closeWatch{Backend: s3store.New(s3.Client, s3.Bucket)}
	f := newFixture(t, watch)
	h := f.put(t, testutil.Bytes(13, 100_000))
	stall.Store(true)

	// The client hangs up once the blob's read is stalled: the write of
	// the response fails (as a write to a closed connection does) and the
	// client's request is cancelled.
	var handled sync.WaitGroup
	hd := f.srv.Config.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handled.Add(1)
		defer handled.Done()
		hd.ServeHTTP(&hangupWriter{ResponseWriter: w, stalled: stalled}, r)
	}))
	t.Cleanup(srv.Close)

	const iterations = 8
	for i := range iterations {
		ctx, cancel := context.WithCancel(t.Context())
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+urls.Inline(h, "application/octet-stream"), nil)
		require.NoError(t, err)
		req.Header.Set("Range", "bytes=0-9,50000-50009,-10")
		done := make(chan error, 1)
		go func() {
			res, err := srv.Client().Do(req)
			if err == nil {
				_ = res.Body.Close()
			}
			done <- err
		}()
		require.Eventually(t, func() bool { return watch.opens.Load() == int32(i+1) }, 5*time.Second, time.Millisecond, "iteration %d", i)
		require.Eventually(t, func() bool { return watch.closes.Load() == int32(i+1) }, 5*time.Second, time.Millisecond,
			"iteration %d: the object is closed once the stalled read has ended, not after the stall timeout", i)
		cancel()
		<-done
		handled.Wait()
		require.Eventually(t, func() bool { return heldGets.Load() == 0 }, 5*time.Second, time.Millisecond, "iteration %d: the stalled GET ended", i)
	}
	require.Zero(t, watch.closeDuringRead.Load(), "no Close while a Read was in flight")
	require.EqualValues(t, iterations, watch.closes.Load(), "each object closed once")
	require.NotContains(t, f.logs.String(), "level=ERROR", "a client that hung up is no server error")
}

// hangupWriter is the connection of a client that hangs up once the blob's
// read is stalled: the first body write waits for the stall, then fails.
type hangupWriter struct {
	http.ResponseWriter
	stalled <-chan struct{}
	failed  bool
}

var errHungUp = errors.New("test: the client hung up")

func (w *hangupWriter) Write(p []byte) (int, error) {
	if !w.failed {
		w.failed = true
		select {
		case <-w.stalled:
		case <-time.After(5 * time.Second):
		}
		time.Sleep(10 * time.Millisecond) // let the read reach the stalled body
	}
	return 0, errHungUp
}

// closeWatch wraps a Backend's Objects to count Opens and Closes and to see
// whether an Object is ever closed while one of its Reads is in flight.
type closeWatch struct {
	cas.Backend
	opens, closes, closeDuringRead atomic.Int32
}

func (c *closeWatch) Open(ctx context.Context, key string) (cas.Object, error) {
	obj, err := c.Backend.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	c.opens.Add(1)
	return &watchedObject{Object: obj, w: c}, nil
}

type watchedObject struct {
	cas.Object
	w       *closeWatch
	reading atomic.Int32
}

func (o *watchedObject) Read(p []byte) (int, error) {
	o.reading.Add(1)
	defer o.reading.Add(-1)
	return o.Object.Read(p)
}

func (o *watchedObject) Close() error {
	if o.reading.Load() > 0 {
		o.w.closeDuringRead.Add(1)
	}
	o.w.closes.Add(1)
	return o.Object.Close()
}
