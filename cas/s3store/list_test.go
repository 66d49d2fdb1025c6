package s3store_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/s3store"
	"github.com/casa-go/casa/internal/testutil/s3test"
)

// headGate runs every HeadObject request through its hook (when set)
// before the server answers it, and tracks how many are in flight.
type headGate struct {
	mu       sync.Mutex
	hook     func(w http.ResponseWriter, r *http.Request) bool // true: answered
	inFlight atomic.Int64
	maxSeen  atomic.Int64
	ended    atomic.Int64
}

func (g *headGate) set(hook func(w http.ResponseWriter, r *http.Request) bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.hook = hook
}

func (g *headGate) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s3test.Operation(r) != "HeadObject" {
			next.ServeHTTP(w, r)
			return
		}
		n := g.inFlight.Add(1)
		for m := g.maxSeen.Load(); n > m && !g.maxSeen.CompareAndSwap(m, n); m = g.maxSeen.Load() {
		}
		defer func() {
			g.inFlight.Add(-1)
			g.ended.Add(1)
		}()
		g.mu.Lock()
		hook := g.hook
		g.mu.Unlock()
		if hook != nil && hook(w, r) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

// answerKey sets a hook that answers the HEADs of key with answer and
// passes every other HEAD on.
func (g *headGate) answerKey(key string, answer func(w http.ResponseWriter, r *http.Request)) {
	suffix := "/" + key
	g.set(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, suffix) {
			answer(w, r)
			return true
		}
		return false
	})
}

// listed runs b.List(prefix) to its end and returns the keys and the
// errors it yielded.
func listed(t *testing.T, b *s3store.Backend, prefix string) (keys []string, errs []error) {
	t.Helper()
	for info, err := range b.List(t.Context(), prefix) {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		keys = append(keys, info.Key)
	}
	return keys, errs
}

func newGated(t *testing.T, opts ...s3store.Option) (*s3store.Backend, *s3test.Server, *headGate) {
	g := &headGate{}
	s := s3test.New(t, s3test.WithMiddleware(g.middleware))
	return s3store.New(s.Client, s.Bucket, opts...), s, g
}

// TestListHeadCount: List issues exactly one HeadObject per blob key (and
// none for other keys) and reports what the HEAD says; ListKeys, and
// cas.ListKeys through the checked layer, issue none and report the
// stored size.
func TestListHeadCount(t *testing.T) {
	t.Parallel()
	b, s, _ := newGated(t)
	const n = 150
	keys := seedBlobs(t, b, n)
	s.Seed(t, "cas-other", []byte("not a blob"))
	s.Seed(t, "cas/readme.txt", []byte("not a blob either"))
	s.ResetStats()

	var listed []cas.Info
	for info, err := range b.List(t.Context(), "cas") {
		require.NoError(t, err)
		listed = append(listed, info)
	}
	require.Len(t, listed, n+2)
	require.EqualValues(t, n, s.Requests("HeadObject"), "one HEAD per blob key, none for other keys")
	require.EqualValues(t, 1, s.Requests("ListObjectsV2"))
	compressed := 0
	require.Equal(t, "cas-other", listed[0].Key, "'-' sorts before '/'")
	require.Equal(t, "cas/readme.txt", listed[n+1].Key)
	for i, info := range listed[1 : n+1] {
		require.Equal(t, keys[i], info.Key, "lexical order")
		if info.Encoding != "" {
			compressed++
			require.Equal(t, cas.EncodingZstd, info.Encoding)
			require.GreaterOrEqual(t, info.Size, int64(1000), "decoded size from the metadata")
			require.Less(t, info.StoredSize, int64(20))
		} else {
			require.Equal(t, info.StoredSize, info.Size)
		}
	}
	require.Equal(t, (n+2)/3, compressed)

	s.ResetStats()
	var got []string
	for ki, err := range cas.ListKeys(t.Context(), cas.Checked(b), "cas") {
		require.NoError(t, err)
		require.Positive(t, ki.StoredSize)
		require.False(t, ki.ModTime.IsZero())
		got = append(got, ki.Key)
	}
	require.Len(t, got, n+2)
	require.Equal(t, keys, got[1:n+1])
	for i, info := range listed {
		require.Equal(t, info.StoredSize, func() int64 {
			for ki, err := range b.ListKeys(t.Context(), info.Key) {
				require.NoError(t, err)
				return ki.StoredSize
			}
			return -1
		}(), "ListKeys and List agree on the stored size of %d", i)
	}
	require.Zero(t, s.Requests("HeadObject"), "ListKeys issues no HEAD")
}

