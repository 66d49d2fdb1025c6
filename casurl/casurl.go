// Package casurl builds and parses the URLs under which cashttp serves
// blobs: /api/cas/<hex>?content_type=<mime>[&disposition=...][&filename=...]
// for content and /api/cas/<hex>?thumbnail=<px> for thumbnails, optionally
// HMAC-signed so that a client cannot change what a URL asks for.
//
// A URL carries everything needed to serve a blob (hash, content type,
// filename), so serving needs no database lookup. Parameters always appear
// in one fixed order (content_type, disposition, filename, thumbnail, sig),
// so equal requests have equal URLs and share cache entries.
package casurl

import (
	"errors"
	"fmt"
	"mime"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/casa-go/casa/cas"
)

// DefaultPrefix is the path under which URLs are built when Builder.Prefix
// is empty.
const DefaultPrefix = "/api/cas"

// Limits on the parts of a URL that Parse accepts.
const (
	// MaxQueryLength is the longest raw query string Parse accepts.
	MaxQueryLength = 4096
	// MaxFilenameLength is the longest filename, in bytes.
	MaxFilenameLength = 255
	// MaxContentTypeLength is the longest content type, in bytes.
	MaxContentTypeLength = 255
)

// Dispositions accepted in the disposition parameter.
const (
	Inline     = "inline"
	Attachment = "attachment"
)

// Query parameter names.
const (
	ParamContentType = "content_type"
	ParamDisposition = "disposition"
	ParamFilename    = "filename"
	ParamThumbnail   = "thumbnail"
	ParamSig         = "sig"
)

// ErrInvalidRequest is wrapped by every error Parse returns: the URL does
// not name a blob in a form this package builds.
var ErrInvalidRequest = errors.New("casurl: invalid request")

// ErrSignature is wrapped by the errors of Signer.Verify when a URL's sig
// parameter is missing or does not match.
var ErrSignature = errors.New("casurl: missing or invalid signature")

// Request is what a URL asks for: either the bytes of a blob (ContentType
// set) or a thumbnail of it (Thumbnail set), never both.
type Request struct {
	Hash        cas.Hash // the blob
	ContentType string   // the Content-Type to serve the bytes with
	Disposition string   // "", Inline or Attachment
	Filename    string   // the name a browser saves the bytes under; may be empty
	Thumbnail   int      // thumbnail size in pixels; 0 for a content request
}

// IsThumbnail reports whether r asks for a thumbnail rather than the bytes.
func (r Request) IsThumbnail() bool { return r.Thumbnail != 0 }

// Builder builds URLs. The zero Builder builds unsigned URLs under
// DefaultPrefix. A Builder is a value and safe for concurrent use.
type Builder struct {
	// Prefix is the path (or absolute URL) the hash is appended to;
	// DefaultPrefix when empty. A trailing slash is ignored.
	Prefix string
	// Signer, when not nil, signs every URL with a sig parameter.
	Signer *Signer
}

// Inline returns the URL that serves the blob h with the given content
// type, for display in the browser. An empty contentType means
// application/octet-stream.
func (b Builder) Inline(h cas.Hash, contentType string) string {
	return b.URL(Request{Hash: h, ContentType: orOctetStream(contentType)})
}

// Download returns the URL that serves the blob h as an attachment
// (disposition=attachment) saved under filename. An empty contentType
// means application/octet-stream; an empty filename is left out.
func (b Builder) Download(h cas.Hash, contentType, filename string) string {
	return b.URL(Request{Hash: h, ContentType: orOctetStream(contentType), Disposition: Attachment, Filename: filename})
}

// Thumbnail returns the URL of the size x size pixel thumbnail of the blob
// h. The handler decides which sizes it serves.
func (b Builder) Thumbnail(h cas.Hash, size int) string {
	return b.URL(Request{Hash: h, Thumbnail: size})
}

