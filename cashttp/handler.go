// Package cashttp serves the blobs of a cas.Store over HTTP, at the URLs
// that casurl builds: the bytes with the content type and filename the URL
// asks for, or a JPEG thumbnail.
//
// Because a URL names its bytes by their SHA-256, a response never goes
// stale: every success is cacheable forever (Cache-Control: immutable),
// the ETag is the hash, and a conditional request (If-None-Match) is
// answered with 304 before the storage backend is touched at all. Bytes go
// out through http.ServeContent, so If-Range, If-Match and HEAD behave as
// in net/http, and a local-disk blob (cas/fsstore) leaves through
// sendfile(2).
//
// The Range header is parsed here, strictly, before ServeContent sees it
// (see MaxRanges): a request for more than MaxRanges ranges, for
// overlapping ranges, with a header over MaxRangeHeaderLength bytes, a
// malformed one, or one that no range of the blob satisfies (bytes=-0
// included) is refused with 416 and Content-Range: bytes */<size>, rather
// than served whole; a Range in a unit other than bytes is ignored.
// ServeContent only ever gets a canonical, bounded Range, which also
// keeps it away from the Range-parsing vulnerability of Go 1.26.8.
//
// A backend that does not answer in time (an error wrapping
// cas.ErrUnavailable or context.DeadlineExceeded, or an Open past
// WithBackendTimeout) gets 503 with Retry-After, so that clients and
// proxies retry later instead of waiting on a hung backend.
//
// Uploaded files are hostile: the handler sends X-Content-Type-Options:
// nosniff on every response, serves content types that a browser would
// run script from (HTML, SVG, XML, JavaScript...) as attachments under
// Content-Security-Policy: sandbox, and builds Content-Disposition so that
// no filename can break out of it.
package cashttp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/casurl"
	"github.com/casa-go/casa/thumbnail"
)

// DefaultMaxThumbnailSize is the largest thumbnail size, in pixels, that a
// Handler serves unless WithMaxThumbnailSize or WithThumbnailSizes says
// otherwise.
const DefaultMaxThumbnailSize = 1000

// CacheControl is the Cache-Control header of every successful response:
// the bytes behind a URL never change.
const CacheControl = "public, max-age=31536000, immutable"

// DefaultBackendTimeout is how long a Handler waits for the backend to
// open a blob unless WithBackendTimeout says otherwise. It is a backstop
// above the backends' own bounds (s3store's metadata calls): a blob that
// has not started to arrive by then is answered with 503.
const DefaultBackendTimeout = 15 * time.Second

// RetryAfterSeconds is the Retry-After header, in seconds, of a 503 sent
// because the backend did not answer in time: long enough for a brief
// brownout to pass, short enough that a client's retry is still useful.
const RetryAfterSeconds = 5

// Thumbnailer makes thumbnails: a JPEG of the blob h that fits in size x
// size pixels. *thumbnail.Service implements it. Errors wrapping
// thumbnail.ErrUnsupported or thumbnail.ErrTooLarge are answered with 415;
// cas.ErrNotFound with 404; cas.ErrUnavailable (or, while the request is
// live, context.DeadlineExceeded) with 503 and Retry-After;
// thumbnail.ErrCorrupt and thumbnail.ErrTimeout with 500, logged at Warn
// level as a bad source image; anything else with 500, logged at Error
// level as a storage failure.
type Thumbnailer interface {
	Get(ctx context.Context, h cas.Hash, size int) ([]byte, error)
}

// Handler is the http.Handler that serves a Store's blobs. Create it with
// NewHandler. It is safe for concurrent use.
type Handler struct {
	store       *cas.Store
	thumbs      Thumbnailer
	maxThumb    int
	thumbSizes  []int // sorted; nil: 1..maxThumb
	signer      *casurl.Signer
	openTimeout time.Duration // 0: none
	logger      *slog.Logger
	requests    metric.Int64Counter
	duration    metric.Float64Histogram
	bytesServed metric.Int64Counter
}

// Option configures a Handler.
type Option func(*Handler)

// WithThumbnails serves ?thumbnail=N requests with t, typically a
// *thumbnail.Service. Without it thumbnail requests get 404.
func WithThumbnails(t Thumbnailer) Option { return func(h *Handler) { h.thumbs = t } }

// WithMaxThumbnailSize sets the largest thumbnail size served (default
// DefaultMaxThumbnailSize); larger sizes get 400. Zero or negative keeps
// the default.
func WithMaxThumbnailSize(n int) Option {
	return func(h *Handler) {
		if n > 0 {
			h.maxThumb = n
		}
	}
}

