package migrate_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/s3store"
	"github.com/casa-go/casa/internal/testutil/s3test"
	"github.com/casa-go/casa/migrate"
)

// benchObjects is the number of legacy objects BenchmarkRun migrates:
// 2,000, or CASA_MIGRATE_BENCH_N for quick runs.
func benchObjects(b *testing.B) int {
	if s := os.Getenv("CASA_MIGRATE_BENCH_N"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			b.Fatalf("CASA_MIGRATE_BENCH_N=%q: want a positive integer", s)
		}
		return n
	}
	return 2000
}

// BenchmarkRun migrates legacy objects on the S3 test server, with 10 ms of
// latency injected into every request, at concurrency 1, 4 and 16, and
// reports records/s. The sub-benchmarks after c1 also report their
// speed-up over c1 measured in the same run (target: c16 >= 8x c1).
//
//	go test -run '^$' -bench BenchmarkRun -benchtime 1x ./migrate
func BenchmarkRun(b *testing.B) {
	n := benchObjects(b)
	const latency = 10 * time.Millisecond
	var c1 float64 // records/s at concurrency 1, when it ran
	for _, c := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("c%d", c), func(b *testing.B) {
			var records int
			var requests int64
			var elapsed time.Duration
			for b.Loop() {
				b.StopTimer()
				srv := s3test.New(b, s3test.WithLatency(latency))
				backend := s3store.New(srv.Client, srv.Bucket)
				m := seedS3(b, backend, n)
				store := cas.New(backend)
				srv.ResetStats()
				b.StartTimer()

				start := time.Now()
				rep, err := migrate.Run(context.Background(), store, m, migrate.Options{Concurrency: c})
				elapsed += time.Since(start)
				if err != nil {
					b.Fatal(err)
				}
				if err := rep.Err(); err != nil {
					b.Fatal(err)
				}
				if rep.Migrated != n {
					b.Fatalf("migrated %d of %d", rep.Migrated, n)
				}
				records += rep.Migrated
				for _, op := range []string{"HeadObject", "GetObject", "PutObject"} {
					requests += srv.Requests(op)
				}
			}
			b.ReportMetric(float64(requests)/float64(records), "req/record")
			rate := float64(records) / elapsed.Seconds()
			b.ReportMetric(rate, "records/s")
			b.ReportMetric(0, "ns/op") // the per-run time is meaningless across object counts
			if c == 1 {
				c1 = rate
			} else if c1 > 0 {
				b.ReportMetric(rate/c1, "x-c1")
			}
		})
	}
}

// seedS3 stores n distinct 4 KiB legacy objects and returns their records.
func seedS3(b *testing.B, backend cas.Backend, n int) *memMigrator {
	b.Helper()
	rows := make(map[string]string, n)
	for i := range n {
		rows[fmt.Sprintf("r%05d", i)] = legacyKey(i)
	}
	var g errgroup.Group
	g.SetLimit(64)
	for i := range n {
		g.Go(func() error {
			data := bytes.Repeat([]byte(fmt.Sprintf("object %06d|", i)), 4096/14+1)[:4096]
			return backend.Put(context.Background(), legacyKey(i), bytes.NewReader(data), int64(len(data)), cas.PutOptions{})
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	return newMemMigrator(rows)
}
