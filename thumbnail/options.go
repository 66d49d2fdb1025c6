package thumbnail

import (
	"fmt"
	"image"
	"io"
	"log/slog"
	"runtime"
	"time"

	"go.opentelemetry.io/otel/metric"
)

// Defaults of the generation settings.
const (
	// DefaultMaxPixels is the largest width x height decoded: 50 megapixels.
	DefaultMaxPixels = 50_000_000
	// DefaultMaxSourceBytes is the largest source read: 100 MiB.
	DefaultMaxSourceBytes = 100 << 20
	// DefaultQuality is the JPEG quality of thumbnails.
	DefaultQuality = 82
	// DefaultMaxMemory is the most memory one generation may need, as
	// estimated from the image header: 384 MiB. It admits every baseline
	// JPEG and 8-bit PNG within DefaultMaxPixels and progressive 4:2:0
	// JPEGs up to about 50 MP, and refuses 49 MP progressive 4:4:4 or CMYK
	// JPEGs (700 MiB and 1.1 GiB).
	DefaultMaxMemory = 384 << 20
	// DefaultMemoryBudget is the memory a Service's concurrent
	// generations may need together: 512 MiB.
	DefaultMemoryBudget = 512 << 20
	// DefaultTimeout is the deadline of one generation: 10 seconds.
	DefaultTimeout = 10 * time.Second
	// DefaultFailureCacheSize is how many failed thumbnails a Service
	// remembers: 4096.
	DefaultFailureCacheSize = 4096
)

// Option configures NewService. Every GenerateOption is an Option too;
// the options that only concern a Service (caches, the memory budget, the
// failure cache, concurrency, logging, metrics) are Options but not
// GenerateOptions, so Generate cannot be given one it would ignore.
//
// An option given a value outside its documented range panics, naming
// itself and the value: a programmer error, caught at construction.
type Option interface{ apply(*config) }

// GenerateOption configures one generation: Generate, GenerateContext, and
// every generation of a Service (it is an Option too).
type GenerateOption interface {
	Option
	generateOption()
}

type serviceOption func(*config)

func (o serviceOption) apply(c *config) { o(c) }

type generateOption func(*config)

func (o generateOption) apply(c *config) { o(c) }
func (generateOption) generateOption()   {}

// badOption panics for an option given a nonsense value.
func badOption(name string, v any, want string) {
	panic(fmt.Sprintf("thumbnail: %s(%v): %s", name, v, want))
}

type config struct {
	maxPixels      int64
	maxSourceBytes int64
	maxMemory      int64
	memoryBudget   int64
	timeout        time.Duration
	failureCache   int
	quality        int
	caches         []Cache
	concurrency    int
	logger         *slog.Logger
	meterProvider  metric.MeterProvider
	// decoder replaces the format's decoder; set by tests only.
	decoder func(format string, r io.Reader) (image.Image, error)
}

func newConfig(opts []Option) config {
	c := config{
		maxPixels:      DefaultMaxPixels,
		maxSourceBytes: DefaultMaxSourceBytes,
		maxMemory:      DefaultMaxMemory,
		memoryBudget:   DefaultMemoryBudget,
		timeout:        DefaultTimeout,
		failureCache:   DefaultFailureCacheSize,
		quality:        DefaultQuality,
		concurrency:    runtime.GOMAXPROCS(0),
		logger:         slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		o.apply(&c)
	}
	return c
}

// WithMaxPixels sets the largest width x height that is decoded (default
// DefaultMaxPixels). Larger images fail with ErrTooLarge before any pixel
// buffer is allocated. The limit is in 4-byte pixels: an image in 16-bit
// colour (8 bytes a pixel) counts double. n must be positive.
func WithMaxPixels(n int64) GenerateOption {
	if n <= 0 {
		badOption("WithMaxPixels", n, "want a positive number of pixels")
	}
	return generateOption(func(c *config) { c.maxPixels = n })
}

// WithMaxSourceBytes sets the largest source, in bytes, that is read
// (default DefaultMaxSourceBytes). Larger sources fail with ErrTooLarge.
// n must be positive.
func WithMaxSourceBytes(n int64) GenerateOption {
	if n <= 0 {
		badOption("WithMaxSourceBytes", n, "want a positive number of bytes")
	}
	return generateOption(func(c *config) { c.maxSourceBytes = n })
}

