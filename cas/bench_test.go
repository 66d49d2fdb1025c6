package cas_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"testing"
	"time"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/fsstore"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/internal/testutil/backendtest"
)

// benchSizes are the blob sizes of BenchmarkSHA256 and BenchmarkPut.
var benchSizes = []struct {
	name string
	n    int
}{
	{"4KiB", 4 << 10},
	{"1MiB", 1 << 20},
	{"64MiB", 64 << 20},
}

// BenchmarkSHA256 is the limit for BenchmarkPut: crypto/sha256 over the
// same bytes, with nothing else.
func BenchmarkSHA256(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(size.name, func(b *testing.B) {
			data := testutil.Bytes(1, size.n)
			b.SetBytes(int64(size.n))
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				binary.LittleEndian.PutUint64(data, uint64(i))
				sum := sha256.Sum256(data)
				if sum == ([32]byte{}) {
					b.Fatal("zero sum")
				}
			}
		})
	}
}

// BenchmarkPut measures Store.Put of new (never deduplicated) blobs into
// each Backend: every iteration changes the first 8 bytes of the blob, and
// deletes it again outside the timer so that memory and disk stay bounded.
//
// Outside the timer each iteration also hashes the same bytes with
// crypto/sha256 alone; the "of-sha256" metric is Put's throughput as a
// fraction of that, measured interleaved with the Puts so that the load of
// a shared machine affects both alike (1 = as fast as hashing alone).
func BenchmarkPut(b *testing.B) {
	// The short names predate backendtest's; they keep earlier results
	// comparable (benchstat).
	nosync := backendtest.FS(fsstore.WithoutSync())
	backends := []backendtest.Case{backendtest.Mem(), backendtest.FS(), nosync, backendtest.S3()}
	for i, name := range []string{"mem", "fs", "fs-nosync", "s3"} {
		backends[i].Name = name
	}
	for _, bk := range backends {
		b.Run(bk.Name, func(b *testing.B) {
			for _, size := range benchSizes {
				b.Run(size.name, func(b *testing.B) {
					ctx := context.Background()
					s := cas.New(bk.New(b), cas.WithTempDir(b.TempDir()))
					data := testutil.Bytes(2, size.n)
					b.SetBytes(int64(size.n))
					var hashing time.Duration
					b.ResetTimer()
					for i := 0; b.Loop(); i++ {
						binary.LittleEndian.PutUint64(data, uint64(i))
						res, err := s.Put(ctx, bytes.NewReader(data))
						if err != nil {
							b.Fatal(err)
						}
						b.StopTimer()
						if res.Deduplicated || res.Size != int64(size.n) {
							b.Fatalf("Put = %+v; want a new %d-byte blob", res, size.n)
						}
						if err := s.Delete(ctx, res.Hash); err != nil {
							b.Fatal(err)
						}
						start := time.Now()
						if cas.Hash(sha256.Sum256(data)) != res.Hash {
							b.Fatal("Put stored the blob under another hash")
						}
						hashing += time.Since(start)
						b.StartTimer()
					}
					if e := b.Elapsed(); e > 0 {
						b.ReportMetric(float64(hashing)/float64(e), "of-sha256")
					}
				})
			}
		})
	}
}

// BenchmarkPutCompressed is a Put of text-like bytes with compression on
// fsstore (streamed into its Staged) and memstore (spooled); section 9 of
// internal/bench sets it beside the Put without compression and its CPU
// bound.
func BenchmarkPutCompressed(b *testing.B) {
	for _, bk := range []backendtest.Case{backendtest.FS(), backendtest.Mem()} {
		b.Run(bk.Name, func(b *testing.B) {
			for _, size := range benchSizes[1:] {
				b.Run(size.name, func(b *testing.B) {
					ctx := context.Background()
					s := cas.New(bk.New(b), cas.WithCompression(cas.Compression{}), cas.WithTempDir(b.TempDir()))
					data := testutil.Text(2, size.n)
					b.SetBytes(int64(size.n))
					for i := 0; b.Loop(); i++ {
						binary.LittleEndian.PutUint64(data, uint64(i))
						res, err := s.Put(ctx, bytes.NewReader(data))
						if err != nil {
							b.Fatal(err)
						}
						b.StopTimer()
						if res.Deduplicated {
							b.Fatalf("Put = %+v; want a new blob", res)
						}
						if err := s.Delete(ctx, res.Hash); err != nil {
							b.Fatal(err)
						}
						b.StartTimer()
					}
				})
			}
		})
	}
}
