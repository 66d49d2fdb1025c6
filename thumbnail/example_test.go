package thumbnail_test

import (
	"bytes"
	"context"
	"fmt"
	"image/jpeg"
	"os"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/internal/testutil/imagetest"
	"github.com/casa-go/casa/thumbnail"
)

// Generate makes a thumbnail from any reader; a PDF is refused.
func ExampleGenerate() {
	photo := imagetest.JPEG(640, 480)
	out, err := thumbnail.Generate(bytes.NewReader(photo), 150)
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg, _ := jpeg.DecodeConfig(bytes.NewReader(out))
	fmt.Printf("%dx%d JPEG\n", cfg.Width, cfg.Height)

	_, err = thumbnail.Generate(bytes.NewReader(imagetest.PDF()), 150)
	fmt.Println(err)
	// Output:
	// 150x113 JPEG
	// thumbnail: unsupported image format: unrecognised header
}

// A Service serves thumbnails of stored blobs, caching them on disk and
// beside the blobs.
func ExampleService() {
	ctx := context.Background()
	store := cas.New(memstore.New())
	res, err := store.Put(ctx, bytes.NewReader(imagetest.JPEG(400, 300)))
	if err != nil {
		panic(err)
	}

	dir, err := os.MkdirTemp("", "thumbs")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	disk, err := thumbnail.NewDirCache(dir, 64<<20)
	if err != nil {
		panic(err)
	}
	svc := thumbnail.NewService(store,
		thumbnail.WithCache(disk), // checked first
		thumbnail.WithCache(thumbnail.NewBackendCache(store.Backend())), // shared by every server
	)

	out, err := svc.Get(ctx, res.Hash, 100)
	if err != nil {
		panic(err)
	}
	cfg, _ := jpeg.DecodeConfig(bytes.NewReader(out))
	fmt.Printf("%dx%d\n", cfg.Width, cfg.Height)
	_, err = store.Backend().Stat(ctx, svc.Key(res.Hash, 100))
	fmt.Println("cached in the backend:", err == nil)
	// Output:
	// 100x75
	// cached in the backend: true
}
