package cas_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/fsstore"
	"github.com/casa-go/casa/cas/memstore"
)

// Store a file by the hash of its bytes, then open it by that hash. A second
// upload of the same bytes is deduplicated.
func Example() {
	ctx := context.Background()
	store := cas.New(memstore.New(), cas.WithMaxSize(10<<20))

	res, err := store.Put(ctx, strings.NewReader("hello"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored:", res.Hash, res.Size, res.Deduplicated)

	again, err := store.Put(ctx, strings.NewReader("hello"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("again:", again.Deduplicated)

	obj, err := store.Open(ctx, res.Hash)
	if err != nil {
		log.Fatal(err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s under key %s\n", b, obj.Info().Key)
	// Output:
	// stored: 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824 5 false
	// again: true
	// hello under key cas/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824
}

// Store an uploaded file in a local directory and serve it back by hash.
func ExampleStore_Put() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "casa-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	backend, err := fsstore.New(filepath.Join(dir, "blobs"))
	if err != nil {
		log.Fatal(err)
	}
	store := cas.New(backend)

	// An upload, as it might arrive in a multipart form.
	upload := filepath.Join(dir, "report.txt")
	if err := os.WriteFile(upload, []byte("quarterly numbers\n"), 0o644); err != nil {
		log.Fatal(err)
	}
	f, err := os.Open(upload)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	res, err := store.Put(ctx, f)
	if err != nil {
		log.Fatal(err)
	}
	// Keep res.Hash (or res.Hash.Key()) in the database row.
	fmt.Println(res.Hash, res.Size)

	obj, err := store.Open(ctx, res.Hash)
	if err != nil {
		log.Fatal(err)
	}
	defer obj.Close()
	if _, err := io.Copy(os.Stdout, obj); err != nil {
		log.Fatal(err)
	}
	// Output:
	// 4c694ad7a5ea27610e73d5dca732d67b51100682543877a8a882584667371a9d 18
	// quarterly numbers
}

// PutVerified stores bytes only when they hash to what the client said.
func ExampleStore_PutVerified() {
	ctx := context.Background()
	store := cas.New(memstore.New())
	want := cas.SumBytes([]byte("hello"))

	_, err := store.PutVerified(ctx, want, strings.NewReader("hellO"))
	fmt.Println(errors.Is(err, cas.ErrDigestMismatch))

	res, err := store.PutVerified(ctx, want, strings.NewReader("hello"))
	fmt.Println(res.Hash == want, err)
	// Output:
	// true
	// true <nil>
}

// Verify re-reads a stored blob to detect bit rot.
func ExampleStore_Verify() {
	ctx := context.Background()
	backend := memstore.New()
	store := cas.New(backend)
	res, _ := store.Put(ctx, strings.NewReader("hello"))
	fmt.Println(store.Verify(ctx, res.Hash))

	// Something changes the bytes behind the store's back.
	_ = backend.Put(ctx, res.Hash.Key(), strings.NewReader("jello"), 5, cas.PutOptions{})
	fmt.Println(errors.Is(store.Verify(ctx, res.Hash), cas.ErrDigestMismatch))
	// Output:
	// <nil>
	// true
}

// Walk lists the stored blobs, skipping keys that are not CAS keys.
func ExampleStore_Walk() {
	ctx := context.Background()
	backend := memstore.New()
	store := cas.New(backend)
	_, _ = store.Put(ctx, strings.NewReader("hello"))
	_ = backend.Put(ctx, "uploads/6f1c3a1e.pdf", strings.NewReader("legacy"), 6, cas.PutOptions{})

	for info, err := range store.Walk(ctx) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(info.Key, info.Size)
	}
	// Output:
	// cas/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824 5
}

func ExampleParse() {
	h, err := cas.Parse("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
	fmt.Println(h == cas.SumBytes([]byte("hello")), err)

	_, err = cas.Parse("2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824")
	fmt.Println(errors.Is(err, cas.ErrInvalidHash))
	// Output:
	// true <nil>
	// true
}

func ExampleHash_Key() {
	h := cas.SumBytes([]byte("hello"))
	fmt.Println(h.Key())
	fmt.Println(cas.IsKey(h.Key()), cas.IsKey("uploads/6f1c3a1e.pdf"))
	// Output:
	// cas/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824
	// true false
}

func ExampleParseKey() {
	h, err := cas.ParseKey("cas/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
	fmt.Println(h, err)
	_, err = cas.ParseKey("6f1c3a1e-8b7d-4f0e-9a55-0c1d2e3f4a5b")
	fmt.Println(errors.Is(err, cas.ErrInvalidHash))
	// Output:
	// 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824 <nil>
	// true
}
