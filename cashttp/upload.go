package cashttp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"golang.org/x/sync/errgroup"

	"github.com/casa-go/casa/cas"
)

// Defaults of the upload protocol.
const (
	// DefaultMaxUploadSize is the largest body a PUT may carry unless
	// WithMaxUploadSize says otherwise.
	DefaultMaxUploadSize = 1 << 30
	// DefaultMaxBatch is the most hashes one POST <prefix>/missing may
	// ask about unless WithMaxBatch says otherwise.
	DefaultMaxBatch = 1000
	// MissingPath is the last path segment of the batch existence
	// endpoint: POST <prefix>/missing.
	MissingPath = "missing"
	// batchEntryBytes bounds the body of a batch per entry: a quoted hash
	// (66 bytes), a comma and some whitespace.
	batchEntryBytes = 80
	// batchConcurrency is how many Stats one batch runs at once.
	batchConcurrency = 8
)

// UploadHandler is the upload protocol that skips known bytes, as bazel's
// remote cache (FindMissingBlobs) and git-lfs's batch API do: a client
// hashes its files, asks which hashes the store lacks, and uploads only
// those. Create it with NewUploadHandler and mount it on a prefix of its
// own (for example /api/uploads/), never on the serving prefix: on a
// deployment whose serving URLs are signed, the serving route must give
// no answer about which blobs exist, and this handler does exactly that.
//
//   - PUT <prefix>/<hash>: stores the body only if it hashes to <hash>
//     (cas.Store.PutVerified): 201 when stored, 200 when the blob was
//     already stored (answered before the body is read, so a client that
//     sent Expect: 100-continue sends no byte; unless the declared
//     Content-Length is not the stored size, or the stored form is
//     corrupt: then the body is read, and replaces that form when it
//     hashes to <hash>, as Store.Put repairs), 400 and nothing stored
//     when the bytes do not hash to it, 413 over the maximum size (a
//     declared Content-Length is refused before reading; a chunked body
//     is cut off there). The answer is JSON {"hash", "size"}.
//   - HEAD <prefix>/<hash>: 200 if stored, 404 if not (or if its
//     stored form is corrupt, cas.ErrCorrupt: the client's upload
//     repairs it; the batch says missing too).
//   - POST <prefix>/missing with application/json {"hashes": ["<hex>",
//     ...]}: 200 with {"missing": [...]}, the hashes not stored, in the
//     order given, without repeats. Strict: any other shape, an unknown
//     or repeated key, trailing data or an invalid hash is 400 (naming the
//     entry); more than the maximum batch, or a body past its bound, 413;
//     another content type 415.
//
// Authorization is the mounting application's job: the handler checks
// nothing about who asks. Put it behind the same authentication, CSRF
// protection and rate limits as the application's other writes (an
// anonymous uploader could fill the storage, and HEAD and the batch are an
// existence oracle for anyone who can reach them). Blobs uploaded but never
// referenced by the application's records are orphans until a collector
// removes them.
//
// Errors are short plain-text reasons with Cache-Control: no-store; a
// backend that does not answer in time gets 503 with Retry-After, a full
// backend (cas.ErrNoSpace) 507. It is safe for concurrent use.
type UploadHandler struct {
	store    *cas.Store
	maxSize  int64
	maxBatch int
	telemetry
	metrics uploadMetrics
}

// UploadOption configures an UploadHandler.
type UploadOption func(*UploadHandler)

// WithMaxUploadSize sets the largest body a PUT may carry (default
// DefaultMaxUploadSize); n must be at least 1.
func WithMaxUploadSize(n int64) UploadOption {
	if n < 1 {
		badOption("WithMaxUploadSize", n, "want at least 1 byte")
	}
	return func(h *UploadHandler) { h.maxSize = n }
}

// WithMaxBatch sets the most hashes a batch may ask about (default
// DefaultMaxBatch); n must be at least 1. The batch body is bounded to
// 80 bytes per entry plus a little.
func WithMaxBatch(n int) UploadOption {
	if n < 1 {
		badOption("WithMaxBatch", n, "want at least 1")
	}
	return func(h *UploadHandler) { h.maxBatch = n }
}