// ForKey returns the URL for a Backend key as an application stores it:
// Download when filename is not empty, else Inline. For an empty key or a
// legacy (non-CAS) key it returns "", false, so that an application's
// computed URL fields are null exactly when there is nothing to serve.
func (b Builder) ForKey(key, contentType, filename string) (string, bool) {
	h, err := cas.ParseKey(key)
	if err != nil {
		return "", false
	}
	if filename != "" {
		return b.Download(h, contentType, filename), true
	}
	return b.Inline(h, contentType), true
}

// URL returns the URL for r: the prefix, the hash, and r's parameters in
// the fixed order, query-escaped, plus sig when b has a Signer. URL does
// not validate r; Parse of the result fails if r is not a valid Request.
func (b Builder) URL(r Request) string {
	prefix := b.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	var s strings.Builder
	s.WriteString(strings.TrimSuffix(prefix, "/"))
	s.WriteByte('/')
	s.WriteString(r.Hash.String())
	q := encodeQuery(r)
	if sig := b.Signer.Sign(r); sig != "" {
		if q != "" {
			q += "&"
		}
		q += ParamSig + "=" + sig
	}
	if q != "" {
		s.WriteByte('?')
		s.WriteString(q)
	}
	return s.String()
}

func orOctetStream(ct string) string {
	if ct == "" {
		return "application/octet-stream"
	}
	return ct
}

// encodeQuery is the canonical query of r, without sig: the parameters
// that are set, in the fixed order, query-escaped.
func encodeQuery(r Request) string {
	var s strings.Builder
	add := func(k, v string) {
		if s.Len() > 0 {
			s.WriteByte('&')
		}
		s.WriteString(k)
		s.WriteByte('=')
		s.WriteString(url.QueryEscape(v))
	}
	if r.ContentType != "" {
		add(ParamContentType, r.ContentType)
	}
	if r.Disposition != "" {
		add(ParamDisposition, r.Disposition)
	}
	if r.Filename != "" {
		add(ParamFilename, r.Filename)
	}
	if r.Thumbnail != 0 {
		add(ParamThumbnail, strconv.Itoa(r.Thumbnail))
	}
	return s.String()
}

// Parse parses a URL built by a Builder. The hash is the last segment of
// the path; the rest of the path is not examined, so the URL may be
// mounted under any prefix. A sig parameter is accepted but not checked
// (see Signer.Verify). Every error wraps ErrInvalidRequest and names the
// offending part.
func Parse(u *url.URL) (Request, error) {
	if u == nil {
		return Request{}, fmt.Errorf("%w: nil URL", ErrInvalidRequest)
	}
	return ParseParts(LastSegment(u), u.RawQuery)
}

// ParseParts is Parse for a hash and a raw query that are already apart,
// as in an HTTP handler whose router extracted the hash from the path.
func ParseParts(hash, rawQuery string) (Request, error) {
	r, _, err := parse(hash, rawQuery)
	if err != nil {
		return Request{}, err
	}
	return r, nil
}

// LastSegment returns the last segment of u's path in its escaped form:
// the part that holds the hash in a URL this package builds.
func LastSegment(u *url.URL) string {
	p := u.EscapedPath()
	return p[strings.LastIndexByte(p, '/')+1:]
}

