package cashttp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/casurl"
)

// serveContent serves the bytes of a content request: 304 from the ETag
// alone, else the blob through the Range guard and http.ServeContent.
func (h *Handler) serveContent(w *responseWriter, r *http.Request, req casurl.Request) {
	etag := contentETag(req.Hash)
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

	setContentHeaders(w.Header(), req, etag)
	content, src := contentSource(obj)
	h.serveGuarded(w, r, content, src, obj.Info().Size, "hash", req.Hash)
	if src.readErr != nil && ctx.Err() == nil {
		h.logger.ErrorContext(ctx, "cashttp: read failed mid-response", "hash", req.Hash, "err", src.readErr)
	}
}

// contentSource is what ServeContent reads for obj, and the source that
// records its read and seek errors (which ServeContent drops or sends to
// the client as text). The bytes of a cas.FileObject are read from its
// file, and the content exposes the file's syscall.Conn, so that
// ServeContent's copy reaches the connection's ReadFrom with the file
// inside and the kernel sends it (sendfile).
func contentSource(obj cas.Object) (io.ReadSeeker, *source) {
	if fo, ok := obj.(cas.FileObject); ok {
		f := fo.File()
		src := &source{ReadSeeker: f}
		return fileSource{source: src, conn: f}, src
	}
	src := &source{ReadSeeker: obj}
	return src, src
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

// serveThumbnail serves a thumbnail request: 400 for a size not served,
// 404 without a Thumbnailer, 304 from the ETag alone, else the JPEG.
func (h *Handler) serveThumbnail(w *responseWriter, r *http.Request, req casurl.Request) {
	if !h.thumbnailSizeOK(req.Thumbnail) {
		h.fail(w, http.StatusBadRequest, "bad request: thumbnail size not served")
		return
	}
	if h.thumbs == nil {
		h.fail(w, http.StatusNotFound, "not found: thumbnails are not served")
		return
	}
	etag := thumbnailETag(req.Hash, req.Thumbnail)
	if notModified(r, etag) {
		h.writeNotModified(w, etag)
		return
	}
	jpeg, err := h.thumbnail(r.Context(), req)
	if err != nil {
		h.thumbnailError(w, r, req, err)
		return
	}
	setThumbnailHeaders(w.Header(), etag)
	h.serveGuarded(w, r, bytes.NewReader(jpeg), nil, int64(len(jpeg)), "hash", req.Hash, "size", req.Thumbnail)
}

// thumbnailError answers a failed Thumbnailer.Get by the cas sentinels of
// the Thumbnailer contract.
func (h *Handler) thumbnailError(w *responseWriter, r *http.Request, req casurl.Request, err error) {
	switch {
	case errors.Is(err, cas.ErrUnsupported), errors.Is(err, cas.ErrTooLarge):
		h.logger.DebugContext(r.Context(), "cashttp: no thumbnail", "hash", req.Hash, "size", req.Thumbnail, "err", err)
		h.fail(w, http.StatusUnsupportedMediaType, "unsupported media type: no thumbnail for this blob")
	case errors.Is(err, cas.ErrUnavailable):
		// The backend, not the image, is at fault: 503, even if the
		// generation also ran out of time waiting for it.
		h.storageError(w, r, req, err)
	case errors.Is(err, cas.ErrCorrupt):
		// A bad upload (or one too costly to decode), not a broken server:
		// no ERROR page for it. Still a 500 with no-store, so that no
		// cache keeps the failure.
		h.logger.WarnContext(r.Context(), "cashttp: bad source image", "hash", req.Hash, "size", req.Thumbnail, "err", err)
		h.fail(w, http.StatusInternalServerError, "internal server error")
	default:
		h.storageError(w, r, req, err)
	}
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

func (h *Handler) writeNotModified(w http.ResponseWriter, etag string) {
	setCacheHeaders(w.Header(), etag)
	w.WriteHeader(http.StatusNotModified)
}

// fail writes an error response: a short plain-text reason that must not
// come from a backend error, under the error headers of setErrorHeaders.
func (h *Handler) fail(w http.ResponseWriter, status int, reason string) {
	setErrorHeaders(w.Header(), status)
	http.Error(w, reason, status)
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
