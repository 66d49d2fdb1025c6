package cashttp

import (
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/casurl"
)

// successOnlyHeaders are the headers that describe a successful
// representation; an error response must not carry them (a cache would
// take the error for the blob, a browser would save or sandbox it). This
// is the one list: both fail and the guarded ResponseWriter strip it.
var successOnlyHeaders = []string{
	"ETag",
	"Content-Disposition",
	"Content-Security-Policy",
	"Accept-Ranges",
	"Content-Encoding",
	"Content-Range",
	"Content-Length",
}

// setErrorHeaders makes hdr the headers of an error response with the
// given status: no successOnlyHeaders (except the Content-Range:
// bytes */<size> that RFC 9110 asks a 416 to send), Cache-Control:
// no-store so that no cache keeps the failure, a plain-text body, and
// nosniff.
func setErrorHeaders(hdr http.Header, status int) {
	for _, k := range successOnlyHeaders {
		if k == "Content-Range" && status == http.StatusRequestedRangeNotSatisfiable {
			continue
		}
		hdr.Del(k)
	}
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Content-Type", "text/plain; charset=utf-8")
	hdr.Set("X-Content-Type-Options", "nosniff")
}

// contentETag is the ETag of a blob's bytes, whatever content type or
// filename the URL asks for: the hash.
func contentETag(h cas.Hash) string { return `"` + h.String() + `"` }

// thumbnailETag is the ETag of a blob's thumbnail of a size; it never
// validates the blob's bytes.
func thumbnailETag(h cas.Hash, size int) string { return fmt.Sprintf(`"%s-t%d"`, h, size) }

// setCacheHeaders sets the headers of every success and 304: the ETag,
// caching, and nosniff. A URL without an expiry is cached forever
// (CacheControl). A URL that expires (casurl Request.Expires) is cached only
// privately and only until it expires: a shared cache must not keep serving
// it to others, nor anyone after its lifetime.
func setCacheHeaders(hdr http.Header, etag string, req casurl.Request) {
	hdr.Set("ETag", etag)
	hdr.Set("Cache-Control", cacheControl(req, time.Now()))
	hdr.Set("X-Content-Type-Options", "nosniff")
}

// cacheControl is the Cache-Control of a success for req at now.
func cacheControl(req casurl.Request, now time.Time) string {
	if req.Expires.IsZero() {
		return CacheControl
	}
	left := int64(req.Expires.Sub(now) / time.Second)
	return "private, max-age=" + strconv.FormatInt(max(left, 0), 10)
}

// setContentHeaders sets the headers of a content response: the content
// type asked for, a Content-Disposition, and Content-Security-Policy:
// sandbox for content a browser could run script from.
func setContentHeaders(hdr http.Header, req casurl.Request, etag string) {
	hdr.Set("Content-Type", req.ContentType)
	active := scriptCapable(req.ContentType)
	if cd := contentDisposition(req.Disposition, req.Filename, active); cd != "" {
		hdr.Set("Content-Disposition", cd)
	}
	if active {
		hdr.Set("Content-Security-Policy", "sandbox")
	}
	setCacheHeaders(hdr, etag, req)
	hdr.Set("Accept-Ranges", "bytes")
}

// setThumbnailHeaders sets the headers of a thumbnail response.
func setThumbnailHeaders(hdr http.Header, etag string, req casurl.Request) {
	hdr.Set("Content-Type", "image/jpeg")
	setCacheHeaders(hdr, etag, req)
	hdr.Set("Accept-Ranges", "bytes")
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

// scriptCapable reports whether a browser could run script from a
// response of media type ct if it displayed it: HTML, XHTML, SVG and any
// other XML (XSLT, MathML), JavaScript and ECMAScript, Flash, multipart
// and message types (MHTML, x-mixed-replace). A type that does not parse
// counts as script-capable.
func scriptCapable(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return true
	}
	typ, sub, ok := strings.Cut(mt, "/")
	if !ok {
		return true
	}
	switch typ {
	case "multipart", "message":
		return true
	}
	for _, s := range []string{"html", "xml", "svg", "xsl", "script", "flash", "futuresplash"} {
		if strings.Contains(sub, s) {
			return true
		}
	}
	return false
}

// contentDisposition builds the Content-Disposition header for a
// disposition ("", inline or attachment) and a filename (may be empty).
// Script-capable content is always an attachment. The filename appears
// twice: as a quoted ASCII fallback in which quotes, backslashes, percent
// signs, semicolons, control and non-ASCII characters are replaced by "_",
// and as an RFC 8187 filename* with the UTF-8 name percent-encoded. Path
// separators become "_" in both. It returns "" when there is nothing to
// say (inline, no filename).
func contentDisposition(disp, filename string, scriptCapable bool) string {
	if scriptCapable {
		disp = casurl.Attachment
	}
	if filename == "" {
		if disp == casurl.Attachment {
			return casurl.Attachment
		}
		return ""
	}
	if disp == "" {
		disp = casurl.Inline
	}
	name := strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' {
			return '_'
		}
		return r
	}, filename)

	var b strings.Builder
	b.WriteString(disp)
	b.WriteString(`; filename="`)
	for _, r := range name {
		switch {
		case r == utf8.RuneError, r < 0x20, r >= 0x7f, r == '"', r == '\\', r == '%', r == ';':
			b.WriteByte('_')
		default:
			b.WriteRune(r)
		}
	}
	b.WriteString(`"; filename*=UTF-8''`)
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(name); i++ {
		if c := name[i]; isAttrChar(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
		}
	}
	return b.String()
}

// isAttrChar reports the bytes RFC 8187 allows unencoded in a value.
func isAttrChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$&+-.^_`|~", c) >= 0
}