// WithThumbnailSizes restricts thumbnails to the given sizes: any other
// size gets 400, whatever WithMaxThumbnailSize says. Sizes below 1 are
// ignored. An allow-list bounds the work (and cache space) a client can
// cause to the sizes the application actually uses.
func WithThumbnailSizes(sizes ...int) Option {
	return func(h *Handler) {
		h.thumbSizes = nil
		for _, s := range sizes {
			if s > 0 {
				h.thumbSizes = append(h.thumbSizes, s)
			}
		}
		slices.Sort(h.thumbSizes)
	}
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
// Thumbnail requests are bounded by the Thumbnailer, not by this. A zero
// or negative d turns the bound off.
func WithBackendTimeout(d time.Duration) Option {
	return func(h *Handler) { h.openTimeout = max(d, 0) }
}

// WithLogger sets the logger. Storage failures answered with 500 are
// logged at Error level with the underlying error, which is never sent to
// the client; a backend that did not answer in time (503) and a thumbnail
// of a corrupt image or past its deadline (500) at Warn level. The default
// discards.
func WithLogger(l *slog.Logger) Option {
	return func(h *Handler) {
		if l != nil {
			h.logger = l
		}
	}
}

// WithMeterProvider sets the OpenTelemetry MeterProvider that records
// casa.http.requests (by kind, content or thumbnail, and status code),
// casa.http.duration (seconds, by kind and status code) and
// casa.http.bytes (body bytes of successful responses, by kind). The
// default records nothing.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(h *Handler) {
		if mp != nil {
			h.initMetrics(mp)
		}
	}
}

// NewHandler returns a Handler that serves the blobs of store. store must
// not be nil.
func NewHandler(store *cas.Store, opts ...Option) *Handler {
	h := &Handler{store: store, maxThumb: DefaultMaxThumbnailSize, openTimeout: DefaultBackendTimeout, logger: slog.New(slog.DiscardHandler)}
	h.initMetrics(noop.NewMeterProvider())
	for _, o := range opts {
		o(h)
	}
	return h
}

func (h *Handler) initMetrics(mp metric.MeterProvider) {
	m := mp.Meter("github.com/casa-go/casa/cashttp")
	// The noop and SDK meters never fail for these static names.
	h.requests, _ = m.Int64Counter("casa.http.requests",
		metric.WithDescription("Requests served, by kind (content or thumbnail) and HTTP status code."))
	h.duration, _ = m.Float64Histogram("casa.http.duration", metric.WithUnit("s"),
		metric.WithDescription("Time to serve a request, by kind and HTTP status code."))
	h.bytesServed, _ = m.Int64Counter("casa.http.bytes", metric.WithUnit("By"),
		metric.WithDescription("Body bytes of successful (2xx) responses, by kind."))
}

// Request kinds, the value of the "kind" metric attribute.
const (
	kindContent   = "content"
	kindThumbnail = "thumbnail"
)

// ServeHTTP implements http.Handler. The hash comes from
// r.PathValue("hash") when the route has a {hash} wildcard, else from the
// last segment of the path.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &responseWriter{ResponseWriter: w}
	kind := kindContent
	defer func() {
		status := rw.status
		if status == 0 {
			status = http.StatusOK
		}
		ctx := context.WithoutCancel(r.Context())
		attrs := metric.WithAttributes(attribute.String("kind", kind), attribute.Int("http.response.status_code", status))
		h.requests.Add(ctx, 1, attrs)
		h.duration.Record(ctx, time.Since(start).Seconds(), attrs)
		if status < 300 {
			h.bytesServed.Add(ctx, rw.bytes, metric.WithAttributes(attribute.String("kind", kind)))
		}
	}()
	if q := r.URL.RawQuery; strings.HasPrefix(q, casurl.ParamThumbnail+"=") || strings.Contains(q, "&"+casurl.ParamThumbnail+"=") {
		kind = kindThumbnail
	}

	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		rw.Header().Set("Allow", "GET, HEAD")
		h.fail(rw, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	hash := r.PathValue("hash")
	if hash == "" {
		hash = casurl.LastSegment(r.URL)
	}
	req, err := casurl.Parse(hash, r.URL.RawQuery, h.signer)
	switch {
	case errors.Is(err, casurl.ErrSignature):
		h.fail(rw, http.StatusForbidden, "forbidden: missing or invalid signature")
		return
	case err != nil:
		// The text is casurl's own description of the request, never a backend's.
		h.fail(rw, http.StatusBadRequest, "bad request: "+strings.TrimPrefix(err.Error(), casurl.ErrInvalidRequest.Error()+": "))
		return
	}
	if req.IsThumbnail() {
		kind = kindThumbnail
		h.serveThumbnail(rw, r, req)
		return
	}
	kind = kindContent
	h.serveContent(rw, r, req)
}

