package cashttp

import (
	"context"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/casurl"
)

// redirectTypes are the media types (essence, lower case) whose blobs may
// be redirected to a presigned URL. The storage service's response
// carries neither nosniff nor Content-Security-Policy: sandbox, so only
// types that a browser neither runs script from nor sniffs into something
// else are listed: raster images, audio, video, PDF (which cashttp serves
// without a sandbox anyway) and archives. Anything else (HTML, SVG, XML,
// JavaScript, text/*, application/octet-stream, JSON...) is proxied with
// the handler's own headers.
var redirectTypes = []string{
	"application/gzip",
	"application/pdf",
	"application/x-7z-compressed",
	"application/x-tar",
	"application/zip",
	"application/zstd",
	"audio/aac",
	"audio/flac",
	"audio/mp4",
	"audio/mpeg",
	"audio/ogg",
	"audio/wav",
	"audio/webm",
	"image/avif",
	"image/gif",
	"image/jpeg",
	"image/png",
	"image/webp",
	"video/mp4",
	"video/ogg",
	"video/quicktime",
	"video/webm",
}

// RedirectableTypes returns the media types whose blobs WithRedirect may
// redirect, sorted. Parameters of a content type (charset=...) do not
// matter; the comparison ignores letter case.
func RedirectableTypes() []string { return slices.Clone(redirectTypes) }

// redirectableType reports whether ct's media type is in redirectTypes.
func redirectableType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	_, ok := slices.BinarySearch(redirectTypes, mt) // ParseMediaType lower-cases
	return ok && !scriptCapable(ct)
}

// redirect is the configuration of WithRedirect, with the Presigner found
// at NewHandler.
type redirect struct {
	minSize   int64
	lifetime  time.Duration
	presigner cas.Presigner // nil: the store's backend cannot presign
}

// WithRedirect answers a GET of a blob of at least minSize bytes with 307
// Temporary Redirect to a URL from which the storage service sends the
// bytes itself (cas.Presigner: s3store presigns a GetObject), so that large
// downloads leave the application's network. The URL works for lifetime
// (or until the casurl's own expiry, if that comes first); the 307 is
// cached privately for half of that, so a browser never follows a cached
// redirect to an expired URL. The presigned response carries the content
// type, Content-Disposition and a private Cache-Control that the request
// asks for, which the URL's signature covers.
//
// Only what the redirect cannot weaken is redirected: a GET (a HEAD is
// answered here: a presigned GET URL does not take HEAD) of a blob stored
// as it is (cas.Info.Encoding "": a compressed blob is decoded here), of
// a content type in RedirectableTypes (the service's response has no
// nosniff and no sandbox, so script-capable and sniffable types are
// proxied as before), with no Range or a single byte range (the service
// serves it; several ranges, and ranges the guard refuses, are answered
// here under MaxRanges), and no If-Match, If-None-Match,
// If-Unmodified-Since or If-Range (the service's ETag is not the hash).
// A 304 from If-None-Match still needs no backend call, and a signed URL
// (WithSigner) is checked, expiry included, before anything else. The
// blob is opened first (one metadata call, as for every response: its
// size and encoding decide), then closed unread.
//
// When the store's Backend is no cas.Presigner (through cas.Checked) the
// option does nothing and NewHandler logs a warning; a presign that fails
// is logged and the blob is proxied. minSize must be at least 0 and
// lifetime at least 2 s (the 307's max-age is half of it, in whole
// seconds); s3store accepts lifetimes up to 7 days.
func WithRedirect(minSize int64, lifetime time.Duration) Option {
	if minSize < 0 {
		badOption("WithRedirect", minSize, "want a minimum size of 0 or more bytes")
	}
	if lifetime < 2*time.Second {
		badOption("WithRedirect", lifetime, "want a URL lifetime of at least 2s")
	}
	return func(h *Handler) { h.redirect = &redirect{minSize: minSize, lifetime: lifetime} }
}

// initRedirect finds the store's Presigner for WithRedirect, or warns.
func (h *Handler) initRedirect() {
	if h.redirect == nil {
		return
	}
	ps, ok := cas.Checked(h.store.Backend()).(cas.Presigner)
	if !ok {
		h.logger.Warn("cashttp: WithRedirect: the store's backend cannot presign URLs; every blob is proxied",
			"backend", fmt.Sprintf("%T", h.store.Backend()))
		return
	}
	h.redirect.presigner = ps
}

// redirectable reports whether r for req may be redirected at all, before
// the blob is opened: the checks that need no size.
func (h *Handler) redirectable(r *http.Request, req casurl.Request) bool {
	if h.redirect == nil || h.redirect.presigner == nil || r.Method != http.MethodGet {
		return false
	}
	for _, k := range []string{"If-Match", "If-None-Match", "If-Unmodified-Since", "If-Range"} {
		if r.Header.Get(k) != "" {
			return false
		}
	}
	return redirectableType(req.ContentType)
}

// singleRange reports whether r has no Range, or one field holding a
// single satisfiable byte range in its plain form (bytes=a-b, bytes=a- or
// bytes=-n, no whitespace), which the storage service serves as the guard
// would.
func singleRange(r *http.Request, size int64) bool {
	fields := r.Header.Values("Range")
	if len(fields) == 0 {
		return true
	}
	if len(fields) != 1 || strings.ContainsAny(fields[0], " \t,") {
		return false
	}
	ranges, ignore, err := parseRange(fields, size)
	return err == nil && !ignore && len(ranges) == 1
}

// tryRedirect answers r with a 307 to a presigned URL of the blob info
// describes, when WithRedirect allows it (see there), and reports whether
// it did. The caller has checked redirectable.
func (h *Handler) tryRedirect(ctx context.Context, w *responseWriter, r *http.Request, req casurl.Request, info cas.Info) bool {
	rd := h.redirect
	if info.Size < rd.minSize || info.Encoding != "" || !singleRange(r, info.Size) {
		return false
	}
	now := time.Now()
	life := rd.lifetime
	if !req.Expires.IsZero() {
		// The presigned URL must not outlive the casurl that led to it.
		life = min(life, req.Expires.Sub(now))
	}
	life = life.Truncate(time.Second)
	if life < 2*time.Second {
		return false // about to expire: proxying is as cheap
	}
	secs := strconv.FormatInt(int64(life/time.Second), 10)
	u, err := rd.presigner.PresignGet(ctx, info.Key, cas.PresignOptions{
		Expires:            life,
		ContentType:        req.ContentType,
		ContentDisposition: contentDisposition(req.Disposition, req.Filename, false),
		CacheControl:       "private, max-age=" + secs,
	})
	if err != nil {
		h.logger.WarnContext(ctx, "cashttp: presign failed; proxying", "hash", req.Hash, "err", err)
		return false
	}
	hdr := w.Header()
	hdr.Set("Location", u)
	hdr.Set("Cache-Control", "private, max-age="+strconv.FormatInt(int64(life/2/time.Second), 10))
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(http.StatusTemporaryRedirect)
	h.logger.DebugContext(ctx, "cashttp: redirected", "hash", req.Hash, "size", info.Size, "lifetime", life)
	return true
}