// WithMaxMemory sets the most memory, in bytes, one generation may need
// (default DefaultMaxMemory). The need is estimated from the image header
// before anything is decoded, from what the decoder and the scaling
// allocate: the pixels at their decoded depth (16-bit colour counts 8
// bytes a pixel), chroma planes at their subsampling, the 256 bytes of
// coefficients per 8x8 block per component that a progressive JPEG keeps
// until its last scan, the per-pass buffers of an interlaced PNG, and the
// conversions of CMYK and RGB JPEGs. An image that needs more fails with
// ErrTooLarge, like one over the pixel limit: so a large progressive JPEG
// can be refused below the pixel limit. n must be positive.
func WithMaxMemory(n int64) GenerateOption {
	if n <= 0 {
		badOption("WithMaxMemory", n, "want a positive number of bytes")
	}
	return generateOption(func(c *config) { c.maxMemory = n })
}

// WithMemoryBudget sets the memory, in bytes, that a Service's concurrent
// generations may need together (default DefaultMemoryBudget): each holds
// its estimate (see WithMaxMemory) of a weighted semaphore while it
// decodes and scales, and waits, under its context and deadline, until
// the budget has room. A generation that needs more than the whole budget
// fails with ErrTooLarge at once. n must be positive.
func WithMemoryBudget(n int64) Option {
	if n <= 0 {
		badOption("WithMemoryBudget", n, "want a positive number of bytes")
	}
	return serviceOption(func(c *config) { c.memoryBudget = n })
}

// WithTimeout sets the deadline of one generation (default
// DefaultTimeout), from the moment a Service starts it (or Generate is
// called) to the thumbnail, including the wait for the memory budget.
// Past it, the next read of the source fails and the generation fails
// with ErrTimeout. The decoders are stopped at their reads: the
// computation after the last read of a source (the inverse DCT of a
// progressive JPEG, scaling) is not interrupted, so a generation can
// overrun its deadline by that much. d must be positive.
func WithTimeout(d time.Duration) GenerateOption {
	if d <= 0 {
		badOption("WithTimeout", d, "want a positive duration")
	}
	return generateOption(func(c *config) { c.timeout = d })
}

// WithFailureCacheSize sets how many failed thumbnails a Service
// remembers (default DefaultFailureCacheSize). A thumbnail whose source
// is not a supported image (ErrUnsupported), is over a limit (ErrTooLarge)
// or does not decode (ErrCorrupt) will fail the same way every time, as
// blobs never change: the Service answers it with the same error from an
// in-process LRU cache of this many entries, without reading the blob
// again. Timeouts, cancellations and backend errors are never cached.
// Zero disables the cache; negative is a programmer error.
func WithFailureCacheSize(n int) Option {
	if n < 0 {
		badOption("WithFailureCacheSize", n, "want 0 (no failure cache) or more entries")
	}
	return serviceOption(func(c *config) { c.failureCache = n })
}

// WithQuality sets the JPEG quality of thumbnails, 1 to 100 (default
// DefaultQuality). A non-default
// quality is part of the cache key.
func WithQuality(q int) GenerateOption {
	if q < 1 || q > 100 {
		badOption("WithQuality", q, "want 1 to 100")
	}
	return generateOption(func(c *config) { c.quality = q })
}

// WithCache adds a cache to a Service. Several caches are consulted in
// the order given; on a hit the caches before it are filled, and a
// generated thumbnail is stored in all of them.
func WithCache(cache Cache) Option {
	if cache == nil {
		badOption("WithCache", cache, "want a Cache")
	}
	return serviceOption(func(c *config) { c.caches = append(c.caches, cache) })
}

// WithConcurrency bounds how many thumbnails a Service generates at once
// (default runtime.GOMAXPROCS(0)). n must be at least 1.
func WithConcurrency(n int) Option {
	if n <= 0 {
		badOption("WithConcurrency", n, "want at least 1")
	}
	return serviceOption(func(c *config) { c.concurrency = n })
}

// WithLogger sets the logger of a Service. The default, and nil, discard.
func WithLogger(l *slog.Logger) Option {
	return serviceOption(func(c *config) {
		if l != nil {
			c.logger = l
		}
	})
}

// WithMeterProvider sets the OpenTelemetry MeterProvider that records a
// Service's cache hits and misses, generations and generation durations.
// The default records nothing.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return serviceOption(func(c *config) { c.meterProvider = mp })
}
