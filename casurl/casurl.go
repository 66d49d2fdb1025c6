// Package casurl builds and parses the URLs under which cashttp serves
// blobs: /api/cas/<hex>?content_type=<mime>[&disposition=...][&filename=...]
// for content and /api/cas/<hex>?thumbnail=<px> for thumbnails, optionally
// HMAC-signed so that a client cannot change what a URL asks for.
//
// A URL carries everything needed to serve a blob (hash, content type,
// filename), so serving needs no database lookup. Parameters always appear
// in one fixed order (content_type, disposition, filename, thumbnail,
// expires, sig), so equal requests have equal URLs and share cache entries.
//
// A signed URL may expire: Request.Expires (or Builder.TTL) adds an
// expires parameter, in Unix seconds, that the signature covers; Parse
// with a Signer rejects the URL from then on with ErrExpired.
package casurl

import (
	"errors"
	"fmt"
	"maps"
	"mime"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/casa-go/casa/cas"
)

// DefaultPrefix is the path under which URLs are built when Builder.Prefix
// is empty.
const DefaultPrefix = "/api/cas"

// Limits on the parts of a URL that Parse accepts and a Builder builds.
const (
	// MaxQueryLength is the longest raw query string Parse accepts.
	MaxQueryLength = 4096
	// MaxFilenameLength is the longest filename, in bytes.
	MaxFilenameLength = 255
	// MaxContentTypeLength is the longest content type, in bytes.
	MaxContentTypeLength = 255
	// MaxThumbnailSize is the largest thumbnail size a URL can carry (9
	// digits). The handler decides which sizes it actually serves.
	MaxThumbnailSize = 999999999
	// MaxExpires is the latest expiry a URL can carry, in Unix seconds
	// (10 digits, in the year 2286).
	MaxExpires = 9999999999
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
	ParamExpires     = "expires"
	ParamSig         = "sig"
)

// ErrInvalidRequest is wrapped by every error Parse returns for a malformed
// request (the URL does not name a blob in a form this package builds), by
// the errors of the Builder methods for a request no URL can carry, and by
// the errors of CheckContentType and CheckFilename.
var ErrInvalidRequest = errors.New("casurl: invalid request")

// ErrSignature is wrapped by the error of Parse with a Signer when a URL's
// sig parameter is missing or does not match.
var ErrSignature = errors.New("casurl: missing or invalid signature")

// ErrExpired is wrapped, together with ErrSignature, by the error of Parse
// with a Signer when a validly signed URL has expired: a handler that
// answers ErrSignature with 403 answers an expired URL the same way.
var ErrExpired = errors.New("casurl: URL expired")

// Request is what a URL asks for: either the bytes of a blob (ContentType
// set) or a thumbnail of it (Thumbnail set), never both.
type Request struct {
	Hash        cas.Hash // the blob
	ContentType string   // the Content-Type to serve the bytes with
	Disposition string   // "", Inline or Attachment
	Filename    string   // the name a browser saves the bytes under; may be empty
	Thumbnail   int      // thumbnail size in pixels; 0 for a content request
	// Expires, when not zero, is when the URL stops working. It must be
	// a whole second between 1 and MaxExpires in Unix time, and needs a
	// signed URL: the signature covers it.
	Expires time.Time
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
	// TTL, when positive, makes every URL the Builder returns expire TTL
	// from now (rounded up to a whole second), unless the Request sets
	// Expires itself. It needs a Signer with a key.
	TTL time.Duration
}

// Inline returns the URL that serves the blob h with the given content
// type, for display in the browser. An empty contentType means
// application/octet-stream. A content type that CheckContentType rejects
// is an error wrapping ErrInvalidRequest: Parse would reject the URL.
func (b Builder) Inline(h cas.Hash, contentType string) (string, error) {
	return b.URL(Request{Hash: h, ContentType: orOctetStream(contentType)})
}

