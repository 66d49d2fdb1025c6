package thumbnail

import (
	"image"
	"io"
	"log/slog"
	"runtime"

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
)

// Option configures Generate and NewService. Options that only concern a
// Service (caches, concurrency, logging, metrics) are ignored by Generate.
type Option func(*config)

type config struct {
	maxPixels      int64
	maxSourceBytes int64
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
