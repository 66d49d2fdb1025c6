package thumbnail_test

import (
	"bytes"
	"context"
	"errors"
	"image"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/internal/testutil/imagetest"
	"github.com/casa-go/casa/thumbnail"
)

// metrics reads the instruments of a Service through a ManualReader.
type metrics struct{ r *sdkmetric.ManualReader }

func newMetrics() (metrics, thumbnail.Option) {
	r := sdkmetric.NewManualReader()
	return metrics{r}, thumbnail.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(r)))
}

// count returns the total of the counter name, or the number of
// recordings of the histogram name, over the data points whose "outcome"
// attribute is outcome (any, when outcome is "").
func (m metrics) count(t *testing.T, name, outcome string) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, m.r.Collect(context.Background(), &rm))
	match := func(s attribute.Set) bool {
		v, _ := s.Value("outcome")
		return outcome == "" || v.AsString() == outcome
	}
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, md := range sm.Metrics {
			if md.Name != name {
				continue
			}
			switch d := md.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					if match(dp.Attributes) {
						n += dp.Value
					}
				}
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					if match(dp.Attributes) {
						n += int64(dp.Count)
					}
				}
			}
		}
	}
	return n
}

func newStore(t *testing.T, blobs ...[]byte) (*cas.Store, []cas.Hash) {
	t.Helper()
	s := cas.New(memstore.New())
	var hs []cas.Hash
	for _, b := range blobs {
		res, err := s.Put(context.Background(), bytes.NewReader(b))
		require.NoError(t, err)
		hs = append(hs, res.Hash)
	}
	return s, hs
}

func TestServiceGeneratesThenServesFromCaches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, hs := newStore(t, imagetest.JPEG(320, 240))
	h := hs[0]
	dir := t.TempDir()
	dc, err := thumbnail.NewDirCache(dir, 1<<20)
	require.NoError(t, err)
	bc := thumbnail.NewBackendCache(store.Backend())
	m, mo := newMetrics()
	svc := thumbnail.NewService(store, thumbnail.WithCache(dc), thumbnail.WithCache(bc), mo)

	key := "thumbnails/" + h.String() + "_100.jpg"
	require.Equal(t, key, svc.Key(h, 100))

	first, err := svc.Get(ctx, h, 100)
	require.NoError(t, err)
	require.Equal(t, 100, decodeJPEG(t, first).Bounds().Dx())
	want, err := thumbnail.Generate(bytes.NewReader(imagetest.JPEG(320, 240)), 100)
	require.NoError(t, err)
	require.Equal(t, want, first, "the Service returns what Generate makes")

	// Both caches now hold it.
	onDisk, err := os.ReadFile(filepath.Join(dir, "thumbnails", h.String()+"_100.jpg"))
	require.NoError(t, err)
	require.Equal(t, first, onDisk)
	inBackend, ok, err := bc.Get(ctx, key)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, first, inBackend)

	second, err := svc.Get(ctx, h, 100)
	require.NoError(t, err)
	require.Equal(t, first, second)
	require.EqualValues(t, 1, m.count(t, "casa.thumbnail.cache.misses", ""))
	require.EqualValues(t, 1, m.count(t, "casa.thumbnail.cache.hits", ""))
	require.EqualValues(t, 1, m.count(t, "casa.thumbnail.generations", "ok"))
	require.EqualValues(t, 1, m.count(t, "casa.thumbnail.generation.duration", "ok"))

	// The returned slice belongs to the caller.
	second[0] = 0
	third, err := svc.Get(ctx, h, 100)
	require.NoError(t, err)
	require.Equal(t, first, third)

	// A different size is a different thumbnail.
	small, err := svc.Get(ctx, h, 50)
	require.NoError(t, err)
	require.Equal(t, 50, decodeJPEG(t, small).Bounds().Dx())
	require.EqualValues(t, 2, m.count(t, "casa.thumbnail.generations", "ok"))

	// Store.Walk still sees only the blob: thumbnails are derived data.
	var keys []string
	for info, err := range store.Walk(ctx) {
		require.NoError(t, err)
		keys = append(keys, info.Key)
	}
	require.Equal(t, []string{h.Key()}, keys)
}

