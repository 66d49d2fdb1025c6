package cashttp

import (
	"errors"
	"net/http"
	"strings"

	"github.com/casa-go/casa/casurl"
)

// requestError is a request refused before storage is asked anything:
// the status and the short reason sent to the client.
type requestError struct {
	status int
	reason string
}

// hashFromPath is where ServeHTTP finds the hash: the {hash} path value
// of a ServeMux route, else the last segment of the path.
func hashFromPath(r *http.Request) string {
	if hash := r.PathValue("hash"); hash != "" {
		return hash
	}
	return casurl.LastSegment(r.URL)
}

// parseRequest checks the method and parses the hash and query of r: 405
// for a method other than GET and HEAD, 403 for a missing or wrong
// signature, 400 for anything else the parser refuses.
func (h *Handler) parseRequest(r *http.Request, hash string) (casurl.Request, *requestError) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return casurl.Request{}, &requestError{http.StatusMethodNotAllowed, "method not allowed"}
	}
	req, err := h.parse(hash, r.URL.RawQuery)
	switch {
	case errors.Is(err, casurl.ErrSignature):
		return casurl.Request{}, &requestError{http.StatusForbidden, "forbidden: missing or invalid signature"}
	case err != nil:
		// The text is casurl's own description of the request, never a backend's.
		return casurl.Request{}, &requestError{http.StatusBadRequest, "bad request: " + strings.TrimPrefix(err.Error(), casurl.ErrInvalidRequest.Error()+": ")}
	}
	return req, nil
}

// parse is the one call to casurl's parser: it checks the signature when
// signing is on.
func (h *Handler) parse(hash, rawQuery string) (casurl.Request, error) {
	return casurl.Parse(hash, rawQuery, h.signer)
}

// refuse answers a request that parseRequest refused.
func (h *Handler) refuse(w *responseWriter, e *requestError) {
	if e.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", "GET, HEAD")
	}
	h.fail(w, e.status, e.reason)
}
