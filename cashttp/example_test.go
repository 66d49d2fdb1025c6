package cashttp_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/cashttp"
	"github.com/casa-go/casa/casurl"
)

// Mounting the handler takes three lines; casurl builds the URLs that an
// API hands out.
func Example() {
	store := cas.New(memstore.New())
	res, _ := store.Put(context.Background(), strings.NewReader("hello, world\n"))

	h := cashttp.NewHandler(store) // add cashttp.WithThumbnails(thumbnail.NewService(store)) for thumbnails
	mux := http.NewServeMux()
	mux.Handle("GET /api/cas/{hash}", h)

	url, err := casurl.Builder{}.Download(res.Hash, "text/plain; charset=utf-8", "greeting.txt")
	if err != nil {
		fmt.Println(err) // a content type or filename that no URL can carry
		return
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, url, nil))
	fmt.Println(rec.Code)
	for _, k := range []string{"Content-Type", "Content-Disposition", "ETag", "Cache-Control"} {
		fmt.Printf("%s: %s\n", k, rec.Header().Get(k))
	}
	fmt.Print(rec.Body.String())

	// A client that has it cached revalidates without touching storage.
	req := httptest.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("If-None-Match", rec.Header().Get("ETag"))
	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	fmt.Println(rec.Code)
	// Output:
	// 200
	// Content-Type: text/plain; charset=utf-8
	// Content-Disposition: attachment; filename="greeting.txt"; filename*=UTF-8''greeting.txt
	// ETag: "853ff93762a06ddbf722c4ebe9ddd66d8f63ddaea97f521c3ecc20da7c976020"
	// Cache-Control: public, max-age=31536000, immutable
	// hello, world
	// 304
}

// Behind http.StripPrefix the handler takes the hash from the last path
// segment. With a Signer, only URLs signed with its key are served.
func ExampleWithSigner() {
	store := cas.New(memstore.New())
	res, _ := store.Put(context.Background(), strings.NewReader("<script>alert(1)</script>"))
	signer := casurl.NewSigner([]byte("a secret of at least 32 bytes..."))

	mux := http.NewServeMux()
	mux.Handle("/files/", http.StripPrefix("/files", cashttp.NewHandler(store, cashttp.WithSigner(signer))))

	urls := casurl.Builder{Prefix: "/files", Signer: signer}
	signed, err := urls.Inline(res.Hash, "text/plain")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, url := range []string{
		signed,
		strings.Replace(signed, "text%2Fplain", "text%2Fhtml", 1),
	} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, url, nil))
		fmt.Println(rec.Code, rec.Header().Get("Content-Type"))
	}
	// Output:
	// 200 text/plain
	// 403 text/plain; charset=utf-8
}