func TestServiceFillsEarlierCachesOnHit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, hs := newStore(t, imagetest.JPEG(64, 48))
	dc, err := thumbnail.NewDirCache(t.TempDir(), 0)
	require.NoError(t, err)
	bc := thumbnail.NewBackendCache(memstore.New())
	m, mo := newMetrics()
	svc := thumbnail.NewService(store, thumbnail.WithCache(dc), thumbnail.WithCache(bc), mo)
	key := svc.Key(hs[0], 32)
	planted := []byte("planted bytes")
	require.NoError(t, bc.Put(ctx, key, planted))

	got, err := svc.Get(ctx, hs[0], 32)
	require.NoError(t, err)
	require.Equal(t, planted, got, "served from the second cache")
	fromDir, ok, err := dc.Get(ctx, key)
	require.NoError(t, err)
	require.True(t, ok, "the first cache was filled")
	require.Equal(t, planted, fromDir)
	require.EqualValues(t, 0, m.count(t, "casa.thumbnail.generations", ""))
	require.EqualValues(t, 1, m.count(t, "casa.thumbnail.cache.hits", ""))
}

func TestServiceKeyIncludesOutputSettings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, hs := newStore(t, imagetest.JPEG(320, 240))
	bc := thumbnail.NewBackendCache(store.Backend())
	def := thumbnail.NewService(store, thumbnail.WithCache(bc))
	q90 := thumbnail.NewService(store, thumbnail.WithCache(bc), thumbnail.WithQuality(90))
	require.Equal(t, "thumbnails/"+hs[0].String()+"_150_q90.jpg", q90.Key(hs[0], 150))
	require.NotEqual(t, def.Key(hs[0], 150), q90.Key(hs[0], 150))

	a, err := def.Get(ctx, hs[0], 150)
	require.NoError(t, err)
	b, err := q90.Get(ctx, hs[0], 150)
	require.NoError(t, err)
	require.NotEqual(t, a, b, "a cached default-quality thumbnail is not served for quality 90")
	require.Greater(t, len(b), len(a))
}

func TestServiceErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	jpg := imagetest.JPEG(64, 48)
	store, hs := newStore(t, imagetest.PDF(), imagetest.PNGBomb(100000, 100000), imagetest.Corrupt(jpg), jpg)
	m, mo := newMetrics()
	dc, err := thumbnail.NewDirCache(t.TempDir(), 0)
	require.NoError(t, err)
	svc := thumbnail.NewService(store, mo, thumbnail.WithCache(dc))
	small := thumbnail.NewService(store, thumbnail.WithMaxSourceBytes(int64(len(jpg)-1)))

	tests := []struct {
		name    string
		svc     *thumbnail.Service
		h       cas.Hash
		size    int
		want    error
		outcome string
	}{
		{"pdf", svc, hs[0], 100, thumbnail.ErrUnsupported, "unsupported"},
		{"bomb", svc, hs[1], 100, thumbnail.ErrTooLarge, "too_large"},
		{"corrupt", svc, hs[2], 100, thumbnail.ErrCorrupt, "corrupt"},
		{"missing", svc, cas.SumBytes([]byte("never stored")), 100, cas.ErrNotFound, "not_found"},
		{"size 0", svc, hs[3], 0, thumbnail.ErrInvalidSize, ""},
		{"source over byte limit", small, hs[3], 100, thumbnail.ErrTooLarge, ""},
	}
	for _, tt := range tests {
		out, err := tt.svc.Get(ctx, tt.h, tt.size)
		require.ErrorIs(t, err, tt.want, tt.name)
		require.Nil(t, out, tt.name)
		if tt.outcome != "" {
			require.EqualValues(t, 1, m.count(t, "casa.thumbnail.generations", tt.outcome), tt.name)
		}
	}
	// Failures are not cached.
	require.Zero(t, dc.Size())
}

