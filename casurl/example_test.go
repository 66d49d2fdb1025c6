package casurl_test

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/casurl"
)

// An application computes the URL fields of its API from the stored key:
// null (ok == false) exactly when there is nothing to serve.
func ExampleBuilder_ForKey() {
	urls := casurl.Builder{} // Prefix defaults to "/api/cas"
	h := cas.SumBytes([]byte("hello"))

	download, ok := urls.ForKey(h.Key(), "application/pdf", "data sheet.pdf")
	fmt.Println(ok, download)

	legacy, ok := urls.ForKey("2f1c7e0a-8d6b-4c1e-9b0a-3e5f7d9c1a2b", "image/png", "")
	fmt.Printf("%v %q\n", ok, legacy)

	// No URL would serve a stored content type that is not one.
	bad, ok := urls.ForKey(h.Key(), "not a type", "")
	fmt.Printf("%v %q\n", ok, bad)
	// Output:
	// true /api/cas/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824?content_type=application%2Fpdf&disposition=attachment&filename=data+sheet.pdf
	// false ""
	// false ""
}

// The Builder returns an error, not a URL that would always get 400.
func ExampleBuilder_Thumbnail() {
	urls := casurl.Builder{}
	h := cas.SumBytes([]byte("hello"))

	thumb, err := urls.Thumbnail(h, 150)
	fmt.Println(thumb, err)

	_, err = urls.Thumbnail(h, 0)
	fmt.Println(errors.Is(err, casurl.ErrInvalidRequest), err)
	// Output:
	// /api/cas/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824?thumbnail=150 <nil>
	// true casurl: invalid request: content_type or thumbnail is required
}

// Check what a user uploads before storing it, with the rules every URL
// is parsed by.
func ExampleCheckContentType() {
	fmt.Println(casurl.CheckContentType("text/plain; charset=utf-8"))
	fmt.Println(casurl.CheckContentType("text/plain\r\nSet-Cookie: a=b"))
	fmt.Println(casurl.CheckFilename("invoice\u202efdp.exe"))
	// Output:
	// <nil>
	// casurl: invalid request: content_type: control or non-ASCII character
	// casurl: invalid request: filename: control or bidirectional formatting character
}

// A handler parses the hash (from its route, or the last path segment) and
// the raw query; with a nil Signer it only parses.
func ExampleParse() {
	u, _ := url.Parse("/api/cas/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824?content_type=image%2Fpng")
	r, err := casurl.Parse(casurl.LastSegment(u), u.RawQuery, nil)
	fmt.Println(r.ContentType, r.Hash.Key(), err)

	_, err = casurl.Parse("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824", "thumbnail=-5", nil)
	fmt.Println(errors.Is(err, casurl.ErrInvalidRequest), err)
	// Output:
	// image/png cas/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824 <nil>
	// true casurl: invalid request: thumbnail: not a base-10 integer
}

// With a Signer in the Builder and in Parse (cashttp.WithSigner on the
// server), a URL that was changed after signing is rejected.
func ExampleSigner() {
	signer := casurl.NewSigner([]byte("current key"), []byte("previous key"))
	urls := casurl.Builder{Signer: signer}
	h := cas.SumBytes([]byte("<p>hello</p>"))

	raw, err := urls.Inline(h, "text/plain")
	if err != nil {
		fmt.Println(err) // only for a content type that no URL can carry
		return
	}
	u, _ := url.Parse(raw)
	_, err = casurl.Parse(casurl.LastSegment(u), u.RawQuery, signer)
	fmt.Println("as built:", err)

	q := u.Query()
	q.Set("content_type", "text/html")
	u.RawQuery = q.Encode()
	_, err = casurl.Parse(casurl.LastSegment(u), u.RawQuery, signer)
	fmt.Println("tampered:", errors.Is(err, casurl.ErrSignature))
	// Output:
	// as built: <nil>
	// tampered: true
}
