package s3store_test

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

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
// in-process gofakes3 server and, with CASA_TEST_S3_ENDPOINT set, on the
// real server, and reports the HeadObject requests per List (gofakes3
// only: the real server's requests are not counted).
//
//	go test -run '^$' -bench BenchmarkList2000 -benchtime 3x ./cas/s3store/
func BenchmarkList2000(b *testing.B) {
	const n = 2000
	b.Run("gofakes3", func(b *testing.B) {
		s := s3test.New(b)
		be := s3store.New(s.Client, s.Bucket)
		seedBlobs(b, be, n)
		s.ResetStats()
		for b.Loop() {
			listAll(b, be, n)
		}
		b.ReportMetric(float64(s.Requests("HeadObject"))/float64(b.N), "HEADs/op")
	})
	b.Run("real", func(b *testing.B) {
		r := testutil.NewRealS3(b)
		be := s3store.New(r.Client, r.Bucket, s3store.WithKeyPrefix(r.Prefix))
		keys := seedBlobs(b, be, n)
		b.Cleanup(func() {
			for _, k := range keys {
				_ = be.Delete(b.Context(), k)
			}
		})
		for b.Loop() {
			listAll(b, be, n)
		}
	})
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
