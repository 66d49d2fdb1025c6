package fsstore_test

import (
	"bytes"
	"crypto/sha256"
	"math"
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
// change), so nothing is deduplicated. Each iteration also hashes the
// same bytes with crypto/sha256, outside the timer, and the benchmark
// reports the ratio of Put's throughput to sha256's as "of-sha256": the
// two are interleaved so that both see the same machine load, and the
// ratio is of the fastest iteration of each, which is robust against
// load spikes from other processes ("of-sha256-mean" uses the totals).
func BenchmarkStorePut64MiB(b *testing.B) {
	be, err := fsstore.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	s := cas.New(be)
	p := testutil.Bytes(1, benchSize)
	b.SetBytes(benchSize)
	var (
		i                 uint64
		hashTime, putTime time.Duration
		hashMin, putMin   = time.Duration(math.MaxInt64), time.Duration(math.MaxInt64)
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
	b.ReportMetric(float64(hashMin)/float64(putMin), "of-sha256")
	b.ReportMetric(float64(hashTime)/float64(putTime), "of-sha256-mean")
}
