package s3store_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/s3store"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/internal/testutil/s3test"
)

var benchSizes = []struct {
	name string
	size int
}{
	{"4KiB", 4 << 10},
	{"1MiB", 1 << 20},
	{"64MiB", 64 << 20},
}

// BenchmarkPut measures cas.Store.Put over s3store against the in-process
// S3 test server (gofakes3 behind the real SDK client). Each iteration
// stores new bytes (the first 8 bytes count up), so nothing deduplicates.
// The limit to compare with is BenchmarkPutObjectRaw, measured in the same
// run: one plain PutObject of the same bytes from memory, without hashing,
// spooling, the existence check or checksums. "64MiB-multipart" lowers the
// multipart threshold to 32 MiB so that the blob goes up in 4 concurrent
// 16 MiB parts.
func BenchmarkPut(b *testing.B) {
	cases := append(benchSizes[:len(benchSizes):len(benchSizes)], struct {
		name string
		size int
	}{"64MiB-multipart", 64 << 20})
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			s := s3test.New(b)
			var opts []s3store.Option
			if bc.name == "64MiB-multipart" {
				opts = append(opts, s3store.WithMultipartThreshold(32<<20))
			}
			backend := s3store.New(s.Client, s.Bucket, opts...)
			store := cas.New(backend, cas.WithTempDir(b.TempDir()))
			p := testutil.Bytes(1, bc.size)
			b.SetBytes(int64(bc.size))
			b.ReportAllocs()
			i := uint64(0)
			for b.Loop() {
				i++
				binary.LittleEndian.PutUint64(p, i)
				res, err := store.Put(b.Context(), bytes.NewReader(p))
				if err != nil {
					b.Fatal(err)
				}
				if res.Deduplicated {
					b.Fatal("deduplicated")
				}
				b.StopTimer()
				// The test server keeps objects in memory: drop them.
				if err := store.Delete(b.Context(), res.Hash); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

// BenchmarkPutObjectRaw is the limit for BenchmarkPut: a bare PutObject of
// the same bytes through the same client and server.
func BenchmarkPutObjectRaw(b *testing.B) {
	for _, bc := range benchSizes {
		b.Run(bc.name, func(b *testing.B) {
			s := s3test.New(b)
			p := testutil.Bytes(1, bc.size)
			b.SetBytes(int64(bc.size))
			b.ReportAllocs()
			for b.Loop() {
				_, err := s.Client.PutObject(b.Context(), &s3.PutObjectInput{
					Bucket: aws.String(s.Bucket), Key: aws.String("raw"),
					Body: bytes.NewReader(p), ContentLength: aws.Int64(int64(len(p))),
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkOpenReadTail measures Open + Seek near the end + a 1 KiB Read of
// a 64 MiB object: it must cost two small requests, not 64 MiB.
func BenchmarkOpenReadTail(b *testing.B) {
	s := s3test.New(b)
	backend := s3store.New(s.Client, s.Bucket)
	s.Seed(b, "big", testutil.Bytes(2, 64<<20))
	buf := make([]byte, 1<<10)
	for b.Loop() {
		obj, err := backend.Open(b.Context(), "big")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := obj.Seek(-int64(len(buf)), io.SeekEnd); err != nil {
			b.Fatal(err)
		}
		if _, err := obj.Read(buf); err != nil {
			b.Fatal(err)
		}
		_ = obj.Close()
	}
	b.ReportMetric(float64(s.BytesOut("GetObject"))/float64(b.N), "B-fetched/op")
	if got := s.BytesOut("GetObject"); got > int64(b.N)*int64(len(buf)) {
		b.Fatalf("fetched %d bytes for %d reads of %d", got, b.N, len(buf))
	}
}
