package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// Defaults for the request-body deadlines.
const (
	// DefaultBodyStall is how long a request body may send nothing before
	// it is cut off, unless Config.BodyStall says otherwise.
	DefaultBodyStall = 30 * time.Second
	// DefaultSmallBodyTimeout is how long a JSON or form body has to
	// arrive whole, unless Config.SmallBodyTimeout says otherwise.
	DefaultSmallBodyTimeout = 10 * time.Second
)

// errBodyTimeout is what a read of a guarded body returns once its
// deadline has passed.
var errBodyTimeout = errors.New("request body timed out")

// bodyGuard wraps a request body so that it must make progress: before
// each Read the connection's read deadline is pushed to now + stall (and
// never past the whole-body deadline, when one is set), so a client that
// sends nothing for stall is cut off, however long its upload is overall.
// A body of a slow but steady client is never cut.
//
// Deadlines are set with http.ResponseController, so they apply to the
// network connection itself: a read blocked in the kernel returns at the
// deadline, its handler fails, and the descriptors it holds (the
// connection, a temp file) are released.
type bodyGuard struct {
	body  io.ReadCloser
	rc    *http.ResponseController
	stall time.Duration
	// Set by the handler goroutine that reads; read by the same goroutine
	// (or, after Read returned, by the one that answers).
	whole    time.Time // zero: no whole-body deadline
	eof      bool
	disabled bool // the ResponseWriter cannot set deadlines (httptest.ResponseRecorder)
	refused  bool // refuseBody, for a client waiting for "100 Continue"
	timedOut atomic.Bool
}

// bodyGuardKey is the context key under which guardBodies stores the guard
// of a request, so that error answers can tell a cut-off body from a
// failure of the server.
type bodyGuardKey struct{}

// guardBodies wraps every request body in a bodyGuard. After h returns it
// bounds the rest: net/http drains up to 256 KiB of an unread body after the
// handler to reuse the connection, and that drain must not wait for a
// stalled client either.
func guardBodies(h http.Handler, stall time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			h.ServeHTTP(w, r)
			return
		}
		g := &bodyGuard{body: r.Body, rc: http.NewResponseController(w), stall: stall}
		r = r.WithContext(context.WithValue(r.Context(), bodyGuardKey{}, g))
		r.Body = g
		h.ServeHTTP(w, r)
		if !g.eof && !g.disabled && !g.timedOut.Load() {
			d := time.Now()
			if !g.refused {
				d = d.Add(stall)
			}
			_ = g.rc.SetReadDeadline(d)
		}
	})
}

// guardOf returns the guard of r's body, or nil.
func guardOf(r *http.Request) *bodyGuard {
	g, _ := r.Context().Value(bodyGuardKey{}).(*bodyGuard)
	return g
}

// refuseBody is called by a handler that answers without reading r's body
// (a declared Content-Length over a limit): the answer closes the
// connection. A client that sent "Expect: 100-continue" is not sending the
// body, so net/http must not wait for it to drain it: the connection is
// closed at once. Any other client is sending it: net/http reads up to
// 256 KiB of it (within the stall deadline) or stops reading and lingers
// before it closes, so that the client reads the answer instead of a reset
// for unread data.
func refuseBody(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Connection", "close")
	if g := guardOf(r); g != nil && strings.EqualFold(r.Header.Get("Expect"), "100-continue") {
		g.refused = true
	}
}

// wholeBodyWithin requires the rest of r's body to arrive within d. It
// must be called by the goroutine that reads the body, before it reads.
func wholeBodyWithin(r *http.Request, d time.Duration) {
	if g := guardOf(r); g != nil && g.whole.IsZero() {
		g.whole = time.Now().Add(d)
	}
}

// bodyTimedOut reports whether r's body was cut off by its deadline.
func bodyTimedOut(r *http.Request) bool {
	g := guardOf(r)
	return g != nil && g.timedOut.Load()
}

// Read reads from the body with the connection's read deadline pushed
// forward.
func (g *bodyGuard) Read(p []byte) (int, error) {
	if g.timedOut.Load() {
		return 0, errBodyTimeout
	}
	if !g.disabled && !g.eof {
		d := time.Now().Add(g.stall)
		if !g.whole.IsZero() && g.whole.Before(d) {
			d = g.whole
		}
		if err := g.rc.SetReadDeadline(d); err != nil {
			g.disabled = true // no connection to time out: a test recorder
		}
	}
	n, err := g.body.Read(p)
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		// The whole body is in. net/http now clears the read deadline
		// and reads the connection in the background to notice a client
		// that goes away: no later Read may set a deadline again, or
		// that read would time out and cancel a handler that takes its
		// time with the backend.
		g.eof = true
	case errors.Is(err, os.ErrDeadlineExceeded):
		g.timedOut.Store(true)
		err = fmt.Errorf("%w: %w", errBodyTimeout, err)
	}
	return n, err
}

// Close closes the body.
func (g *bodyGuard) Close() error { return g.body.Close() }