// WithUploadLogger sets the logger: storage failures (500) at Error level
// with the underlying error, which is never sent to the client; a backend
// that did not answer in time (503) and a full backend (507) at Warn; a
// refused body (wrong digest, too large) at Debug. The default discards.
func WithUploadLogger(l *slog.Logger) UploadOption {
	return func(h *UploadHandler) { h.setLogger(l) }
}

// WithUploadMeterProvider sets the OpenTelemetry MeterProvider. The
// handler records the serving handler's casa.http.requests and
// casa.http.duration with kind "upload" (PUT), "exists" (HEAD), "missing"
// (the batch) or "invalid" (a method or path it does not serve), and
// casa.http.upload.bytes: the body bytes of PUTs read, by outcome
// (stored, deduplicated, refused). The default records nothing.
func WithUploadMeterProvider(mp metric.MeterProvider) UploadOption {
	return func(h *UploadHandler) { h.setMeterProvider(mp) }
}

// NewUploadHandler returns the upload protocol's handler for store, which
// must not be nil. See UploadHandler.
func NewUploadHandler(store *cas.Store, opts ...UploadOption) *UploadHandler {
	h := &UploadHandler{
		store:     store,
		maxSize:   DefaultMaxUploadSize,
		maxBatch:  DefaultMaxBatch,
		telemetry: defaultTelemetry(),
	}
	for _, o := range opts {
		o(h)
	}
	h.metrics = newUploadMetrics(h.meters)
	return h
}

// uploadMetrics are the UploadHandler's instruments.
type uploadMetrics struct {
	metrics
	uploaded metric.Int64Counter
}

func newUploadMetrics(mp metric.MeterProvider) uploadMetrics {
	m := uploadMetrics{metrics: newMetrics(mp)}
	m.uploaded, _ = mp.Meter("github.com/casa-go/casa/cashttp").Int64Counter("casa.http.upload.bytes",
		metric.WithUnit("By"), metric.WithDescription("Body bytes of upload PUTs read, by outcome (stored, deduplicated, refused)."))
	return m
}

// Kinds of the upload protocol's requests, for metrics.
const (
	kindUpload  = "upload"
	kindExists  = "exists"
	kindMissing = "missing"
)

// ServeHTTP implements http.Handler. The hash is r.PathValue("hash") when
// the route has a {hash} wildcard, else the last segment of the path.
func (h *UploadHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &responseWriter{ResponseWriter: w}
	kind := kindInvalid
	defer func() { h.metrics.record(r.Context(), kind, rw.status, rw.bytes, time.Since(start)) }()

	seg := hashFromPath(r)
	switch {
	case r.Method == http.MethodPost && seg == MissingPath:
		kind = kindMissing
		h.serveMissing(rw, r)
	case r.Method == http.MethodPost:
		failUpload(rw, http.StatusNotFound, "not found: POST "+MissingPath+" asks which hashes are missing")
	case r.Method == http.MethodPut || r.Method == http.MethodHead:
		hash, err := cas.Parse(seg)
		if err != nil {
			failUpload(rw, http.StatusBadRequest, "bad request: invalid hash: want 64 lowercase hex characters")
			return
		}
		if r.Method == http.MethodHead {
			kind = kindExists
			h.serveExists(rw, r, hash)
			return
		}
		kind = kindUpload
		h.serveUpload(rw, r, hash)
	default:
		rw.Header().Set("Allow", "PUT, HEAD, POST")
		failUpload(rw, http.StatusMethodNotAllowed, "method not allowed")
	}
}

// failUpload writes an error response of the upload protocol.
func failUpload(w http.ResponseWriter, status int, reason string) {
	setErrorHeaders(w.Header(), status)
	http.Error(w, reason, status)
}

