// Package cashttp serves the blobs of a cas.Store over HTTP, at the URLs
// that casurl builds: the bytes with the content type and filename the URL
// asks for, or a JPEG thumbnail.
//
// Because a URL names its bytes by their SHA-256, a response never goes
// stale: every success is cacheable forever (Cache-Control: immutable),
// the ETag is the hash, and a conditional request (If-None-Match) is
// answered with 304 before the storage backend is touched at all. Bytes go
// out through http.ServeContent, so If-Range, If-Match and HEAD behave as
// in net/http, and a blob whose Object is a cas.FileObject (cas/fsstore)
// leaves through sendfile(2).
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
//
// With WithRedirect, a large blob of a type that is safe without the
// handler's own headers (RedirectableTypes) is answered with 307 to a URL
// the storage service serves itself (cas.Presigner: s3store presigns a
// GetObject), so its bytes leave the application's network.
//
// NewUploadHandler is a separate, opt-in handler for uploads that skip
// known bytes (PUT verified by hash, HEAD, a batch of missing hashes),
// mounted on a prefix of its own; UploadClient is its Go client.
//
// The package imports cas and casurl only: thumbnails come in through the
// Thumbnailer interface and its errors through cas sentinels, so a server
// that serves only blobs links no image decoder.
//
// The files split the handler by job: options.go (Options, NewHandler),
// metrics.go, request.go (the method and URL checks), serve.go (content,
// thumbnails, storage errors), headers.go (header policy), writer.go (the
// guarded ResponseWriter), ranges.go (the Range guard), redirect.go
// (WithRedirect), upload.go (UploadHandler) and uploadclient.go.
package cashttp

import (
	"context"
	"net/http"
	"time"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/casurl"
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
// size pixels. *thumbnail.Service implements it.
//
// Its errors are mapped through cas sentinels (thumbnail's own errors wrap
// them): cas.ErrNotFound is answered with 404; cas.ErrUnsupported or
// cas.ErrTooLarge with 415; cas.ErrUnavailable (or, while the request is
// live, context.DeadlineExceeded) with 503 and Retry-After, even when the
// error also wraps cas.ErrCorrupt; cas.ErrCorrupt (a source image that
// does not decode, or whose decode ran past its deadline) with 500 and
// no-store, logged at Warn level as a bad source image; anything else
// with 500, logged at Error level as a storage failure.
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
	redirect    *redirect     // WithRedirect; nil: off
	telemetry
	metrics metrics
}

// ServeHTTP implements http.Handler. The hash comes from
// r.PathValue("hash") when the route has a {hash} wildcard, else from the
// last segment of the path; a router that keeps its parameters elsewhere
// calls ServeHash.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.ServeHash(w, r, hashFromPath(r))
}

// ServeHash serves the request r for the blob whose hash (its text form,
// as in the URL) the caller took from the route, for routers that keep
// path parameters to themselves (gin's c.Param("hash"), echo's
// c.Param("hash")) or routes where the hash is not the last segment
// (/files/:hash/:name). Everything else is as in ServeHTTP: the query
// carries the content type, filename or thumbnail size, and the
// signature when signing is on. A hash that is not 64 lowercase hex
// characters gets 400.
func (h *Handler) ServeHash(w http.ResponseWriter, r *http.Request, hash string) {
	start := time.Now()
	rw := &responseWriter{ResponseWriter: w}
	kind := kindInvalid
	defer func() { h.metrics.record(r.Context(), kind, rw.status, rw.bytes, time.Since(start)) }()

	req, rerr := h.parseRequest(r, hash)
	if rerr != nil {
		h.refuse(rw, rerr)
		return
	}
	kind = requestKind(req)
	if req.IsThumbnail() {
		h.serveThumbnail(rw, r, req)
		return
	}
	h.serveContent(rw, r, req)
}
