package cashttp

import (
	"fmt"
	"log/slog"
	"slices"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/casurl"
)

// Option configures a Handler.
type Option func(*Handler)

// WithThumbnails serves ?thumbnail=N requests with t, typically a
// *thumbnail.Service. Without it thumbnail requests get 404.
func WithThumbnails(t Thumbnailer) Option { return func(h *Handler) { h.thumbs = t } }

// WithMaxThumbnailSize sets the largest thumbnail size served (default
// DefaultMaxThumbnailSize); larger sizes get 400. n must be positive.
func WithMaxThumbnailSize(n int) Option {
	if n < 1 {
		badOption("WithMaxThumbnailSize", n, "want at least 1")
	}
	return func(h *Handler) { h.maxThumb = n }
}

// WithThumbnailSizes restricts thumbnails to the given sizes: any other
// size gets 400, whatever WithMaxThumbnailSize says. Every size must be at
// least 1, and at least one size must be given. An allow-list bounds the
// work (and cache space) a client can cause to the sizes the application
// actually uses.
func WithThumbnailSizes(sizes ...int) Option {
	if len(sizes) == 0 {
		badOption("WithThumbnailSizes", "no sizes", "want at least one size")
	}
	for _, s := range sizes {
		if s < 1 {
			badOption("WithThumbnailSizes", sizes, "want sizes of at least 1")
		}
	}
	sorted := slices.Sorted(slices.Values(sizes))
	return func(h *Handler) { h.thumbSizes = sorted }
}

// WithSigner requires every URL to carry a valid signature by s (see
// casurl.Signer): a missing or wrong sig gets 403. A nil s turns
// signing off, the default.
func WithSigner(s *casurl.Signer) Option { return func(h *Handler) { h.signer = s } }

// WithBackendTimeout bounds how long the handler waits for the backend to
// open a blob (default DefaultBackendTimeout). Past it the request gets 503
// with Retry-After and the wait is logged at Warn level. It bounds only
// the Open: once the blob has started to arrive, a large one may take as
// long as the transfer needs (the backend bounds a stalled transfer).
// Thumbnail requests are bounded by the Thumbnailer, not by this. Zero
// turns the bound off; negative panics.
func WithBackendTimeout(d time.Duration) Option {
	if d < 0 {
		badOption("WithBackendTimeout", d, "want 0 (no bound) or a positive duration")
	}
	return func(h *Handler) { h.openTimeout = d }
}

// badOption panics for an option given a nonsense value: a programmer
// error, caught where the Handler is built.
func badOption(name string, v any, want string) {
	panic(fmt.Sprintf("cashttp: %s(%v): %s", name, v, want))
}

// WithLogger sets the logger. Storage failures answered with 500 are
// logged at Error level with the underlying error, which is never sent to
// the client; a backend that did not answer in time (503) and a thumbnail
// of a corrupt image or past its deadline (500) at Warn level. The default
// discards.
func WithLogger(l *slog.Logger) Option { return func(h *Handler) { h.setLogger(l) } }

// WithMeterProvider sets the OpenTelemetry MeterProvider that records
// casa.http.requests (by kind and status code), casa.http.duration
// (seconds, by kind and status code) and casa.http.bytes (body bytes of
// successful responses, by kind). The kind is "content" or "thumbnail",
// from the parsed request, or "invalid" for a request refused before it
// parsed (a method other than GET or HEAD, a malformed URL, a missing or
// wrong signature). The default records nothing.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(h *Handler) { h.setMeterProvider(mp) }
}

// telemetry is where a Handler and an UploadHandler log and record. Their
// logger and MeterProvider options set it the same way (a nil value
// keeps what was set before), and both start from the same defaults,
// which discard; each handler builds its instruments from meters once its
// options are applied.
type telemetry struct {
	logger *slog.Logger
	meters metric.MeterProvider
}

func defaultTelemetry() telemetry {
	return telemetry{logger: slog.New(slog.DiscardHandler), meters: noop.NewMeterProvider()}
}

// setLogger is WithLogger and WithUploadLogger.
func (t *telemetry) setLogger(l *slog.Logger) {
	if l != nil {
		t.logger = l
	}
}

// setMeterProvider is WithMeterProvider and WithUploadMeterProvider.
func (t *telemetry) setMeterProvider(mp metric.MeterProvider) {
	if mp != nil {
		t.meters = mp
	}
}

// NewHandler returns a Handler that serves the blobs of store. store must
// not be nil.
func NewHandler(store *cas.Store, opts ...Option) *Handler {
	h := &Handler{
		store:       store,
		maxThumb:    DefaultMaxThumbnailSize,
		openTimeout: DefaultBackendTimeout,
		telemetry:   defaultTelemetry(),
	}
	for _, o := range opts {
		o(h)
	}
	h.metrics = newMetrics(h.meters)
	h.initRedirect()
	return h
}
