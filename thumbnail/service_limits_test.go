package thumbnail_test

import (
	"bytes"
	"context"
	"image"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/internal/testutil/faulty"
	"github.com/casa-go/casa/internal/testutil/imagetest"
	"github.com/casa-go/casa/thumbnail"
)

// TestServiceCachesPermanentFailures: a blob whose thumbnail fails with
// ErrCorrupt, ErrTooLarge or ErrUnsupported is generated once; later Gets
// get the same error without a generation (counted by the hook and the
// metrics).
func TestServiceCachesPermanentFailures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, hs := newStore(t,
		imagetest.ProgressiveJPEG(500, 500, imagetest.LayoutYCbCr420, 3, true), // corrupt (truncated), after allocating
		imagetest.ProgressiveJPEG(7000, 7000, imagetest.LayoutCMYK, 4, false),  // too large
		imagetest.PDF(),
		imagetest.JPEG(64, 48),
	)
	m, mo := newMetrics()
	svc := thumbnail.NewService(store, mo)
	var gens atomic.Int32
	thumbnail.SetHook(svc, func(context.Context, string) { gens.Add(1) })
	for i, want := range []error{thumbnail.ErrCorrupt, thumbnail.ErrTooLarge, thumbnail.ErrUnsupported} {
		_, first := svc.Get(ctx, hs[i], 100)
		require.ErrorIs(t, first, want)
		for range 3 {
			_, err := svc.Get(ctx, hs[i], 100)
			require.ErrorIs(t, err, want)
			require.Equal(t, first.Error(), err.Error())
		}
	}
	require.EqualValues(t, 3, gens.Load(), "one generation per failing blob")
	require.EqualValues(t, 3, m.count(t, "casa.thumbnail.generations", ""))
	require.Equal(t, 3, thumbnail.FailuresCached(svc))

	// Another size is another thumbnail; a good blob is not affected.
	_, err := svc.Get(ctx, hs[0], 50)
	require.ErrorIs(t, err, thumbnail.ErrCorrupt)
	out, err := svc.Get(ctx, hs[3], 32)
	require.NoError(t, err)
	require.Equal(t, 32, decodeJPEG(t, out).Bounds().Dx())
	require.EqualValues(t, 5, gens.Load())
}

// TestServiceFailureCacheBounded: the failure cache keeps at most its size,
// least recently used out; a negative size disables it.
func TestServiceFailureCacheBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var blobs [][]byte
	for i := range 5 {
		blobs = append(blobs, append(imagetest.PDF(), byte(i)))
	}
	store, hs := newStore(t, blobs...)
	svc := thumbnail.NewService(store, thumbnail.WithFailureCacheSize(2))
	var gens atomic.Int32
	thumbnail.SetHook(svc, func(context.Context, string) { gens.Add(1) })
	for _, h := range hs {
		_, err := svc.Get(ctx, h, 10)
		require.ErrorIs(t, err, thumbnail.ErrUnsupported)
	}
	require.Equal(t, 2, thumbnail.FailuresCached(svc))
	_, _ = svc.Get(ctx, hs[4], 10) // remembered
	require.EqualValues(t, 5, gens.Load())
	_, _ = svc.Get(ctx, hs[0], 10) // evicted: generated again
	require.EqualValues(t, 6, gens.Load())

	off := thumbnail.NewService(store, thumbnail.WithFailureCacheSize(0))
	thumbnail.SetHook(off, func(context.Context, string) { gens.Add(1) })
	for range 2 {
		_, err := off.Get(ctx, hs[0], 10)
		require.ErrorIs(t, err, thumbnail.ErrUnsupported)
	}
	require.EqualValues(t, 8, gens.Load())
	require.Zero(t, thumbnail.FailuresCached(off))
}

// TestServiceDoesNotCacheTransientFailures: timeouts, cancellations and
// backend errors are generated again on the next Get, and then succeed.
func TestServiceDoesNotCacheTransientFailures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	jpg := imagetest.JPEG(64, 48)

	// Backend error on the first Open.
	fault := faulty.New(memstore.New(), faulty.WithFailNth(faulty.MethodOpen, 1))
	store := cas.New(fault)
	res, err := store.Put(ctx, bytes.NewReader(jpg))
	require.NoError(t, err)
	svc := thumbnail.NewService(store)
	_, err = svc.Get(ctx, res.Hash, 32)
	require.ErrorIs(t, err, faulty.ErrInjected)
	out, err := svc.Get(ctx, res.Hash, 32)
	require.NoError(t, err, "a backend error is not remembered")
	require.Equal(t, 32, decodeJPEG(t, out).Bounds().Dx())
	require.Zero(t, thumbnail.FailuresCached(svc))

	// A decoder slower than the deadline, once.
	mem, hs := newStore(t, jpg)
	var calls atomic.Int32
	slowOnce := thumbnail.WithDecoder(func(format string, r io.Reader) (image.Image, error) {
		if calls.Add(1) == 1 {
			time.Sleep(100 * time.Millisecond)
			_, err := io.ReadAll(r) // the read after the deadline fails
			return nil, err
		}
		return image.NewGray(image.Rect(0, 0, 64, 48)), nil
	})
	m, mo := newMetrics()
	svc = thumbnail.NewService(mem, slowOnce, thumbnail.WithTimeout(20*time.Millisecond), mo)
	_, err = svc.Get(ctx, hs[0], 32)
	require.ErrorIs(t, err, thumbnail.ErrTimeout)
	require.NotErrorIs(t, err, thumbnail.ErrCorrupt)
	require.EqualValues(t, 1, m.count(t, "casa.thumbnail.generations", "timeout"))
	_, err = svc.Get(ctx, hs[0], 32)
	require.NoError(t, err, "a timeout is not remembered")
	require.EqualValues(t, 2, calls.Load())

	// A generation cancelled because its only caller left.
	svc = thumbnail.NewService(mem)
	started := make(chan struct{})
	var once sync.Once
	thumbnail.SetHook(svc, func(ctx context.Context, _ string) {
		once.Do(func() {
			close(started)
			<-ctx.Done()
		})
	})
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { _, err := svc.Get(cctx, hs[0], 32); done <- err }()
	<-started
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	require.Eventually(t, func() bool {
		_, err := svc.Get(ctx, hs[0], 32)
		return err == nil
	}, 10*time.Second, 10*time.Millisecond, "a cancellation is not remembered")
	require.Zero(t, thumbnail.FailuresCached(svc))
}

