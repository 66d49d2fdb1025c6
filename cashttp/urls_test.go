package cashttp_test

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/casurl"
)

// testURLs builds request targets for the tests: a casurl.Builder whose
// methods return a string. For a request the Builder refuses (it returns
// an error for anything casurl.Parse would reject), it writes the URL
// unchecked and unsigned, so that the tests can still send the requests
// the handler must answer with 400.
type testURLs struct{ b casurl.Builder }

func (u testURLs) Inline(h cas.Hash, contentType string) string {
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	return u.URL(casurl.Request{Hash: h, ContentType: contentType})
}

func (u testURLs) Download(h cas.Hash, contentType, filename string) string {
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	return u.URL(casurl.Request{Hash: h, ContentType: contentType, Disposition: casurl.Attachment, Filename: filename})
}

func (u testURLs) Thumbnail(h cas.Hash, size int) string {
	return u.URL(casurl.Request{Hash: h, Thumbnail: size})
}

func (u testURLs) URL(r casurl.Request) string {
	if s, err := u.b.URL(r); err == nil {
		return s
	}
	prefix := u.b.Prefix
	if prefix == "" {
		prefix = casurl.DefaultPrefix
	}
	var q []string
	add := func(k, v string) { q = append(q, k+"="+url.QueryEscape(v)) }
	if r.ContentType != "" {
		add(casurl.ParamContentType, r.ContentType)
	}
	if r.Disposition != "" {
		add(casurl.ParamDisposition, r.Disposition)
	}
	if r.Filename != "" {
		add(casurl.ParamFilename, r.Filename)
	}
	if r.Thumbnail != 0 {
		add(casurl.ParamThumbnail, strconv.Itoa(r.Thumbnail))
	}
	return strings.TrimSuffix(prefix, "/") + "/" + r.Hash.String() + "?" + strings.Join(q, "&")
}