// TestServiceCoalesces64 starts 64 Gets of one uncached thumbnail, holds
// the generation until all 64 wait for it, and checks that exactly one
// generation ran and everybody got the same bytes.
func TestServiceCoalesces64(t *testing.T) {
	t.Parallel()
	store, hs := newStore(t, imagetest.JPEG(320, 240))
	m, mo := newMetrics()
	svc := thumbnail.NewService(store, mo, thumbnail.WithCache(thumbnail.NewBackendCache(memstore.New())))
	var calls atomic.Int32
	release := make(chan struct{})
	thumbnail.SetHook(svc, func(context.Context, string) {
		calls.Add(1)
		<-release
	})
	const n = 64
	outs := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { outs[i], errs[i] = svc.Get(context.Background(), hs[0], 120) })
	}
	key := svc.Key(hs[0], 120)
	require.Eventually(t, func() bool { return thumbnail.Waiters(svc, key) == n }, 10*time.Second, time.Millisecond)
	close(release)
	wg.Wait()
	require.EqualValues(t, 1, calls.Load())
	require.EqualValues(t, 1, m.count(t, "casa.thumbnail.generations", ""))
	require.EqualValues(t, n, m.count(t, "casa.thumbnail.cache.misses", ""))
	for i := range n {
		require.NoError(t, errs[i])
		require.Equal(t, outs[0], outs[i])
	}
	require.Equal(t, 120, decodeJPEG(t, outs[0]).Bounds().Dx())
	require.Zero(t, thumbnail.Waiters(svc, key))
}

func TestServiceWaiterCancelDoesNotCancelOthers(t *testing.T) {
	t.Parallel()
	store, hs := newStore(t, imagetest.JPEG(64, 48))
	svc := thumbnail.NewService(store)
	release := make(chan struct{})
	genCtxErr := make(chan error, 1)
	thumbnail.SetHook(svc, func(ctx context.Context, _ string) {
		<-release
		genCtxErr <- ctx.Err()
	})
	key := svc.Key(hs[0], 32)

	quitter, quit := context.WithCancel(context.Background())
	quitErr := make(chan error, 1)
	go func() {
		_, err := svc.Get(quitter, hs[0], 32)
		quitErr <- err
	}()
	stayErr := make(chan error, 1)
	var stayOut []byte
	go func() {
		var err error
		stayOut, err = svc.Get(context.Background(), hs[0], 32)
		stayErr <- err
	}()
	require.Eventually(t, func() bool { return thumbnail.Waiters(svc, key) == 2 }, 10*time.Second, time.Millisecond)

	quit()
	require.ErrorIs(t, <-quitErr, context.Canceled, "the quitter returns at once")
	require.Equal(t, 1, thumbnail.Waiters(svc, key))
	close(release)
	require.NoError(t, <-stayErr)
	require.NoError(t, <-genCtxErr, "the shared generation was not cancelled")
	require.Equal(t, 32, decodeJPEG(t, stayOut).Bounds().Dx())
}