// TestServiceMemoryBudget: generations hold their estimated need of the
// shared budget while they decode, so two that do not fit together run
// one after the other; one that needs more than the whole budget is
// refused at once, without waiting; a Get waiting for room gives up with
// its context.
func TestServiceMemoryBudget(t *testing.T) {
	t.Parallel()
	a := imagetest.ProgressiveJPEG(1000, 1000, imagetest.LayoutGray, 1, false)
	b := imagetest.ProgressiveJPEG(1000, 1001, imagetest.LayoutGray, 1, false)
	// CMYK: image/jpeg decodes it at full size, whatever the thumbnail.
	big := imagetest.ProgressiveJPEG(3000, 3000, imagetest.LayoutCMYK, 4, false)
	need := estimate(t, a, b)
	store, hs := newStore(t, a, b, big)

	var active, peak atomic.Int32
	release := make(chan struct{})
	holding := thumbnail.WithDecoder(func(format string, r io.Reader) (image.Image, error) {
		n := active.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		<-release
		active.Add(-1)
		return image.NewGray(image.Rect(0, 0, 1000, 1000)), nil
	})
	svc := thumbnail.NewService(store, holding, thumbnail.WithConcurrency(4), thumbnail.WithMemoryBudget(need*3/2))

	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() { _, errs[i] = svc.Get(context.Background(), hs[i], 100) })
	}
	require.Eventually(t, func() bool { return active.Load() == 1 }, 10*time.Second, time.Millisecond)

	// Over the whole budget: refused at once, while the budget is held.
	start := time.Now()
	_, err := svc.Get(context.Background(), hs[2], 100)
	require.ErrorIs(t, err, thumbnail.ErrTooLarge)
	require.ErrorContains(t, err, "memory budget")
	require.Less(t, time.Since(start), 5*time.Second)

	// The second of the pair waits for room.
	time.Sleep(50 * time.Millisecond)
	require.EqualValues(t, 1, active.Load(), "the second generation waits for memory")
	close(release)
	wg.Wait()
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	require.EqualValues(t, 1, peak.Load(), "never both at once")

	// With room for both, both run at once.
	release = make(chan struct{})
	peak.Store(0)
	roomy := thumbnail.NewService(store, holding, thumbnail.WithConcurrency(4), thumbnail.WithMemoryBudget(need*2))
	for i := range 2 {
		wg.Go(func() { _, errs[i] = roomy.Get(context.Background(), hs[i], 100) })
	}
	require.Eventually(t, func() bool { return active.Load() == 2 }, 10*time.Second, time.Millisecond)
	close(release)
	wg.Wait()
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
}

// TestServiceMemoryWaitHonoursContext: a Get whose generation waits for
// memory returns when its context ends, and the generation is dropped.
func TestServiceMemoryWaitHonoursContext(t *testing.T) {
	t.Parallel()
	a := imagetest.ProgressiveJPEG(1000, 1000, imagetest.LayoutGray, 1, false)
	b := imagetest.ProgressiveJPEG(1000, 1001, imagetest.LayoutGray, 1, false)
	need := estimate(t, a, b)
	store, hs := newStore(t, a, b)
	var decodes atomic.Int32
	release := make(chan struct{})
	holding := thumbnail.WithDecoder(func(string, io.Reader) (image.Image, error) {
		decodes.Add(1)
		<-release
		return image.NewGray(image.Rect(0, 0, 1000, 1000)), nil
	})
	m, mo := newMetrics()
	svc := thumbnail.NewService(store, holding, mo, thumbnail.WithConcurrency(4), thumbnail.WithMemoryBudget(need))
	done := make(chan error, 1)
	go func() { _, err := svc.Get(context.Background(), hs[0], 100); done <- err }()
	require.Eventually(t, func() bool { return decodes.Load() == 1 }, 10*time.Second, time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := svc.Get(ctx, hs[1], 100)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Eventually(t, func() bool { return m.count(t, "casa.thumbnail.generations", "canceled") == 1 }, 10*time.Second, time.Millisecond)
	close(release)
	require.NoError(t, <-done)
	require.EqualValues(t, 1, decodes.Load(), "the abandoned generation never decoded")
}

// estimate returns the largest memory need of the sources, for a
// thumbnail of 100.
func estimate(t *testing.T, srcs ...[]byte) int64 {
	t.Helper()
	var need int64
	for _, src := range srcs {
		n, err := thumbnail.Estimate(bytes.NewReader(src), 100)
		require.NoError(t, err)
		need = max(need, n)
	}
	return need
}
