package fsstore_test

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/fsstore"
)

// syncRecorder is an fdatasync that records its calls, sees whether the
// file is still open when it runs, and fails its first calls when told.
type syncRecorder struct {
	delay    time.Duration
	failFrom int // the first call that fails (1-based); 0: none fails
	failTo   int // the last call that fails
	err      error

	calls    atomic.Int32
	inFlight atomic.Int32
	mu       sync.Mutex
	sizes    []int64 // the file's size at each call
	closed   bool    // a call found its file closed
}

func (r *syncRecorder) datasync(f *os.File) error {
	r.inFlight.Add(1)
	defer r.inFlight.Add(-1)
	call := int(r.calls.Add(1))
	time.Sleep(r.delay)
	fi, err := f.Stat()
	r.mu.Lock()
	if err != nil {
		r.closed = true
	} else {
		r.sizes = append(r.sizes, fi.Size())
	}
	r.mu.Unlock()
	if err != nil {
		return err
	}
	if call >= r.failFrom && call <= r.failTo {
		return r.err
	}
	return f.Sync()
}

// TestBackgroundSyncDuringWrites: a staged file of several writeback chunks
// is fdatasynced in the background while it is written, one fdatasync at a
// time, and once more at Commit after its last byte; none runs after
// Commit returns.
func TestBackgroundSyncDuringWrites(t *testing.T) {
	t.Parallel()
	rec := &syncRecorder{delay: 20 * time.Millisecond}
	b, err := fsstore.New(t.TempDir(), fsstore.WithDatasync(rec.datasync))
	require.NoError(t, err)
	const size = 4*fsstore.WritebackChunk + 5
	data := bytes.Repeat([]byte{7}, size)
	st, err := b.Stage(t.Context())
	require.NoError(t, err)
	maxInFlight := int32(0)
	for p := data; len(p) > 0; p = p[min(len(p), 256<<10):] {
		_, err := st.Write(p[:min(len(p), 256<<10)])
		require.NoError(t, err)
		maxInFlight = max(maxInFlight, rec.inFlight.Load())
		time.Sleep(200 * time.Microsecond) // room for a background sync to end
	}
	require.Positive(t, rec.calls.Load(), "fdatasync ran in the background during the writes")
	require.LessOrEqual(t, maxInFlight, int32(1), "one background fdatasync at a time")
	require.NoError(t, st.Commit(t.Context(), "big"))
	require.Zero(t, rec.inFlight.Load(), "no fdatasync runs after Commit")
	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.False(t, rec.closed, "every fdatasync ran on an open file")
	require.GreaterOrEqual(t, len(rec.sizes), 2, "background fdatasyncs and the final one")
	require.Equal(t, int64(size), rec.sizes[len(rec.sizes)-1], "the last fdatasync covers every byte")
	got, err := os.ReadFile(filepath.Join(b.Dir(), "big"))
	require.NoError(t, err)
	require.Equal(t, data, got)
}

// TestBackgroundSyncErrorFailsCommit: Linux reports a writeback error to
// one fdatasync only, so when a background fdatasync fails and the final
// one succeeds, Commit must still fail, publish nothing and leave no
// temporary file; a Store.Put through it fails too. ENOSPC reads as
// cas.ErrNoSpace.
func TestBackgroundSyncErrorFailsCommit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"EIO", syscall.EIO, syscall.EIO},
		{"ENOSPC", syscall.ENOSPC, cas.ErrNoSpace},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := &syncRecorder{failFrom: 1, failTo: 1, err: tc.err}
			b, err := fsstore.New(t.TempDir(), fsstore.WithDatasync(rec.datasync))
			require.NoError(t, err)
			st, err := b.Stage(t.Context())
			require.NoError(t, err)
			_, err = st.Write(make([]byte, fsstore.WritebackChunk)) // starts the failing background sync
			require.NoError(t, err)
			require.Eventually(t, func() bool { return rec.calls.Load() == 1 && rec.inFlight.Load() == 0 }, 5*time.Second, time.Millisecond)
			err = st.Commit(t.Context(), "k")
			require.ErrorIs(t, err, tc.want)
			require.Equal(t, int32(1), rec.calls.Load(), "the error is known before the final fdatasync")
			_, err = os.Stat(filepath.Join(b.Dir(), "k"))
			require.ErrorIs(t, err, fs.ErrNotExist, "nothing published")
			requireNoTemps(t, b)

			// The same through a Store: the Put of two chunks fails.
			rec.calls.Store(0)
			_, err = cas.New(b).Put(t.Context(), bytes.NewReader(make([]byte, 2*fsstore.WritebackChunk)))
			require.ErrorIs(t, err, tc.want)
			requireNoTemps(t, b)
		})
	}
}

// TestBackgroundSyncErrorStopsWrites: once a background fdatasync has
// failed, the next Write that would start another one fails with its error,
// so a long copy stops early.
func TestBackgroundSyncErrorStopsWrites(t *testing.T) {
	t.Parallel()
	rec := &syncRecorder{failFrom: 1, failTo: 1, err: syscall.EIO}
	b, err := fsstore.New(t.TempDir(), fsstore.WithDatasync(rec.datasync))
	require.NoError(t, err)
	st, err := b.Stage(t.Context())
	require.NoError(t, err)
	defer st.Abort()
	_, err = st.Write(make([]byte, fsstore.WritebackChunk))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return rec.calls.Load() == 1 && rec.inFlight.Load() == 0 }, 5*time.Second, time.Millisecond)
	_, err = st.Write(make([]byte, fsstore.WritebackChunk))
	require.ErrorIs(t, err, syscall.EIO)
}

// TestAbortWaitsForBackgroundSync: Abort does not close the file under a
// running background fdatasync (whose descriptor could be reused).
func TestAbortWaitsForBackgroundSync(t *testing.T) {
	t.Parallel()
	rec := &syncRecorder{delay: 50 * time.Millisecond}
	b, err := fsstore.New(t.TempDir(), fsstore.WithDatasync(rec.datasync))
	require.NoError(t, err)
	st, err := b.Stage(t.Context())
	require.NoError(t, err)
	_, err = st.Write(make([]byte, fsstore.WritebackChunk))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return rec.inFlight.Load() == 1 }, 5*time.Second, time.Millisecond)
	require.NoError(t, st.Abort())
	require.Zero(t, rec.inFlight.Load(), "Abort returned while the fdatasync ran")
	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.False(t, rec.closed, "the fdatasync found its file closed")
	requireNoTemps(t, b)
}

// TestWithoutSyncStartsNoSync: WithoutSync means no fdatasync at all,
// also none in the background.
func TestWithoutSyncStartsNoSync(t *testing.T) {
	t.Parallel()
	rec := &syncRecorder{}
	b, err := fsstore.New(t.TempDir(), fsstore.WithoutSync(), fsstore.WithDatasync(rec.datasync))
	require.NoError(t, err)
	_, err = cas.New(b).Put(t.Context(), bytes.NewReader(make([]byte, 3*fsstore.WritebackChunk)))
	require.NoError(t, err)
	require.Zero(t, rec.calls.Load())
}