func TestServiceCancelsGenerationWhenAllWaitersLeave(t *testing.T) {
	t.Parallel()
	store, hs := newStore(t, imagetest.JPEG(64, 48))
	m, mo := newMetrics()
	svc := thumbnail.NewService(store, mo)
	started := make(chan struct{})
	block := true
	genCtxErr := make(chan error, 1)
	thumbnail.SetHook(svc, func(ctx context.Context, _ string) {
		if block {
			close(started)
			<-ctx.Done()
			genCtxErr <- ctx.Err()
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := svc.Get(ctx, hs[0], 32)
		done <- err
	}()
	<-started
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	require.ErrorIs(t, <-genCtxErr, context.Canceled, "nobody waits: the generation is cancelled")
	require.Eventually(t, func() bool { return m.count(t, "casa.thumbnail.generations", "canceled") == 1 }, 10*time.Second, time.Millisecond)

	// The next Get starts afresh and succeeds.
	block = false
	out, err := svc.Get(context.Background(), hs[0], 32)
	require.NoError(t, err)
	require.Equal(t, 32, decodeJPEG(t, out).Bounds().Dx())
}

func TestServiceSemaphore(t *testing.T) {
	t.Parallel()
	var blobs [][]byte
	for i := range 6 {
		blobs = append(blobs, imagetest.JPEG(40+i, 30))
	}
	store, hs := newStore(t, blobs...)
	svc := thumbnail.NewService(store, thumbnail.WithConcurrency(2))
	var active, peak atomic.Int32
	var mu sync.Mutex
	var generated []string
	release := make(chan struct{})
	thumbnail.SetHook(svc, func(_ context.Context, key string) {
		mu.Lock()
		generated = append(generated, key)
		mu.Unlock()
		a := active.Add(1)
		for p := peak.Load(); a > p && !peak.CompareAndSwap(p, a); p = peak.Load() {
		}
		<-release
		active.Add(-1)
	})

	// Two generations hold the semaphore.
	var wg sync.WaitGroup
	errs := make([]error, len(hs))
	for i := range 2 {
		wg.Go(func() { _, errs[i] = svc.Get(context.Background(), hs[i], 16) })
	}
	require.Eventually(t, func() bool { return active.Load() == 2 }, 10*time.Second, time.Millisecond)

	// A third waits for the semaphore and gives up with its context.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := svc.Get(ctx, hs[5], 16)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	// More queue up; none starts while the semaphore is full.
	for i := 2; i < 5; i++ {
		wg.Go(func() { _, errs[i] = svc.Get(context.Background(), hs[i], 16) })
	}
	require.Eventually(t, func() bool {
		n := 0
		for i := 2; i < 5; i++ {
			n += thumbnail.Waiters(svc, svc.Key(hs[i], 16))
		}
		return n == 3
	}, 10*time.Second, time.Millisecond)
	require.EqualValues(t, 2, active.Load())
	close(release)
	wg.Wait()
	for i := range 5 {
		require.NoError(t, errs[i])
	}
	require.EqualValues(t, 2, peak.Load())
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, generated, 5)
	require.NotContains(t, generated, svc.Key(hs[5], 16), "the abandoned generation never ran")
}

func TestServiceRecoversPanic(t *testing.T) {
	t.Parallel()
	store, hs := newStore(t, imagetest.JPEG(64, 48))
	m, mo := newMetrics()
	svc := thumbnail.NewService(store, mo, thumbnail.WithConcurrency(1))
	var calls atomic.Int32
	thumbnail.SetHook(svc, func(context.Context, string) {
		if calls.Add(1) == 1 {
			panic("hook exploded")
		}
	})
	out, err := svc.Get(context.Background(), hs[0], 32)
	require.ErrorContains(t, err, "hook exploded")
	require.Nil(t, out)
	require.EqualValues(t, 1, m.count(t, "casa.thumbnail.generations", "panic"))

	// The semaphore (of one) was released and the flight forgotten.
	out, err = svc.Get(context.Background(), hs[0], 32)
	require.NoError(t, err)
	require.Equal(t, 32, decodeJPEG(t, out).Bounds().Dx())
}

func TestServiceDecoderPanic(t *testing.T) {
	t.Parallel()
	store, hs := newStore(t, imagetest.JPEG(64, 48))
	svc := thumbnail.NewService(store, thumbnail.WithDecoder(func(string, io.Reader) (image.Image, error) { panic("decoder bug") }))
	_, err := svc.Get(context.Background(), hs[0], 32)
	require.ErrorIs(t, err, thumbnail.ErrCorrupt)
}

// brokenCache fails every call: fault injection around the real caches.
type brokenCache struct{ gets, puts atomic.Int32 }

func (b *brokenCache) Get(context.Context, string) ([]byte, bool, error) {
	b.gets.Add(1)
	return nil, false, errors.New("cache disk on fire")
}

func (b *brokenCache) Put(context.Context, string, []byte) error {
	b.puts.Add(1)
	return errors.New("cache disk on fire")
}

func TestServiceSurvivesBrokenCache(t *testing.T) {
	t.Parallel()
	store, hs := newStore(t, imagetest.JPEG(64, 48))
	broken := &brokenCache{}
	good := thumbnail.NewBackendCache(memstore.New())
	svc := thumbnail.NewService(store, thumbnail.WithCache(broken), thumbnail.WithCache(good))
	out, err := svc.Get(context.Background(), hs[0], 32)
	require.NoError(t, err)
	require.Equal(t, 32, decodeJPEG(t, out).Bounds().Dx())
	require.EqualValues(t, 1, broken.gets.Load())
	require.EqualValues(t, 1, broken.puts.Load())
	cached, ok, err := good.Get(context.Background(), svc.Key(hs[0], 32))
	require.NoError(t, err)
	require.True(t, ok, "the working cache was still filled")
	require.Equal(t, out, cached)
}
