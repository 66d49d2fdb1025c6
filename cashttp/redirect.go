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

// MinRedirectLifetime is the shortest URL lifetime WithRedirect takes.
const MinRedirectLifetime = 10 * time.Second

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
// downloads leave the application's network. The URL is dated to the start
// of the current window of lifetime/2 (windows aligned to the zero time, so
// every replica signs the same URL for the same request in a window, and
// a browser's cached response is reused) and works for lifetime from then,
// or until the casurl's own expiry if that comes first: from the request,
// between half and all of lifetime. The 307 is cached privately for half
// of what is left, so a browser never follows a cached redirect to an
// expired URL. The presigned response carries the content
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
// lifetime at least MinRedirectLifetime (so that a URL has at least half
// of it left when handed out); s3store accepts lifetimes up to 7 days.
func WithRedirect(minSize int64, lifetime time.Duration) Option {
	if minSize < 0 {
		badOption("WithRedirect", minSize, "want a minimum size of 0 or more bytes")
	}
	if lifetime < MinRedirectLifetime {
		badOption("WithRedirect", lifetime, "want a URL lifetime of at least "+MinRedirectLifetime.String())
	}
	return func(h *Handler) { h.redirect = &redirect{minSize: minSize, lifetime: lifetime} }
}

// window is the length of the windows presigned URLs are dated to: half
// the lifetime, in whole seconds (at least 5 s: MinRedirectLifetime).
func (rd *redirect) window() time.Duration { return (rd.lifetime / 2).Truncate(time.Second) }

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
	// The URL is dated to the start of the current window of half the
	// lifetime (windows are aligned to the zero time, so every replica
	// agrees): one URL per window, which browsers can cache.
	now := time.Now()
	signed := now.Truncate(rd.window())
	end := signed.Add(rd.lifetime)
	if !req.Expires.IsZero() && req.Expires.Before(end) {
		end = req.Expires // the presigned URL must not outlive the casurl
	}
	left := end.Sub(now).Truncate(time.Second)
	if left < 2*time.Second {
		return false // about to expire: proxying is as cheap
	}
	valid := end.Sub(signed)
	u, err := rd.presigner.PresignGet(ctx, info.Key, cas.PresignOptions{
		Expires:            valid,
		SignedAt:           signed,
		ContentType:        req.ContentType,
		ContentDisposition: contentDisposition(req.Disposition, req.Filename, false),
		CacheControl:       "private, max-age=" + strconv.FormatInt(int64(valid/time.Second), 10),
	})
	if err != nil {
		h.logger.WarnContext(ctx, "cashttp: presign failed; proxying", "hash", req.Hash, "err", err)
		return false
	}
	hdr := w.Header()
	hdr.Set("Location", u)
	hdr.Set("Cache-Control", "private, max-age="+strconv.FormatInt(int64(left/2/time.Second), 10))
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(http.StatusTemporaryRedirect)
	h.logger.DebugContext(ctx, "cashttp: redirected", "hash", req.Hash, "size", info.Size, "valid_for", left)
	return true
}