// serveExists answers HEAD: 200 if stored, 404 if not.
func (h *UploadHandler) serveExists(w *responseWriter, r *http.Request, hash cas.Hash) {
	ok, err := h.stored(r.Context(), hash)
	if err != nil {
		h.storageError(w, r, err, "hash", hash)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	if !ok {
		failUpload(w, http.StatusNotFound, "not found")
		return
	}
	w.WriteHeader(http.StatusOK)
}

// uploadResult is the JSON answer of a PUT.
type uploadResult struct {
	Hash cas.Hash `json:"hash"`
	Size int64    `json:"size"`
}

// serveUpload answers PUT.
func (h *UploadHandler) serveUpload(w *responseWriter, r *http.Request, hash cas.Hash) {
	ctx := r.Context()
	if r.ContentLength > h.maxSize {
		// Refused before reading: a client that sent Expect:
		// 100-continue sends nothing more.
		h.logger.DebugContext(ctx, "cashttp: upload too large", "hash", hash, "content_length", r.ContentLength)
		w.Header().Set("Connection", "close")
		failUpload(w, http.StatusRequestEntityTooLarge, "request entity too large: at most "+strconv.FormatInt(h.maxSize, 10)+" bytes")
		return
	}
	if err := h.store.Touch(ctx, hash); err != nil {
		h.storageError(w, r, err, "hash", hash)
		return
	}
	info, err := h.store.Stat(ctx, hash)
	switch {
	case err == nil && (r.ContentLength < 0 || r.ContentLength == info.Size):
		// Already stored: the body is not needed, and not read.
		writeUploadJSON(w, http.StatusOK, uploadResult{Hash: hash, Size: info.Size})
		return
	case err == nil:
		// A body of another length than the stored blob cannot hash to
		// it, unless the stored form is what is wrong (cut short): the
		// body is read, and PutVerified replaces such a form or refuses
		// the body (400).
		h.logger.DebugContext(ctx, "cashttp: upload of another size than the stored blob", "hash", hash,
			"content_length", r.ContentLength, "stored_size", info.Size)
	case errors.Is(err, cas.ErrCorrupt):
		// Stored but unreadable: the client's bytes repair it (Store.Put
		// replaces a corrupt stored form).
		h.logger.WarnContext(ctx, "cashttp: upload over a corrupt stored blob", "hash", hash, "err", err)
	case !errors.Is(err, cas.ErrNotFound):
		h.storageError(w, r, err, "hash", hash)
		return
	}
	body := &countingReader{r: http.MaxBytesReader(w, r.Body, h.maxSize)}
	res, err := h.store.PutVerified(ctx, hash, body)
	var tooBig *http.MaxBytesError
	switch {
	case err == nil && res.Deduplicated:
		h.uploaded(ctx, "deduplicated", body.n)
		writeUploadJSON(w, http.StatusOK, uploadResult{Hash: hash, Size: res.Size})
	case err == nil:
		h.uploaded(ctx, "stored", body.n)
		h.logger.DebugContext(ctx, "cashttp: blob uploaded", "hash", hash, "size", res.Size)
		writeUploadJSON(w, http.StatusCreated, uploadResult{Hash: hash, Size: res.Size})
	case errors.As(err, &tooBig), errors.Is(err, cas.ErrTooLarge):
		h.uploaded(ctx, "refused", body.n)
		h.logger.DebugContext(ctx, "cashttp: upload too large", "hash", hash, "err", err)
		w.Header().Set("Connection", "close")
		failUpload(w, http.StatusRequestEntityTooLarge, "request entity too large: at most "+strconv.FormatInt(h.maxSize, 10)+" bytes")
	case errors.Is(err, cas.ErrDigestMismatch):
		h.uploaded(ctx, "refused", body.n)
		h.logger.DebugContext(ctx, "cashttp: upload does not match its hash", "hash", hash, "size", body.n)
		failUpload(w, http.StatusBadRequest, "bad request: the body does not hash to "+hash.String()+"; nothing stored")
	default:
		h.uploaded(ctx, "refused", body.n)
		h.storageError(w, r, err, "hash", hash)
	}
}

func (h *UploadHandler) uploaded(ctx context.Context, outcome string, n int64) {
	h.metrics.uploaded.Add(context.WithoutCancel(ctx), n, metric.WithAttributes(attribute.String("outcome", outcome)))
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// storageError answers a failed store call: 503 with Retry-After when the
// backend did not answer in time, 507 when it is full, 500 otherwise. A
// request whose client has gone gets 503, logged at Debug only.
func (h *UploadHandler) storageError(w *responseWriter, r *http.Request, err error, attrs ...any) {
	ctx := r.Context()
	attrs = append(attrs, "err", err)
	switch {
	case errors.Is(ctx.Err(), context.Canceled):
		h.logger.DebugContext(ctx, "cashttp: upload request ended early", attrs...)
		failUpload(w, http.StatusServiceUnavailable, "service unavailable")
	case errors.Is(err, cas.ErrNoSpace):
		h.logger.WarnContext(ctx, "cashttp: storage full", attrs...)
		failUpload(w, http.StatusInsufficientStorage, "insufficient storage")
	case ctx.Err() != nil, errors.Is(err, cas.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		h.logger.WarnContext(ctx, "cashttp: backend unavailable", attrs...)
		w.Header().Set("Retry-After", strconv.Itoa(RetryAfterSeconds))
		failUpload(w, http.StatusServiceUnavailable, "service unavailable: storage did not answer in time, retry later")
	default:
		h.logger.ErrorContext(ctx, "cashttp: storage failure", attrs...)
		failUpload(w, http.StatusInternalServerError, "internal server error")
	}
}

// writeUploadJSON writes v as a JSON answer that no cache keeps.
func writeUploadJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v) // the answers are plain structs
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// missingResult is the JSON answer of a batch.
type missingResult struct {
	Missing []cas.Hash `json:"missing"`
}

// serveMissing answers POST <prefix>/missing.
func (h *UploadHandler) serveMissing(w *responseWriter, r *http.Request) {
	ctx := r.Context()
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		failUpload(w, http.StatusUnsupportedMediaType, "unsupported media type: send application/json {\"hashes\": [...]}")
		return
	}
	limit := batchBodyLimit(h.maxBatch)
	if r.ContentLength > limit {
		w.Header().Set("Connection", "close")
		failUpload(w, http.StatusRequestEntityTooLarge, "request entity too large: at most "+strconv.Itoa(h.maxBatch)+" hashes")
		return
	}
	hashes, err := parseBatch(http.MaxBytesReader(w, r.Body, limit), h.maxBatch)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig), errors.Is(err, errBatchTooLong):
		h.logger.DebugContext(ctx, "cashttp: batch too large", "err", err)
		w.Header().Set("Connection", "close")
		failUpload(w, http.StatusRequestEntityTooLarge, "request entity too large: at most "+strconv.Itoa(h.maxBatch)+" hashes")
		return
	case err != nil:
		h.logger.DebugContext(ctx, "cashttp: bad batch", "err", err)
		failUpload(w, http.StatusBadRequest, "bad request: "+err.Error())
		return
	}
	missing, err := h.missing(ctx, hashes)
	if err != nil {
		h.storageError(w, r, err, "hashes", len(hashes))
		return
	}
	writeUploadJSON(w, http.StatusOK, missingResult{Missing: missing})
}

