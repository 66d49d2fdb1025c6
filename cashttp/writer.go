package cashttp

import (
	"io"
	"net/http"
	"strings"
)

// responseWriter records the status and body bytes of a response for
// metrics. While guard is set (inside http.ServeContent) it rewrites error
// responses: the error headers of setErrorHeaders, a fixed short body
// instead of ServeContent's text, and 500 when the source failed to seek.
// It forwards ReadFrom, so that a copy from a file still reaches the
// connection's sendfile.
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
	if _, seekErr := w.src.errs(); seekErr != nil {
		code = http.StatusInternalServerError
	}
	w.status = code
	w.discard = true
	setErrorHeaders(w.Header(), code)
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
