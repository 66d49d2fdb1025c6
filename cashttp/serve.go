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
	"sync"
	"syscall"
	"time"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/casurl"
)

// serveContent serves the bytes of a content request: 304 from the ETags
// alone, else the blob through the Range guard and http.ServeContent. A
// blob stored zstd-compressed goes to a client that accepts zstd, without
// a Range, as its stored frames with Content-Encoding: zstd (no decoding,
// no recompressing) under its own ETag; any other request gets the
// decoded bytes. Every content response carries Vary: Accept-Encoding.
func (h *Handler) serveContent(w *responseWriter, r *http.Request, req casurl.Request) {
	w.Header().Set("Vary", "Accept-Encoding")
	etag := contentETag(req.Hash)
	zstdOK := acceptsZstd(r)
	if notModified(r, etag) {
		h.writeNotModified(w, etag, req)
		return
	}
	// A client that accepts zstd may hold the zstd representation: it is
	// as valid as the identity one, whatever the blob's stored form now.
	if zstdOK && notModified(r, zstdETag(req.Hash)) {
		h.writeNotModified(w, zstdETag(req.Hash), req)
		return
	}
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	obj, err := h.open(ctx, cancel, req.Hash)
	if err != nil {
		h.storageError(w, r, req, err)
		return
	}
	info := obj.Info()
	if h.redirectable(r, req) && h.tryRedirect(ctx, w, r, req, info) {
		_ = obj.Close() // unread: the storage service sends the bytes
		return
	}
	size := info.Size
	served := obj
	if eo, ok := obj.(cas.EncodedObject); ok && zstdOK && info.Encoding == cas.EncodingZstd && len(r.Header.Values("Range")) == 0 {
		// The stored bytes are frames and a seek table in a skippable
		// frame, which every zstd decoder skips: one valid zstd stream.
		etag = zstdETag(req.Hash)
		served, size = eo.Stored(), info.StoredSize
		w.Header().Set("Content-Encoding", "zstd")
		// ServeContent sets no Content-Length when a Content-Encoding is
		// set; the length of the stored bytes is known.
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	}

	setContentHeaders(w.Header(), req, etag)
	content, src := contentSource(served)
	src.closer = obj
	// Runs before cancel: a Read still in flight in ServeContent's
	// goroutine ends with ctx, and then closes obj (see source).
	defer src.finish()
	h.serveGuarded(w, r, content, src, size, "hash", req.Hash)
	if readErr, _ := src.errs(); readErr != nil && ctx.Err() == nil {
		h.logger.ErrorContext(ctx, "cashttp: read failed mid-response", "hash", req.Hash, "err", readErr)
	}
}

// contentSource is what ServeContent reads for obj, and the source that
// records its read and seek errors (which ServeContent drops or sends to
// the client as text) and closes obj when finished. The bytes of a
// cas.FileObject are read from its file, and the content exposes the
// file's syscall.Conn, so that ServeContent's copy reaches the
// connection's ReadFrom with the file inside and the kernel sends it
// (sendfile).
func contentSource(obj cas.Object) (io.ReadSeeker, *source) {
	if fo, ok := obj.(cas.FileObject); ok {
		f := fo.File()
		src := &source{ReadSeeker: f, closer: obj}
		return fileSource{source: src, conn: f}, src
	}
	src := &source{ReadSeeker: obj, closer: obj}
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
		if _, seekErr := src.errs(); seekErr != nil {
			cause = seekErr
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
		h.writeNotModified(w, etag, req)
		return
	}
	jpeg, err := h.thumbnail(r.Context(), req)
	if err != nil {
		h.thumbnailError(w, r, req, err)
		return
	}
	setThumbnailHeaders(w.Header(), etag, req)
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

func (h *Handler) writeNotModified(w http.ResponseWriter, etag string, req casurl.Request) {
	setCacheHeaders(w.Header(), etag, req)
	w.WriteHeader(http.StatusNotModified)
}

// fail writes an error response: a short plain-text reason that must not
// come from a backend error, under the error headers of setErrorHeaders.
func (h *Handler) fail(w http.ResponseWriter, status int, reason string) {
	setErrorHeaders(w.Header(), status)
	http.Error(w, reason, status)
}

// errResponseEnded fails a Read or Seek of a source whose handler has
// finished with it.
var errResponseEnded = errors.New("cashttp: read after the response ended")

// source records the first read and seek errors of a ReadSeeker, and
// closes the object it reads (closer) when the handler has finished with
// it.
//
// http.ServeContent reads a multi-range response in a goroutine of its own
// (net/http's fs.go), which can outlive ServeContent: when the client hangs
// up, ServeContent returns on the failed write while that goroutine may
// still be in a Read. So the errors are guarded by mu (that goroutine
// records them while the handler reads them); after finish, a Read or
// Seek fails at once without touching the object; and the object is
// closed by finish, or, when a Read or Seek is still in flight, by the
// last one to return (the handler's context, under which the object
// reads, ends right after finish). No Backend's Object sees Close during
// one of its Reads.
type source struct {
	io.ReadSeeker
	closer io.Closer // the object, closed once finished and idle; or nil

	mu               sync.Mutex
	readErr, seekErr error
	busy             int  // Reads and Seeks in flight
	done             bool // finish was called
}

func (s *source) Read(p []byte) (int, error) {
	if !s.begin() {
		return 0, errResponseEnded
	}
	n, err := s.ReadSeeker.Read(p)
	if err != nil && err != io.EOF {
		s.end(&s.readErr, err)
	} else {
		s.end(nil, nil)
	}
	return n, err
}

func (s *source) Seek(off int64, whence int) (int64, error) {
	if !s.begin() {
		return 0, errResponseEnded
	}
	n, err := s.ReadSeeker.Seek(off, whence)
	s.end(&s.seekErr, err)
	return n, err
}

// begin registers a Read or Seek, unless the source is finished.
func (s *source) begin() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return false
	}
	s.busy++
	return true
}

// end ends a Read or Seek that begin registered: it records err in *first
// unless an error is there already (first may be nil), and closes the
// object if this was the last one in flight after finish.
func (s *source) end(first *error, err error) {
	s.mu.Lock()
	if first != nil && *first == nil {
		*first = err
	}
	s.busy--
	last := s.done && s.busy == 0
	s.mu.Unlock()
	if last {
		s.close()
	}
}

// finish is the handler's end with the source: later Reads and Seeks fail,
// and the object is closed now, or by the Read or Seek in flight when it
// returns. Calling it again does nothing.
func (s *source) finish() {
	s.mu.Lock()
	idle := !s.done && s.busy == 0
	s.done = true
	s.mu.Unlock()
	if idle {
		s.close()
	}
}

func (s *source) close() {
	if s.closer != nil {
		_ = s.closer.Close()
	}
}

// errs returns the first read and seek errors recorded so far. A nil
// source has none.
func (s *source) errs() (readErr, seekErr error) {
	if s == nil {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readErr, s.seekErr
}

// fileSource is a source over a file: it also exposes the file's
// syscall.Conn, which is what net/http's sendfile path looks for.
type fileSource struct {
	*source
	conn syscall.Conn
}

// SyscallConn implements syscall.Conn.
func (f fileSource) SyscallConn() (syscall.RawConn, error) { return f.conn.SyscallConn() }
