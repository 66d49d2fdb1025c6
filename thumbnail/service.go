package thumbnail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"golang.org/x/sync/semaphore"

	"github.com/casa-go/casa/cas"
)

// Service serves thumbnails of the blobs in a cas.Store: from its caches
// when it can, otherwise by generating them. Concurrent requests for the
// same thumbnail share one generation. Generations are bounded in number
// (WithConcurrency) and in the memory they need together
// (WithMemoryBudget), and each has a deadline (WithTimeout). Failures that
// will always repeat are remembered (WithFailureCacheSize). A Service is
// safe for concurrent use.
type Service struct {
	store    *cas.Store
	cfg      config
	sem      chan struct{}
	memory   *semaphore.Weighted
	failures *failureCache

	mu      sync.Mutex
	flights map[string]*flight

	hits        metric.Int64Counter
	misses      metric.Int64Counter
	generations metric.Int64Counter
	duration    metric.Float64Histogram

	// hook, when set (by tests), runs at the start of each generation,
	// once the semaphore is held.
	hook func(ctx context.Context, key string)
}

// flight is one generation shared by every Get waiting for its key.
type flight struct {
	done    chan struct{}
	out     []byte
	err     error
	waiters int
	cancel  context.CancelFunc
}

// NewService returns a Service over store. Without WithCache it caches
// nothing and generates every thumbnail it is asked for, which costs a full
// decode per request: it says so with a warning on its logger. Give it a
// cache, for example:
//
//	dc, err := thumbnail.NewDirCache("/var/cache/app/thumbnails", 256<<20)
//	...
//	svc := thumbnail.NewService(store, thumbnail.WithCache(dc), thumbnail.WithCache(thumbnail.NewBackendCache(store.Backend())))
func NewService(store *cas.Store, opts ...Option) *Service {
	s := &Service{store: store, cfg: newConfig(opts), flights: make(map[string]*flight)}
	if len(s.cfg.caches) == 0 {
		s.cfg.logger.Warn("thumbnail: NewService without a cache: every request decodes its image again; add thumbnail.WithCache")
	}
	s.sem = make(chan struct{}, s.cfg.concurrency)
	s.memory = semaphore.NewWeighted(s.cfg.memoryBudget)
	s.failures = newFailureCache(s.cfg.failureCache)
	mp := s.cfg.meterProvider
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	m := mp.Meter("github.com/casa-go/casa/thumbnail")
	// The noop and SDK meters never fail for these static names.
	s.hits, _ = m.Int64Counter("casa.thumbnail.cache.hits", metric.WithDescription("Thumbnail requests answered from a cache."))
	s.misses, _ = m.Int64Counter("casa.thumbnail.cache.misses", metric.WithDescription("Thumbnail requests found in no cache."))
	s.generations, _ = m.Int64Counter("casa.thumbnail.generations", metric.WithDescription("Thumbnail generations, by outcome."))
	s.duration, _ = m.Float64Histogram("casa.thumbnail.generation.duration", metric.WithUnit("s"), metric.WithDescription("Duration of thumbnail generations."))
	return s
}

// Key returns the cache key of the thumbnail of h at size with the
// Service's output settings: "thumbnails/<hex>_<N>.jpg", with "_q<Q>"
// before ".jpg" when the quality is not DefaultQuality.
func (s *Service) Key(h cas.Hash, size int) string {
	k := strconv.Itoa(size)
	if s.cfg.quality != DefaultQuality {
		k += "_q" + strconv.Itoa(s.cfg.quality)
	}
	return cas.DerivedKey(cas.ThumbnailPrefix, h, k+".jpg")
}

