package cashttp

import (
	"mime"
	"strings"
	"unicode/utf8"

	"github.com/casa-go/casa/casurl"
)

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
