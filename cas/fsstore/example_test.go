package fsstore_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"strings"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/fsstore"
)

// Store blobs on the local disk: Put them by content, read them back by hash.
func Example() {
	dir, err := os.MkdirTemp("", "casa-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()

	backend, err := fsstore.New(dir)
	if err != nil {
		log.Fatal(err)
	}
	store := cas.New(backend)

	res, err := store.Put(ctx, strings.NewReader("hello, world\n"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Hash, res.Size, res.Deduplicated)

	again, err := store.Put(ctx, strings.NewReader("hello, world\n"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("deduplicated:", again.Deduplicated)

	obj, err := store.Open(ctx, res.Hash)
	if err != nil {
		log.Fatal(err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%q from %s\n", b, obj.Info().Key)
	// Output:
	// 853ff93762a06ddbf722c4ebe9ddd66d8f63ddaea97f521c3ecc20da7c976020 13 false
	// deduplicated: true
	// "hello, world\n" from cas/853ff93762a06ddbf722c4ebe9ddd66d8f63ddaea97f521c3ecc20da7c976020
}

// Keys other than CAS keys, such as legacy UUID keys or derived data, are
// stored at their own paths; keys that could escape the directory are
// rejected.
func ExampleBackend_Put() {
	dir, err := os.MkdirTemp("", "casa-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	backend, err := fsstore.New(dir)
	if err != nil {
		log.Fatal(err)
	}

	err = backend.Put(ctx, "legacy/0b7e6c2a-5d1f-4c55-9a7e-1f2d3c4b5a69", strings.NewReader("old"), 3, cas.PutOptions{IfAbsent: true})
	fmt.Println(err)
	err = backend.Put(ctx, "legacy/0b7e6c2a-5d1f-4c55-9a7e-1f2d3c4b5a69", strings.NewReader("new"), 3, cas.PutOptions{IfAbsent: true})
	fmt.Println(err)
	err = backend.Put(ctx, "../outside", strings.NewReader("x"), 1, cas.PutOptions{})
	fmt.Println(err)
	for info, err := range backend.List(ctx, "legacy/") {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(info.Key, info.Size)
	}
	// Output:
	// <nil>
	// fsstore: "legacy/0b7e6c2a-5d1f-4c55-9a7e-1f2d3c4b5a69": cas: already exists
	// cas: invalid key: "../outside" has a ".." segment
	// legacy/0b7e6c2a-5d1f-4c55-9a7e-1f2d3c4b5a69 3
}