// Download returns the URL that serves the blob h as an attachment
// (disposition=attachment) saved under filename. An empty contentType
// means application/octet-stream; an empty filename is left out. A content
// type or filename that CheckContentType or CheckFilename rejects is an
// error wrapping ErrInvalidRequest.
func (b Builder) Download(h cas.Hash, contentType, filename string) (string, error) {
	return b.URL(Request{Hash: h, ContentType: orOctetStream(contentType), Disposition: Attachment, Filename: filename})
}

// Thumbnail returns the URL of the size x size pixel thumbnail of the blob
// h. A size outside 1..MaxThumbnailSize is an error wrapping
// ErrInvalidRequest. Which sizes are served is the handler's choice.
func (b Builder) Thumbnail(h cas.Hash, size int) (string, error) {
	return b.URL(Request{Hash: h, Thumbnail: size})
}

// ForKey returns the URL for a Backend key as an application stores it:
// Download when filename is not empty, else Inline. It returns "", false
// when there is no URL that would serve the row: for an empty or legacy
// (non-CAS) key, and for a content type or filename that CheckContentType
// or CheckFilename rejects (such a URL would always get 400). An
// application's computed URL fields are thus null exactly when nothing can
// be served; check the content type and filename when storing them to
// tell the cases apart, or call Download or Inline for the error.
func (b Builder) ForKey(key, contentType, filename string) (string, bool) {
	h, err := cas.ParseKey(key)
	if err != nil {
		return "", false
	}
	var u string
	if filename != "" {
		u, err = b.Download(h, contentType, filename)
	} else {
		u, err = b.Inline(h, contentType)
	}
	if err != nil {
		return "", false
	}
	return u, true
}

// URL returns the URL for r: the prefix, the hash, and r's parameters in
// the fixed order, query-escaped, plus sig when b has a Signer. It checks r
// with the rules Parse applies (the same code), so a URL it returns always
// parses back to r (with Expires set from b.TTL when r has none); a Request
// that Parse could not return is an error wrapping ErrInvalidRequest, and no
// URL. An expiring Request without a Signer with a key is such a Request:
// no one could check its expiry.
func (b Builder) URL(r Request) (string, error) {
	if r.Expires.IsZero() && b.TTL > 0 {
		// Round up, so that a URL never lives shorter than asked.
		r.Expires = time.Unix(time.Now().Add(b.TTL+time.Second-1).Unix(), 0)
	}
	if err := r.check(); err != nil {
		return "", err
	}
	if !r.Expires.IsZero() && b.Signer.Sign(r) == "" {
		return "", fmt.Errorf("%w: expires: an expiring URL must be signed (a Builder with a Signer)", ErrInvalidRequest)
	}
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
		q += "&" + ParamSig + "=" + sig
	}
	s.WriteByte('?')
	s.WriteString(q)
	return s.String(), nil
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
	if !r.Expires.IsZero() {
		add(ParamExpires, strconv.FormatInt(r.Expires.Unix(), 10))
	}
	return s.String()
}

// Parse parses the hash (the last path segment of a URL built by a
// Builder, see LastSegment) and the raw query of a request. Every error
// that is not about the signature wraps ErrInvalidRequest and names the
// offending part.
//
// With a nil s, Parse only parses: a sig parameter is accepted but not
// checked. With a Signer, the request is returned only when its sig
// parameter is valid under one of s's keys; a missing or wrong sig is an
// error wrapping ErrSignature (and not ErrInvalidRequest). A malformed
// request is ErrInvalidRequest whether or not s is nil; so is an expires
// parameter without a sig parameter.
//
// With a Signer, a validly signed URL whose expires time has come is an
// error wrapping both ErrSignature and ErrExpired. Without a Signer the
// expiry is not checked (nor is the signature that covers it).
//
// For a *url.URL u: Parse(LastSegment(u), u.RawQuery, s).
func Parse(hash, rawQuery string, s *Signer) (Request, error) {
	return ParseAt(hash, rawQuery, s, time.Now())
}