// parse validates hash and rawQuery and returns the Request and the sig
// parameter ("" when absent).
func parse(hash, rawQuery string) (Request, string, error) {
	var r Request
	h, err := cas.Parse(hash)
	if err != nil {
		return r, "", fmt.Errorf("%w: path: the last segment is not a lowercase hex SHA-256", ErrInvalidRequest)
	}
	r.Hash = h
	if len(rawQuery) > MaxQueryLength {
		return r, "", fmt.Errorf("%w: query longer than %d bytes", ErrInvalidRequest, MaxQueryLength)
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return r, "", fmt.Errorf("%w: malformed query", ErrInvalidRequest)
	}
	for k, vs := range q {
		switch k {
		case ParamContentType, ParamDisposition, ParamFilename, ParamThumbnail, ParamSig:
		default:
			return r, "", fmt.Errorf("%w: unknown parameter %.40q", ErrInvalidRequest, k)
		}
		if len(vs) != 1 {
			return r, "", fmt.Errorf("%w: %s: repeated", ErrInvalidRequest, k)
		}
		if vs[0] == "" {
			return r, "", fmt.Errorf("%w: %s: empty", ErrInvalidRequest, k)
		}
	}
	get := func(k string) (string, bool) {
		vs, ok := q[k]
		if !ok {
			return "", false
		}
		return vs[0], true
	}
	ct, hasCT := get(ParamContentType)
	thumb, hasThumb := get(ParamThumbnail)
	switch {
	case hasCT && hasThumb:
		return r, "", fmt.Errorf("%w: content_type and thumbnail are exclusive", ErrInvalidRequest)
	case !hasCT && !hasThumb:
		return r, "", fmt.Errorf("%w: content_type or thumbnail is required", ErrInvalidRequest)
	}
	disp, hasDisp := get(ParamDisposition)
	name, hasName := get(ParamFilename)
	sig, _ := get(ParamSig)
	if hasThumb {
		if hasDisp || hasName {
			return r, "", fmt.Errorf("%w: thumbnail takes no disposition or filename", ErrInvalidRequest)
		}
		n, err := parseSize(thumb)
		if err != nil {
			return r, "", err
		}
		r.Thumbnail = n
		return r, sig, nil
	}
	if err := checkContentType(ct); err != nil {
		return r, "", err
	}
	r.ContentType = ct
	if hasDisp {
		if disp != Inline && disp != Attachment {
			return r, "", fmt.Errorf("%w: disposition: want %q or %q", ErrInvalidRequest, Inline, Attachment)
		}
		r.Disposition = disp
	}
	if hasName {
		if err := checkFilename(name); err != nil {
			return r, "", err
		}
		r.Filename = name
	}
	return r, sig, nil
}

// parseSize parses a thumbnail size: base-10 digits, no sign, no leading
// zero, at least 1.
func parseSize(s string) (int, error) {
	bad := func(why string) error { return fmt.Errorf("%w: thumbnail: %s", ErrInvalidRequest, why) }
	if len(s) > 9 {
		return 0, bad("too large")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, bad("not a base-10 integer")
		}
	}
	if s[0] == '0' {
		return 0, bad("must be at least 1, without leading zeros")
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, bad("not a base-10 integer")
	}
	return n, nil
}

func checkContentType(ct string) error {
	if len(ct) > MaxContentTypeLength {
		return fmt.Errorf("%w: content_type: longer than %d bytes", ErrInvalidRequest, MaxContentTypeLength)
	}
	for i := 0; i < len(ct); i++ {
		if c := ct[i]; c < 0x20 || c > 0x7e {
			return fmt.Errorf("%w: content_type: control or non-ASCII character", ErrInvalidRequest)
		}
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return fmt.Errorf("%w: content_type: not a media type", ErrInvalidRequest)
	}
	if typ, sub, ok := strings.Cut(mt, "/"); !ok || typ == "" || sub == "" || strings.Contains(sub, "/") {
		return fmt.Errorf("%w: content_type: want type/subtype", ErrInvalidRequest)
	}
	return nil
}

func checkFilename(name string) error {
	if len(name) > MaxFilenameLength {
		return fmt.Errorf("%w: filename: longer than %d bytes", ErrInvalidRequest, MaxFilenameLength)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: filename: not valid UTF-8", ErrInvalidRequest)
	}
	for _, c := range name {
		if unicode.IsControl(c) || isBidiControl(c) {
			return fmt.Errorf("%w: filename: control character", ErrInvalidRequest)
		}
	}
	return nil
}

// isBidiControl reports the Unicode bidirectional formatting characters,
// which make a name such as "invoice\u202Efdp.exe" display as "invoiceexe.pdf".
func isBidiControl(c rune) bool {
	return c == '\u061c' || c == '\u200e' || c == '\u200f' ||
		('\u202a' <= c && c <= '\u202e') || ('\u2066' <= c && c <= '\u2069')
}
