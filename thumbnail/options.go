package thumbnail

import (
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

// Option configures Generate and NewService. Options that only concern a
// Service (caches, concurrency, logging, metrics) are ignored by Generate.
type Option func(*config)

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
		o(&c)
	}
	return c
}

// WithMaxPixels sets the largest width x height that is decoded (default
// DefaultMaxPixels). Larger images fail with ErrTooLarge before any pixel
// buffer is allocated. The limit is in 4-byte pixels: an image in 16-bit
// colour (8 bytes a pixel) counts double. Zero or negative keeps the default.
func WithMaxPixels(n int64) Option {
	return func(c *config) {
		if n > 0 {
			c.maxPixels = n
		}
	}
}

// WithMaxSourceBytes sets the largest source, in bytes, that is read
// (default DefaultMaxSourceBytes). Larger sources fail with ErrTooLarge.
// Zero or negative keeps the default.
func WithMaxSourceBytes(n int64) Option {
	return func(c *config) {
		if n > 0 {
			c.maxSourceBytes = n
		}
	}
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
// can be refused below the pixel limit. Zero or negative keeps the
// default.
func WithMaxMemory(n int64) Option {
	return func(c *config) {
		if n > 0 {
			c.maxMemory = n
		}
	}
}

// WithMemoryBudget sets the memory, in bytes, that a Service's concurrent
// generations may need together (default DefaultMemoryBudget): each holds
// its estimate (see WithMaxMemory) of a weighted semaphore while it
// decodes and scales, and waits, under its context and deadline, until
// the budget has room. A generation that needs more than the whole budget
// fails with ErrTooLarge at once. Generate ignores it. Zero or negative
// keeps the default.
func WithMemoryBudget(n int64) Option {
	return func(c *config) {
		if n > 0 {
			c.memoryBudget = n
		}
	}
}

// WithTimeout sets the deadline of one generation (default
// DefaultTimeout), from the moment a Service starts it (or Generate is
// called) to the thumbnail, including the wait for the memory budget.
// Past it, the next read of the source fails and the generation fails
// with ErrTimeout. The decoders are stopped at their reads: the
// computation after the last read of a source (the inverse DCT of a
// progressive JPEG, scaling) is not interrupted, so a generation can
// overrun its deadline by that much. Zero or negative keeps the default.
func WithTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.timeout = d
		}
	}
}

// WithFailureCacheSize sets how many failed thumbnails a Service
// remembers (default DefaultFailureCacheSize). A thumbnail whose source
// is not a supported image (ErrUnsupported), is over a limit (ErrTooLarge)
// or does not decode (ErrCorrupt) will fail the same way every time, as
// blobs never change: the Service answers it with the same error from an
// in-process LRU cache of this many entries, without reading the blob
// again. Timeouts, cancellations and backend errors are never cached.
// Negative disables the cache; zero keeps the default.
func WithFailureCacheSize(n int) Option {
	return func(c *config) {
		if n != 0 {
			c.failureCache = max(n, 0)
		}
	}
}

// WithQuality sets the JPEG quality of thumbnails, 1 to 100 (default
// DefaultQuality); values outside that range are clamped. A non-default
// quality is part of the cache key.
func WithQuality(q int) Option {
	return func(c *config) { c.quality = min(max(q, 1), 100) }
}

// WithCache adds a cache to a Service. Several caches are consulted in
// the order given; on a hit the caches before it are filled, and a
// generated thumbnail is stored in all of them.
func WithCache(cache Cache) Option {
	return func(c *config) {
		if cache != nil {
			c.caches = append(c.caches, cache)
		}
	}
}

// WithConcurrency bounds how many thumbnails a Service generates at once
// (default runtime.GOMAXPROCS(0)). Zero or negative keeps the default.
func WithConcurrency(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.concurrency = n
		}
	}
}

// WithLogger sets the logger of a Service. The default discards.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}

// WithMeterProvider sets the OpenTelemetry MeterProvider that records a
// Service's cache hits and misses, generations and generation durations.
// The default records nothing.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) { c.meterProvider = mp }
}
