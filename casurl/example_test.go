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

	fmt.Println(urls.Thumbnail(h, 150))
	// Output:
	// true /api/cas/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824?content_type=application%2Fpdf&disposition=attachment&filename=data+sheet.pdf
	// false ""
	// /api/cas/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824?thumbnail=150
}

func ExampleParse() {
	u, _ := url.Parse("/api/cas/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824?content_type=image%2Fpng")
	r, err := casurl.Parse(u)
	fmt.Println(r.ContentType, r.Hash.Key(), err)

	u, _ = url.Parse("/api/cas/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824?thumbnail=-5")
	_, err = casurl.Parse(u)
	fmt.Println(errors.Is(err, casurl.ErrInvalidRequest), err)
	// Output:
	// image/png cas/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824 <nil>
	// true casurl: invalid request: thumbnail: not a base-10 integer
}

// With a Signer in the Builder (and cashttp.WithSigner on the server), a
// URL that was changed after signing is rejected.
func ExampleSigner() {
	signer := casurl.NewSigner([]byte("current key"), []byte("previous key"))
	urls := casurl.Builder{Signer: signer}
	h := cas.SumBytes([]byte("<p>hello</p>"))

	u, _ := url.Parse(urls.Inline(h, "text/plain"))
	_, err := signer.Verify(u)
	fmt.Println("as built:", err)

	q := u.Query()
	q.Set("content_type", "text/html")
	u.RawQuery = q.Encode()
	_, err = signer.Verify(u)
	fmt.Println("tampered:", errors.Is(err, casurl.ErrSignature))
	// Output:
	// as built: <nil>
	// tampered: true
}