// missing returns the hashes of hs that the store lacks, in order, with
// batchConcurrency Stats at a time.
func (h *UploadHandler) missing(ctx context.Context, hs []cas.Hash) ([]cas.Hash, error) {
	has := make([]bool, len(hs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(batchConcurrency)
	for i, hash := range hs {
		g.Go(func() error {
			ok, err := h.stored(gctx, hash)
			has[i] = ok
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := make([]cas.Hash, 0, len(hs))
	for i, hash := range hs {
		if !has[i] {
			out = append(out, hash)
		}
	}
	return out, nil
}

// stored reports whether the store holds hash, as an answer a client may
// act on: it touches the blob first (Store.Touch runs the Store's put
// hook, migrate.PutHook's guard), so that a garbage collector that has not
// deleted the blob by then keeps it for the guard's grace period, in
// which the client's record is expected to commit. Touching after the
// check would leave a gap in which the blob is reported stored and then
// collected.
//
// A blob whose stored form Stat reports corrupt (cas.ErrCorrupt) is
// missing: the client then uploads its bytes, and the PUT replaces the
// corrupt form (Store.Put repairs it). An error there would fail the
// whole batch it is in, and leave the blob unrepairable through the
// protocol.
func (h *UploadHandler) stored(ctx context.Context, hash cas.Hash) (bool, error) {
	if err := h.store.Touch(ctx, hash); err != nil {
		return false, err
	}
	ok, err := h.store.Has(ctx, hash)
	if errors.Is(err, cas.ErrCorrupt) {
		h.logger.WarnContext(ctx, "cashttp: stored blob corrupt: reported missing, for the client to upload", "hash", hash, "err", err)
		return false, nil
	}
	return ok, err
}

// batchBodyLimit is the largest batch body accepted for maxBatch entries.
func batchBodyLimit(maxBatch int) int64 { return 64 + int64(maxBatch)*batchEntryBytes }

// errBatchTooLong is a batch of more hashes than allowed (413).
var errBatchTooLong = errors.New("too many hashes")

// parseBatch reads a batch body: exactly one JSON object with one key,
// "hashes", whose value is an array of at most max strings, each a valid
// hash; nothing may follow. Repeated hashes are dropped (the first stays).
// An invalid entry is named by its index; its value is quoted and cut to
// 80 bytes, so the reason stays short and plain. More than max entries is
// errBatchTooLong; a read error (http.MaxBytesError) is returned as is.
func parseBatch(r io.Reader, max int) ([]cas.Hash, error) {
	dec := json.NewDecoder(r)
	expect := func(want json.Delim, what string) error {
		tok, err := dec.Token()
		if err != nil {
			return batchSyntax(err, what)
		}
		if d, ok := tok.(json.Delim); !ok || d != want {
			return fmt.Errorf("want %s", what)
		}
		return nil
	}
	if err := expect('{', `a JSON object {"hashes": [...]}`); err != nil {
		return nil, err
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, batchSyntax(err, `the key "hashes"`)
	}
	if k, ok := tok.(string); !ok || k != "hashes" {
		return nil, errors.New(`want the one key "hashes"`)
	}
	if err := expect('[', `"hashes": an array of hashes`); err != nil {
		return nil, err
	}
	var out []cas.Hash
	seen := make(map[cas.Hash]struct{})
	for i := 0; dec.More(); i++ {
		if i >= max {
			return nil, fmt.Errorf("%w: at most %d", errBatchTooLong, max)
		}
		tok, err := dec.Token()
		if err != nil {
			return nil, batchSyntax(err, fmt.Sprintf("hashes[%d]", i))
		}
		s, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("hashes[%d]: want a string", i)
		}
		h, err := cas.Parse(s)
		if err != nil {
			if len(s) > 80 {
				s = s[:80] + "..."
			}
			return nil, fmt.Errorf("hashes[%d]: invalid hash %s: want 64 lowercase hex characters", i, strconv.QuoteToASCII(s))
		}
		if _, dup := seen[h]; !dup {
			seen[h] = struct{}{}
			out = append(out, h)
		}
	}
	if err := expect(']', "the end of the array"); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New(`want the one key "hashes"`)
	}
	if err := expect('}', "the end of the object"); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, err
		}
		return nil, errors.New("trailing data after the JSON object")
	}
	if out == nil {
		out = []cas.Hash{}
	}
	return out, nil
}

// batchSyntax describes a Token error while expecting what; a read error
// that is not JSON's (the body limit) is returned as is.
func batchSyntax(err error, what string) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return err
	}
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("the body ended before %s", what)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("invalid JSON at byte %d, want %s", se.Offset, what)
	}
	return fmt.Errorf("invalid JSON, want %s", what)
}