// TestListHeadsConcurrently: List keeps up to the list concurrency HEADs
// in flight, never more, and still yields in order.
func TestListHeadsConcurrently(t *testing.T) {
	t.Parallel()
	for _, conc := range []int{1, 4} {
		b, _, g := newGated(t, s3store.WithListConcurrency(conc))
		keys := seedBlobs(t, b, 40)
		g.set(func(http.ResponseWriter, *http.Request) bool {
			time.Sleep(10 * time.Millisecond) // let the HEADs overlap
			return false
		})
		got, errs := listed(t, b, cas.KeyPrefix)
		require.Empty(t, errs)
		require.Equal(t, keys, got)
		require.LessOrEqual(t, g.maxSeen.Load(), int64(conc))
		if conc > 1 {
			require.Greater(t, g.maxSeen.Load(), int64(1), "HEADs overlap")
		}
	}
}

// TestListBreakCancelsHeads: when the caller breaks, the HEADs still in
// flight are cancelled (not left to run out their timeout) and List
// returns at once, with no HEAD left running.
func TestListBreakCancelsHeads(t *testing.T) {
	t.Parallel()
	b, _, g := newGated(t)
	keys := seedBlobs(t, b, 30)
	first := "/" + keys[0]
	g.set(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, first) {
			// Answered once the list has its full window of HEADs out
			// (or after 5 s, when the assertions below fail), so the
			// count does not depend on how fast HEADs start.
			deadline := time.Now().Add(5 * time.Second)
			for g.inFlight.Load() < s3store.DefaultListConcurrency && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			return false
		}
		<-r.Context().Done() // held until the client gives up
		return true
	})
	start := time.Now()
	n := 0
	for info, err := range b.List(t.Context(), cas.KeyPrefix) {
		require.NoError(t, err)
		require.Equal(t, keys[0], info.Key)
		n++
		break
	}
	require.Equal(t, 1, n)
	require.Less(t, time.Since(start), 8*time.Second, "List returned without waiting for the held HEADs' timeout")
	require.Eventually(t, func() bool { return g.inFlight.Load() == 0 }, 5*time.Second, 10*time.Millisecond,
		"every held HEAD ended")
	require.EqualValues(t, s3store.DefaultListConcurrency, g.ended.Load(), "HEADs went at most the list concurrency ahead")
}

// TestListHeadErrors: a HEAD that fails ends the listing after the objects
// before it, with an error naming the bucket and key; a blob deleted
// between the listing and its HEAD is skipped; a HEAD that gets no answer
// fails within the operation timeout with cas.ErrUnavailable.
func TestListHeadErrors(t *testing.T) {
	t.Parallel()
	t.Run("Forbidden", func(t *testing.T) {
		t.Parallel()
		b, s, g := newGated(t)
		keys := seedBlobs(t, b, 20)
		g.answerKey(keys[5], func(w http.ResponseWriter, r *http.Request) {
			s3test.WriteError(w, r, 403, "Forbidden", "injected")
		})
		got, errs := listed(t, b, cas.KeyPrefix)
		require.Equal(t, keys[:5], got, "the objects before the failure, in order")
		require.Len(t, errs, 1, "the error is yielded once and ends the iteration")
		require.ErrorContains(t, errs[0], s.Bucket)
		require.ErrorContains(t, errs[0], keys[5])
	})
	t.Run("DeletedMeanwhile", func(t *testing.T) {
		t.Parallel()
		b, _, g := newGated(t)
		keys := seedBlobs(t, b, 20)
		g.answerKey(keys[7], func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusNotFound)
		})
		got, errs := listed(t, b, cas.KeyPrefix)
		require.Empty(t, errs)
		require.Equal(t, append(append([]string(nil), keys[:7]...), keys[8:]...), got)
	})
	t.Run("Hung", func(t *testing.T) {
		t.Parallel()
		b, s, _ := newGated(t, s3store.WithOpTimeout(300*time.Millisecond), s3store.WithAttemptTimeout(100*time.Millisecond))
		keys := seedBlobs(t, b, 20)
		s.Hang("HeadObject")
		start := time.Now()
		var errs []error
		for _, err := range b.List(context.Background(), cas.KeyPrefix) {
			require.Error(t, err)
			errs = append(errs, err)
		}
		require.Less(t, time.Since(start), 5*time.Second)
		require.Len(t, errs, 1)
		require.ErrorIs(t, errs[0], cas.ErrUnavailable)
		require.ErrorContains(t, errs[0], "HeadObject "+s.Bucket+"/"+keys[0])
		s.Resume()
	})
}
