package s3store_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"golang.org/x/sync/errgroup"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/s3store"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/internal/testutil/s3test"
)

// seedBlobs stores n small blobs under blob keys directly through the
// Backend, every third one marked as compressed (the marker only: List
// does not read the bytes), 16 at a time. It returns the keys in order.
func seedBlobs(tb testing.TB, b cas.Backend, n int) []string {
	tb.Helper()
	keys := make([]string, n)
	g, ctx := errgroup.WithContext(tb.Context())
	g.SetLimit(16)
	for i := range n {
		p := []byte(fmt.Sprintf("blob %d", i))
		h := cas.SumBytes(p)
		keys[i] = h.Key()
		opts := cas.PutOptions{SHA256: h}
		if i%3 == 0 {
			opts = cas.PutOptions{Encoding: cas.EncodingZstd, DecodedSize: int64(1000 + i)}
		}
		g.Go(func() error { return b.Put(ctx, h.Key(), bytes.NewReader(p), int64(len(p)), opts) })
	}
	if err := g.Wait(); err != nil {
		tb.Fatal(err)
	}
	slices.Sort(keys)
	return keys
}

// BenchmarkList2000 lists 2,000 blobs (a third marked compressed) on the
// in-process gofakes3 server, bare and with 5 ms of latency per request
// (as a remote S3), and, with CASA_TEST_S3_ENDPOINT set, on the real
// server: List with its HeadObject calls one at a time (conc1), 8 at a time
// (the default, conc8) and 16 at a time (conc16), and ListKeys (no HEAD). It reports the
// HeadObject requests per listing (gofakes3 only: the real server's
// requests are not counted).
//
//	go test -run '^$' -bench BenchmarkList2000 -benchtime 3x ./cas/s3store/
func BenchmarkList2000(b *testing.B) {
	const n = 2000
	servers := []struct {
		name    string
		latency time.Duration
	}{{"gofakes3", 0}, {"gofakes3-5ms", 5 * time.Millisecond}, {"real", 0}}
	for _, srv := range servers {
		b.Run(srv.name, func(b *testing.B) {
			var (
				client *s3.Client
				bucket string
				prefix string
				heads  = func() int64 { return 0 }
				reset  = func() {}
			)
			if srv.name == "real" {
				r := testutil.NewRealS3(b)
				client, bucket, prefix = r.Client, r.Bucket, r.Prefix
			} else {
				s := s3test.New(b, s3test.WithLatency(srv.latency))
				client, bucket = s.Client, s.Bucket
				heads = func() int64 { return s.Requests("HeadObject") }
				reset = s.ResetStats
			}
			seed := s3store.New(client, bucket, s3store.WithKeyPrefix(prefix))
			keys := seedBlobs(b, seed, n)
			if srv.name == "real" {
				b.Cleanup(func() {
					for _, k := range keys {
						_ = seed.Delete(context.WithoutCancel(b.Context()), k)
					}
				})
			}
			for _, conc := range []int{1, s3store.DefaultListConcurrency, 16} {
				b.Run(fmt.Sprintf("List-conc%d", conc), func(b *testing.B) {
					be := s3store.New(client, bucket, s3store.WithKeyPrefix(prefix), s3store.WithListConcurrency(conc))
					reset()
					for b.Loop() {
						listAll(b, be, n)
					}
					b.ReportMetric(float64(heads())/float64(b.N), "HEADs/op")
				})
			}
			b.Run("ListKeys", func(b *testing.B) {
				reset()
				for b.Loop() {
					got := 0
					for _, err := range cas.ListKeys(b.Context(), seed, cas.KeyPrefix) {
						if err != nil {
							b.Fatal(err)
						}
						got++
					}
					if got != n {
						b.Fatalf("listed %d, want %d", got, n)
					}
				}
				b.ReportMetric(float64(heads())/float64(b.N), "HEADs/op")
			})
		})
	}
}

func listAll(tb testing.TB, b cas.Backend, want int) {
	tb.Helper()
	got := 0
	for _, err := range b.List(tb.Context(), cas.KeyPrefix) {
		if err != nil {
			tb.Fatal(err)
		}
		got++
	}
	if got != want {
		tb.Fatalf("listed %d, want %d", got, want)
	}
}
