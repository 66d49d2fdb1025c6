package fsstore_test

import (
	"bytes"
	"crypto/sha256"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/fsstore"
	"github.com/casa-go/casa/internal/testutil"
)

const benchSize = 64 << 20

// BenchmarkSHA256_64MiB is the limit BenchmarkStorePut64MiB is measured
// against: hashing the same bytes, in memory.
func BenchmarkSHA256_64MiB(b *testing.B) {
	p := testutil.Bytes(1, benchSize)
	b.SetBytes(benchSize)
	for b.Loop() {
		sha256.Sum256(p)
	}
}

// BenchmarkStorePut64MiB is cas.Store.Put of a 64 MiB blob into fsstore,
// fsync included. Each iteration stores a new blob (the first 8 bytes
// change), so nothing is deduplicated. Outside the timer each iteration
// also hashes the same bytes with crypto/sha256, and writes them in 256 KiB
// writes (Put's chunks) to a fresh file in the store's temporary directory
// and fdatasyncs it: the two halves of a Put, each alone. It reports
// "of-limit", Put's throughput as a fraction of the slower of the two (a
// Put that overlaps them perfectly reaches 1), and "of-sha256", as a
// fraction of hashing alone. The measurements are interleaved so that all
// see the same machine load, and each ratio is of the fastest iteration of
// each, which is robust against load spikes from other processes
// ("of-sha256-mean" uses the totals).
func BenchmarkStorePut64MiB(b *testing.B) {
	be, err := fsstore.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	s := cas.New(be)
	p := testutil.Bytes(1, benchSize)
	b.SetBytes(benchSize)
	var (
		i                         uint64
		hashTime, putTime         time.Duration
		hashMin, putMin, writeMin = time.Duration(math.MaxInt64), time.Duration(math.MaxInt64), time.Duration(math.MaxInt64)
	)
	for b.Loop() {
		i++
		for j := range 8 {
			p[j] = byte(i >> (8 * j))
		}
		b.StopTimer()
		start := time.Now()
		sha256.Sum256(p)
		el := time.Since(start)
		hashTime += el
		hashMin = min(hashMin, el)
		writeMin = min(writeMin, writeAndSync(b, filepath.Join(be.Dir(), ".tmp"), p))
		b.StartTimer()
		start = time.Now()
		res, err := s.Put(b.Context(), bytes.NewReader(p))
		el = time.Since(start)
		putTime += el
		putMin = min(putMin, el)
		if err != nil {
			b.Fatal(err)
		}
		if res.Deduplicated {
			b.Fatal("deduplicated")
		}
		b.StopTimer()
		if err := s.Delete(b.Context(), res.Hash); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(max(hashMin, writeMin))/float64(putMin), "of-limit")
	b.ReportMetric(float64(hashMin)/float64(putMin), "of-sha256")
	b.ReportMetric(float64(hashTime)/float64(putTime), "of-sha256-mean")
	b.ReportMetric(float64(writeMin)/1e6, "write-ms")
	b.ReportMetric(float64(hashMin)/1e6, "sha256-ms")
	b.ReportMetric(float64(putMin)/1e6, "put-ms")
}

// writeAndSync writes p to a fresh file in dir in 256 KiB writes,
// fdatasyncs it and returns how long that took; it removes the file.
func writeAndSync(b *testing.B, dir string, p []byte) time.Duration {
	start := time.Now()
	f, err := os.CreateTemp(dir, "bench-*")
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	for q := p; len(q) > 0; q = q[min(len(q), 256<<10):] {
		if _, err := f.Write(q[:min(len(q), 256<<10)]); err != nil {
			b.Fatal(err)
		}
	}
	if err := fsstore.Datasync(f); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// BenchmarkStat is fsstore's Stat of a stored blob, the dedup check of
// every Put and cashttp's HEAD: "plain" is a blob stored as it is (one
// Lstat), "zstd" one stored compressed (its seek table is read).
func BenchmarkStat(b *testing.B) {
	be, err := fsstore.New(b.TempDir(), fsstore.WithoutSync())
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	plain, err := cas.New(be).Put(ctx, bytes.NewReader(testutil.Bytes(2, 64<<10)))
	if err != nil {
		b.Fatal(err)
	}
	zst, err := cas.New(be, cas.WithCompression(cas.Compression{})).Put(ctx, bytes.NewReader(testutil.Text(3, 64<<10)))
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		h    cas.Hash
		enc  string
	}{{"plain", plain.Hash, ""}, {"zstd", zst.Hash, cas.EncodingZstd}} {
		b.Run(c.name, func(b *testing.B) {
			key := c.h.Key()
			for b.Loop() {
				info, err := be.Stat(ctx, key)
				if err != nil || info.Encoding != c.enc {
					b.Fatalf("Stat %s: %+v, %v", key, info, err)
				}
			}
		})
	}
}