func (h *Handler) serveContent(w *responseWriter, r *http.Request, req casurl.Request) {
	etag := `"` + req.Hash.String() + `"`
	if notModified(r, etag) {
		h.writeNotModified(w, etag)
		return
	}
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	obj, err := h.open(ctx, cancel, req.Hash)
	if err != nil {
		h.storageError(w, r, req, err)
		return
	}
	defer obj.Close()

	hdr := w.Header()
	hdr.Set("Content-Type", req.ContentType)
	active := scriptCapable(req.ContentType)
	if cd := contentDisposition(req.Disposition, req.Filename, active); cd != "" {
		hdr.Set("Content-Disposition", cd)
	}
	if active {
		hdr.Set("Content-Security-Policy", "sandbox")
	}
	h.setCacheHeaders(hdr, etag)
	hdr.Set("Accept-Ranges", "bytes")

	// The object goes to ServeContent wrapped only to record read and seek
	// errors, which ServeContent drops or sends to the client as text. An
	// object that is an *os.File underneath (fsstore) keeps its
	// syscall.Conn, so the copy reaches the connection's ReadFrom with the
	// file inside and the kernel sends it (sendfile).
	src := &source{ReadSeeker: obj}
	var content io.ReadSeeker = src
	if sc, ok := obj.(syscall.Conn); ok {
		content = fileSource{source: src, conn: sc}
	}
	h.serveGuarded(w, r, content, src, obj.Info().Size, "hash", req.Hash)
	if src.readErr != nil && ctx.Err() == nil {
		h.logger.ErrorContext(ctx, "cashttp: read failed mid-response", "hash", req.Hash, "err", src.readErr)
	}
}

// open opens the blob h under ctx, which stays live for the object's
// reads (s3store reads under the Open context). Past the backend timeout
// the Open is cancelled through cancel, with errOpenTimeout (which wraps
// cas.ErrUnavailable) as the cause, and the error returned wraps it.
func (h *Handler) open(ctx context.Context, cancel context.CancelCauseFunc, hash cas.Hash) (cas.Object, error) {
	if h.openTimeout <= 0 {
		return h.store.Open(ctx, hash)
	}
	timer := time.AfterFunc(h.openTimeout, func() { cancel(errOpenTimeout) })
	obj, err := h.store.Open(ctx, hash)
	if timer.Stop() {
		return obj, err
	}
	// The timer fired: ctx is cancelled, so even an object that did open
	// could not be read.
	if err == nil {
		_ = obj.Close()
		return nil, fmt.Errorf("%w: no answer within %v", errOpenTimeout, h.openTimeout)
	}
	return nil, fmt.Errorf("%w: no answer within %v (open: %w)", errOpenTimeout, h.openTimeout, err)
}

// errOpenTimeout is the cause of an Open cancelled by the backend timeout.
var errOpenTimeout = fmt.Errorf("cashttp: the backend did not open the blob in time: %w", cas.ErrUnavailable)

// serveGuarded runs http.ServeContent on a representation of size bytes
// with its Range header checked by guardRange and w's guard on: an error
// status that ServeContent writes gets Cache-Control: no-store and a fixed
// body, not ServeContent's text (which can be a Backend's seek error), and
// a failed seek turns it into a 500. The cause is logged.
func (h *Handler) serveGuarded(w *responseWriter, r *http.Request, content io.ReadSeeker, src *source, size int64, logAttrs ...any) {
	r, rangeErr := guardRange(r, size)
	w.guard, w.src = true, src
	http.ServeContent(w, r, "", time.Time{}, content)
	w.guard, w.src = false, nil
	switch {
	case w.status >= 500:
		var cause any = w.suppressed
		if src != nil && src.seekErr != nil {
			cause = src.seekErr
		}
		h.logger.ErrorContext(r.Context(), "cashttp: serve failed", append(logAttrs, "err", cause)...)
	case w.status == http.StatusRequestedRangeNotSatisfiable && rangeErr != nil:
		h.logger.DebugContext(r.Context(), "cashttp: Range refused", append(logAttrs, "reason", rangeErr)...)
	case w.status >= 400:
		h.logger.DebugContext(r.Context(), "cashttp: request not satisfiable", append(logAttrs, "status", w.status, "reason", w.suppressed)...)
	}
}