// Get returns the JPEG thumbnail of the blob h that fits inside
// size x size. The caches are consulted first, in order; on a miss the
// thumbnail is generated (see Generate) and stored in every cache.
//
// Concurrent Gets for the same h and size share one generation, which
// runs detached from any one caller: a caller whose ctx ends gets ctx's
// error at once while the others still get the thumbnail; the generation
// is cancelled only when every caller waiting for it has gone.
//
// A generation holds one of the WithConcurrency slots, then, once the
// image header is read, its estimated memory need of the WithMemoryBudget
// budget, waiting for both under the callers' contexts; it must finish
// within WithTimeout of starting.
//
// Errors wrap cas.ErrNotFound (no such blob), ErrUnsupported and
// ErrTooLarge (not a thumbnailable image, or over a limit: pixels, bytes,
// memory, JPEG scans), ErrCorrupt (damaged image data), ErrTimeout (the
// generation ran past its deadline), ErrInvalidSize, or report a backend
// failure. ErrUnsupported, ErrTooLarge and ErrCorrupt are remembered
// (WithFailureCacheSize) and answered again without a generation. The
// returned slice belongs to the caller.
func (s *Service) Get(ctx context.Context, h cas.Hash, size int) ([]byte, error) {
	if size < 1 {
		return nil, fmt.Errorf("%w: %d", ErrInvalidSize, size)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	key := s.Key(h, size)
	if err := s.failures.get(key); err != nil {
		return nil, err
	}
	for i, c := range s.cfg.caches {
		b, ok, err := c.Get(ctx, key)
		if err != nil {
			s.cfg.logger.WarnContext(ctx, "thumbnail: cache get failed", "key", key, "err", err)
			continue
		}
		if ok {
			s.hits.Add(ctx, 1)
			s.fill(ctx, s.cfg.caches[:i], key, b)
			return b, nil
		}
	}
	s.misses.Add(ctx, 1)
	return s.join(ctx, key, h, size)
}

// fill stores b in caches, logging failures.
func (s *Service) fill(ctx context.Context, caches []Cache, key string, b []byte) {
	for _, c := range caches {
		if err := c.Put(ctx, key, b); err != nil {
			s.cfg.logger.WarnContext(ctx, "thumbnail: cache put failed", "key", key, "err", err)
		}
	}
}

// join waits for the flight of key, starting it if there is none.
func (s *Service) join(ctx context.Context, key string, h cas.Hash, size int) ([]byte, error) {
	s.mu.Lock()
	f := s.flights[key]
	if f == nil {
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		f = &flight{done: make(chan struct{}), cancel: cancel}
		s.flights[key] = f
		go s.run(fctx, f, key, h, size)
	}
	f.waiters++
	s.mu.Unlock()

	select {
	case <-f.done:
		if f.err != nil {
			return nil, f.err
		}
		return bytes.Clone(f.out), nil
	case <-ctx.Done():
		s.mu.Lock()
		f.waiters--
		if f.waiters == 0 && s.flights[key] == f {
			// Nobody wants it any more: stop the generation, and let the
			// next Get start afresh.
			delete(s.flights, key)
			f.cancel()
		}
		s.mu.Unlock()
		return nil, ctx.Err()
	}
}

// run generates the thumbnail of a flight, stores it in the caches and
// wakes the waiters.
func (s *Service) run(ctx context.Context, f *flight, key string, h cas.Hash, size int) {
	defer f.cancel()
	out, err := s.generate(ctx, key, h, size)
	if err == nil {
		s.fill(context.WithoutCancel(ctx), s.cfg.caches, key, out)
	}
	s.failures.add(key, err)
	s.mu.Lock()
	if s.flights[key] == f {
		delete(s.flights, key)
	}
	s.mu.Unlock()
	f.out, f.err = out, err
	close(f.done)
}

// generate runs one generation under the semaphore.
func (s *Service) generate(ctx context.Context, key string, h cas.Hash, size int) ([]byte, error) {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-s.sem }()
	if err := ctx.Err(); err != nil { // both were ready: the select chose at random
		return nil, err
	}

	start := time.Now()
	out, err := s.generateOnce(ctx, key, h, size)
	attrs := metric.WithAttributes(attribute.String("outcome", outcome(err)))
	s.generations.Add(ctx, 1, attrs)
	s.duration.Record(ctx, time.Since(start).Seconds(), attrs)
	if err != nil {
		s.cfg.logger.DebugContext(ctx, "thumbnail: generation failed", "key", key, "err", err)
	}
	return out, err
}

// generateOnce reads the blob and makes its thumbnail; a panic becomes an
// error.
func (s *Service) generateOnce(ctx context.Context, key string, h cas.Hash, size int) (out []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: generation of %s panicked: %v", errPanic, key, p)
			s.cfg.logger.ErrorContext(ctx, "thumbnail: generation panicked", "key", key, "panic", p)
		}
	}()
	if s.hook != nil {
		s.hook(ctx, key)
	}
	// The deadline covers opening the blob too: a backend that does not
	// answer cannot hold the generation past it.
	ctx, cancel := context.WithTimeoutCause(ctx, s.cfg.timeout, fmt.Errorf("%w (%v)", ErrTimeout, s.cfg.timeout))
	defer cancel()
	obj, err := s.store.Open(ctx, h)
	if err != nil && ctx.Err() != nil {
		return nil, fmt.Errorf("thumbnail: open %s: %w", h, context.Cause(ctx))
	}
	if err != nil {
		return nil, fmt.Errorf("thumbnail: open %s: %w", h, err)
	}
	defer obj.Close()
	if n := obj.Info().Size; n > s.cfg.maxSourceBytes {
		return nil, fmt.Errorf("%w: source of %d bytes, limit %d", ErrTooLarge, n, s.cfg.maxSourceBytes)
	}
	return s.cfg.generate(ctx, obj, size, s.reserve)
}

// reserve takes n bytes of the memory budget, waiting under ctx.
func (s *Service) reserve(ctx context.Context, n int64) (func(), error) {
	if n > s.cfg.memoryBudget {
		return nil, fmt.Errorf("%w: needs about %d MiB to decode, more than the whole memory budget of %d MiB",
			ErrTooLarge, n>>20, s.cfg.memoryBudget>>20)
	}
	if err := s.memory.Acquire(ctx, n); err != nil {
		return nil, context.Cause(ctx)
	}
	return func() { s.memory.Release(n) }, nil
}

// errPanic marks a recovered panic.
var errPanic = errors.New("thumbnail: internal error")

// outcome classifies a generation error for metrics.
func outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrUnsupported):
		return "unsupported"
	case errors.Is(err, ErrTooLarge):
		return "too_large"
	case errors.Is(err, ErrCorrupt):
		return "corrupt"
	case errors.Is(err, cas.ErrNotFound):
		return "not_found"
	case errors.Is(err, ErrTimeout):
		return "timeout"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	case errors.Is(err, errPanic):
		return "panic"
	}
	return "error"
}