// ParseAt is Parse with the current time given: a URL is expired at now
// when its expires time is not after now.
func ParseAt(hash, rawQuery string, s *Signer, now time.Time) (Request, error) {
	r, sig, err := parse(hash, rawQuery)
	if err != nil {
		return Request{}, err
	}
	if s == nil {
		return r, nil
	}
	if sig == "" {
		return Request{}, fmt.Errorf("%w: no %s parameter", ErrSignature, ParamSig)
	}
	if !s.Valid(r, sig) {
		return Request{}, fmt.Errorf("%w: %s does not match", ErrSignature, ParamSig)
	}
	if !r.Expires.IsZero() && !now.Before(r.Expires) {
		return Request{}, fmt.Errorf("%w: %w at %s", ErrSignature, ErrExpired, r.Expires.UTC().Format(time.RFC3339))
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
// parameter ("" when absent). It checks the syntax of the query here; what
// the Request may hold is checked by Request.check, the code Builder.URL
// runs too.
func parse(hash, rawQuery string) (Request, string, error) {
	var r Request
	h, err := cas.Parse(hash)
	if err != nil {
		return r, "", fmt.Errorf("%w: path: the last segment is not a lowercase hex SHA-256", ErrInvalidRequest)
	}
	if len(rawQuery) > MaxQueryLength {
		return r, "", fmt.Errorf("%w: query longer than %d bytes", ErrInvalidRequest, MaxQueryLength)
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return r, "", fmt.Errorf("%w: malformed query", ErrInvalidRequest)
	}
	// Keys in sorted order, so that one URL always gets the same error.
	for _, k := range slices.Sorted(maps.Keys(q)) {
		vs := q[k]
		switch k {
		case ParamContentType, ParamDisposition, ParamFilename, ParamThumbnail, ParamExpires, ParamSig:
		default:
			return r, "", fmt.Errorf("%w: unknown parameter %.40q", ErrInvalidRequest, k)
		}
		if len(vs) != 1 {
			return r, "", fmt.Errorf("%w: %s: repeated", ErrInvalidRequest, k)
		}
		if vs[0] == "" {
			// An empty value would read as an absent one in a Request.
			return r, "", fmt.Errorf("%w: %s: empty", ErrInvalidRequest, k)
		}
	}
	get := func(k string) string {
		if vs := q[k]; len(vs) == 1 {
			return vs[0]
		}
		return ""
	}
	r = Request{Hash: h, ContentType: get(ParamContentType), Disposition: get(ParamDisposition), Filename: get(ParamFilename)}
	if thumb := get(ParamThumbnail); thumb != "" {
		n, err := parseSize(thumb)
		if err != nil {
			return Request{}, "", err
		}
		r.Thumbnail = n
	}
	if exp := get(ParamExpires); exp != "" {
		if get(ParamSig) == "" {
			return Request{}, "", fmt.Errorf("%w: expires: an expiring URL must be signed", ErrInvalidRequest)
		}
		n, err := parseDigits(exp, 10)
		if err != nil {
			return Request{}, "", fmt.Errorf("%w: expires: %w", ErrInvalidRequest, err)
		}
		r.Expires = time.Unix(n, 0).UTC()
	}
	if err := r.check(); err != nil {
		return Request{}, "", err
	}
	return r, get(ParamSig), nil
}

// check applies the rules on what a Request may hold: the one place both
// Parse and Builder.URL use, so that every URL a Builder returns parses
// back to its Request.
func (r Request) check() error {
	switch {
	case r.ContentType != "" && r.Thumbnail != 0:
		return fmt.Errorf("%w: content_type and thumbnail are exclusive", ErrInvalidRequest)
	case r.ContentType == "" && r.Thumbnail == 0:
		return fmt.Errorf("%w: content_type or thumbnail is required", ErrInvalidRequest)
	case r.Thumbnail != 0:
		if r.Disposition != "" || r.Filename != "" {
			return fmt.Errorf("%w: thumbnail takes no disposition or filename", ErrInvalidRequest)
		}
		if r.Thumbnail < 1 || r.Thumbnail > MaxThumbnailSize {
			return fmt.Errorf("%w: thumbnail: want 1 to %d", ErrInvalidRequest, MaxThumbnailSize)
		}
		return checkExpires(r.Expires)
	}
	if err := checkExpires(r.Expires); err != nil {
		return err
	}
	if err := CheckContentType(r.ContentType); err != nil {
		return err
	}
	if r.Disposition != "" && r.Disposition != Inline && r.Disposition != Attachment {
		return fmt.Errorf("%w: disposition: want %q or %q", ErrInvalidRequest, Inline, Attachment)
	}
	if r.Filename != "" {
		return CheckFilename(r.Filename)
	}
	return nil
}

// checkExpires applies the rule on Request.Expires: zero, or a whole
// second from 1 to MaxExpires in Unix time.
func checkExpires(t time.Time) error {
	if t.IsZero() {
		return nil
	}
	if t.Nanosecond() != 0 {
		return fmt.Errorf("%w: expires: not a whole second", ErrInvalidRequest)
	}
	if u := t.Unix(); u < 1 || u > MaxExpires {
		return fmt.Errorf("%w: expires: want 1 to %d in Unix seconds", ErrInvalidRequest, int64(MaxExpires))
	}
	return nil
}

// parseDigits parses base-10 digits without sign or leading zero, at most
// max of them.
func parseDigits(s string, max int) (int64, error) {
	if len(s) > max {
		return 0, errors.New("too large")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("not a base-10 integer")
		}
	}
	if s[0] == '0' {
		return 0, errors.New("must be at least 1, without leading zeros")
	}
	return strconv.ParseInt(s, 10, 64)
}

// parseSize parses the syntax of a thumbnail size: base-10 digits, no
// sign, no leading zero, at most 9 digits (so at most MaxThumbnailSize).
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

// CheckContentType reports whether ct can be the content type of a URL:
// nil if Parse accepts it in the content_type parameter (and a Builder
// builds it), else an error wrapping ErrInvalidRequest that says why. The
// rules: at most MaxContentTypeLength bytes of printable ASCII, parsed by
// mime.ParseMediaType, with a "type/subtype" media type. Parse runs this
// same function. The empty string is rejected (Builder.Inline and
// Builder.Download turn it into application/octet-stream first).
func CheckContentType(ct string) error {
	if ct == "" {
		return fmt.Errorf("%w: content_type: empty", ErrInvalidRequest)
	}
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

// CheckFilename reports whether name can be the filename of a URL: nil if
// Parse accepts it in the filename parameter (and a Builder builds it),
// else an error wrapping ErrInvalidRequest that says why. The rules: 1 to
// MaxFilenameLength bytes of valid UTF-8 without control characters
// (unicode.IsControl) or bidirectional formatting characters, which make
// "invoice\u202Efdp.exe" display as "invoiceexe.pdf". Any other character,
// including "/", "\\", quotes and "..", is allowed: the name is only ever
// sent in a Content-Disposition header, encoded. Parse runs this same
// function.
func CheckFilename(name string) error {
	if name == "" {
		return fmt.Errorf("%w: filename: empty", ErrInvalidRequest)
	}
	if len(name) > MaxFilenameLength {
		return fmt.Errorf("%w: filename: longer than %d bytes", ErrInvalidRequest, MaxFilenameLength)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: filename: not valid UTF-8", ErrInvalidRequest)
	}
	for _, c := range name {
		if unicode.IsControl(c) || isBidiControl(c) {
			return fmt.Errorf("%w: filename: control or bidirectional formatting character", ErrInvalidRequest)
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