func (h *Handler) serveThumbnail(w *responseWriter, r *http.Request, req casurl.Request) {
	if !h.thumbnailSizeOK(req.Thumbnail) {
		h.fail(w, http.StatusBadRequest, "bad request: thumbnail size not served")
		return
	}
	if h.thumbs == nil {
		h.fail(w, http.StatusNotFound, "not found: thumbnails are not served")
		return
	}
	etag := fmt.Sprintf(`"%s-t%d"`, req.Hash, req.Thumbnail)
	if notModified(r, etag) {
		h.writeNotModified(w, etag)
		return
	}
	jpeg, err := h.thumbnail(r.Context(), req)
	switch {
	case errors.Is(err, thumbnail.ErrUnsupported), errors.Is(err, thumbnail.ErrTooLarge):
		h.logger.DebugContext(r.Context(), "cashttp: no thumbnail", "hash", req.Hash, "size", req.Thumbnail, "err", err)
		h.fail(w, http.StatusUnsupportedMediaType, "unsupported media type: no thumbnail for this blob")
		return
	case errors.Is(err, cas.ErrUnavailable):
		// The backend, not the image, is at fault: 503, even if the
		// generation also ran out of time waiting for it.
		h.storageError(w, r, req, err)
		return
	case errors.Is(err, thumbnail.ErrCorrupt), errors.Is(err, thumbnail.ErrTimeout):
		// A bad upload, not a broken server: no ERROR page for it. Still a
		// 500 with no-store, so that no cache keeps the failure.
		h.logger.WarnContext(r.Context(), "cashttp: bad source image", "hash", req.Hash, "size", req.Thumbnail, "err", err)
		h.fail(w, http.StatusInternalServerError, "internal server error")
		return
	case err != nil:
		h.storageError(w, r, req, err)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "image/jpeg")
	h.setCacheHeaders(hdr, etag)
	hdr.Set("Accept-Ranges", "bytes")
	h.serveGuarded(w, r, bytes.NewReader(jpeg), nil, int64(len(jpeg)), "hash", req.Hash, "size", req.Thumbnail)
}

// thumbnail asks the Thumbnailer for a thumbnail; a panic in it becomes an
// error (a 500), not a dropped connection.
func (h *Handler) thumbnail(ctx context.Context, req casurl.Request) (b []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("cashttp: thumbnailer panicked: %v", p)
		}
	}()
	return h.thumbs.Get(ctx, req.Hash, req.Thumbnail)
}

func (h *Handler) thumbnailSizeOK(n int) bool {
	if h.thumbSizes != nil {
		_, ok := slices.BinarySearch(h.thumbSizes, n)
		return ok
	}
	return 1 <= n && n <= h.maxThumb
}

