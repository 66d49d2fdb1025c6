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
)

// The upload protocol on a prefix of its own: a client asks which of its
// files are missing and uploads only those. (Put the routes behind your
// application's authorization.)
func ExampleNewUploadHandler() {
	ctx := context.Background()
	store := cas.New(memstore.New())
	_, _ = store.Put(ctx, strings.NewReader("already here"))

	up := cashttp.NewUploadHandler(store)
	mux := http.NewServeMux()
	mux.Handle("PUT /api/uploads/{hash}", up)
	mux.Handle("HEAD /api/uploads/{hash}", up)
	mux.Handle("POST /api/uploads/missing", up)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	files := []string{"already here", "new file"}
	var hashes []cas.Hash
	for _, f := range files {
		hashes = append(hashes, cas.SumBytes([]byte(f)))
	}
	c := &cashttp.UploadClient{BaseURL: srv.URL + "/api/uploads"}
	missing, err := c.Missing(ctx, hashes)
	fmt.Println(len(missing), err)
	stored, err := c.Put(ctx, missing[0], strings.NewReader("new file"), 8)
	fmt.Println(stored, err)
	_, err = c.Put(ctx, cas.SumBytes([]byte("x")), strings.NewReader("not x"), 5)
	fmt.Println(err != nil) // 400: the bytes do not hash to the URL's hash
	// Output:
	// 1 <nil>
	// true <nil>
	// true
}