// storageError answers a failed Open or thumbnail Get.
func (h *Handler) storageError(w *responseWriter, r *http.Request, req casurl.Request, err error) {
	ctx := r.Context()
	switch {
	case errors.Is(err, cas.ErrNotFound):
		h.fail(w, http.StatusNotFound, "not found")
	case errors.Is(ctx.Err(), context.Canceled):
		// The client went away: nobody reads the answer.
		h.logger.DebugContext(ctx, "cashttp: request ended early", "hash", req.Hash, "err", err)
		h.fail(w, http.StatusServiceUnavailable, "service unavailable")
	case ctx.Err() != nil, errors.Is(err, cas.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		// The backend did not answer in time: its own timeout, the Open
		// bound, or the request's deadline (set by the server; the client
		// is still there). Retrying later may well work.
		h.logger.WarnContext(ctx, "cashttp: backend unavailable", "hash", req.Hash, "thumbnail", req.Thumbnail, "err", err)
		w.Header().Set("Retry-After", strconv.Itoa(RetryAfterSeconds))
		h.fail(w, http.StatusServiceUnavailable, "service unavailable: storage did not answer in time, retry later")
	default:
		h.logger.ErrorContext(ctx, "cashttp: storage failure", "hash", req.Hash, "thumbnail", req.Thumbnail, "err", err)
		h.fail(w, http.StatusInternalServerError, "internal server error")
	}
}

func (h *Handler) setCacheHeaders(hdr http.Header, etag string) {
	hdr.Set("ETag", etag)
	hdr.Set("Cache-Control", CacheControl)
	hdr.Set("X-Content-Type-Options", "nosniff")
}

func (h *Handler) writeNotModified(w http.ResponseWriter, etag string) {
	h.setCacheHeaders(w.Header(), etag)
	w.WriteHeader(http.StatusNotModified)
}

// fail writes an error response: a short plain-text reason that must not
// come from a backend error, and Cache-Control: no-store.
func (h *Handler) fail(w http.ResponseWriter, status int, reason string) {
	hdr := w.Header()
	for _, k := range []string{"ETag", "Content-Disposition", "Content-Security-Policy", "Accept-Ranges", "Content-Encoding"} {
		hdr.Del(k)
	}
	hdr.Set("Cache-Control", "no-store")
	http.Error(w, reason, status)
}

// notModified reports whether r's If-None-Match lists etag, so that the
// answer is 304 without looking at storage. A request with If-Match is
// left to http.ServeContent, which evaluates it first as RFC 9110 says;
// so is "If-None-Match: *", which depends on whether the blob exists.
func notModified(r *http.Request, etag string) bool {
	if r.Header.Get("If-Match") != "" {
		return false
	}
	for _, v := range r.Header.Values("If-None-Match") {
		for tag := range strings.SplitSeq(v, ",") {
			tag = strings.TrimSpace(tag)
			tag = strings.TrimPrefix(tag, "W/") // If-None-Match uses the weak comparison
			if tag == etag {
				return true
			}
		}
	}
	return false
}

// source records the first read and seek errors of a ReadSeeker.
type source struct {
	io.ReadSeeker
	readErr, seekErr error
}

func (s *source) Read(p []byte) (int, error) {
	n, err := s.ReadSeeker.Read(p)
	if err != nil && err != io.EOF && s.readErr == nil {
		s.readErr = err
	}
	return n, err
}

func (s *source) Seek(off int64, whence int) (int64, error) {
	n, err := s.ReadSeeker.Seek(off, whence)
	if err != nil && s.seekErr == nil {
		s.seekErr = err
	}
	return n, err
}

// fileSource is a source over a file: it also exposes the file's
// syscall.Conn, which is what net/http's sendfile path looks for.
type fileSource struct {
	*source
	conn syscall.Conn
}

// SyscallConn implements syscall.Conn.
func (f fileSource) SyscallConn() (syscall.RawConn, error) { return f.conn.SyscallConn() }

// responseWriter records the status and body bytes of a response for
// metrics. While guard is set (inside http.ServeContent) it rewrites error
// responses: Cache-Control: no-store, no success headers, a fixed short
// body instead of ServeContent's text, and 500 when the source failed to
// seek. It forwards ReadFrom, so that a copy from a file still reaches
// the connection's sendfile.
type responseWriter struct {
	http.ResponseWriter
	status     int
	bytes      int64
	guard      bool
	src        *source
	discard    bool   // drop body writes: a guarded error body was replaced
	suppressed string // the body a guarded error was about to send
}

func (w *responseWriter) WriteHeader(code int) {
	if w.status != 0 {
		w.ResponseWriter.WriteHeader(code) // superfluous; net/http logs it
		return
	}
	if !w.guard || code < 400 {
		w.status = code
		w.ResponseWriter.WriteHeader(code)
		return
	}
	if w.src != nil && w.src.seekErr != nil {
		code = http.StatusInternalServerError
	}
	w.status = code
	w.discard = true
	hdr := w.Header()
	for _, k := range []string{"ETag", "Content-Disposition", "Content-Security-Policy", "Accept-Ranges", "Content-Range", "Content-Length"} {
		if k == "Content-Range" && code == http.StatusRequestedRangeNotSatisfiable {
			continue // "bytes */<size>", which RFC 9110 asks a 416 to send
		}
		hdr.Del(k)
	}
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Content-Type", "text/plain; charset=utf-8")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.ResponseWriter.WriteHeader(code)
	n, _ := io.WriteString(w.ResponseWriter, strings.ToLower(http.StatusText(code))+"\n")
	w.bytes += int64(n)
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.discard {
		if len(w.suppressed) < 200 {
			w.suppressed += strings.TrimSpace(string(p))
		}
		return len(p), nil
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// ReadFrom forwards to the underlying ResponseWriter's ReadFrom, which
// passes a file source on to the connection (sendfile).
func (w *responseWriter) ReadFrom(src io.Reader) (int64, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	rf, ok := w.ResponseWriter.(io.ReaderFrom)
	if !ok || w.discard {
		return io.Copy(writerOnly{w}, src)
	}
	n, err := rf.ReadFrom(src)
	w.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying ResponseWriter.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writerOnly hides ReadFrom so that io.Copy does not recurse.
type writerOnly struct{ io.Writer }
