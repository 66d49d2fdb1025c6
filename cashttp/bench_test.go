package cashttp_test

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/fsstore"
	"github.com/casa-go/casa/cashttp"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/internal/testutil/faulty"
)

// fetch GETs url and discards the body, returning the bytes read.
func fetch(b *testing.B, c *http.Client, url string, hdr ...string) int64 {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	n, err := io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if err != nil {
		b.Fatal(err)
	}
	if res.StatusCode != http.StatusOK && res.StatusCode != http.StatusNotModified {
		b.Fatalf("status %d", res.StatusCode)
	}
	return n
}

func median(d []time.Duration) time.Duration {
	slices.Sort(d)
	return d[len(d)/2]
}

// BenchmarkServe serves one blob from fsstore over a loopback server and,
// interleaved in the same loop, the same file through http.FileServer. It
// reports each one's throughput from the median request time and their
// ratio (cashttp / FileServer), which should be at least 0.8.
func BenchmarkServe(b *testing.B) {
	for _, size := range []int64{1 << 20, 64 << 20} {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			back, err := fsstore.New(b.TempDir(), fsstore.WithoutSync())
			if err != nil {
				b.Fatal(err)
			}
			store := cas.New(back)
			res, err := store.Put(context.Background(), testutil.Reader(1, size))
			if err != nil {
				b.Fatal(err)
			}
			// The very file fsstore serves, found without assuming its layout.
			var path string
			err = filepath.WalkDir(back.Dir(), func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.Name() == res.Hash.String() {
					path = p
				}
				return err
			})
			if err != nil || path == "" {
				b.Fatalf("blob file not found: %v", err)
			}
			casSrv := httptest.NewServer(cashttp.NewHandler(store))
			defer casSrv.Close()
			fileSrv := httptest.NewServer(http.FileServer(http.Dir(filepath.Dir(path))))
			defer fileSrv.Close()
			casURL := casSrv.URL + urls.Inline(res.Hash, "application/octet-stream")
			fileURL := fileSrv.URL + "/" + filepath.Base(path)
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}}
			defer c.CloseIdleConnections()
			// Warm up both paths (connections, page cache).
			fetch(b, c, casURL)
			fetch(b, c, fileURL)

			casTimes := make([]time.Duration, 0, b.N)
			fileTimes := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				// Alternate which goes first so neither always gets a warmer cache.
				order := []bool{true, false}
				if i%2 == 1 {
					order = []bool{false, true}
				}
				for _, isCas := range order {
					t0 := time.Now()
					var n int64
					if isCas {
						n = fetch(b, c, casURL)
						casTimes = append(casTimes, time.Since(t0))
					} else {
						n = fetch(b, c, fileURL)
						fileTimes = append(fileTimes, time.Since(t0))
					}
					if n != size {
						b.Fatalf("read %d bytes, want %d", n, size)
					}
				}
			}
			b.StopTimer()
			// Medians: the machine may be shared, and a burst of outside
			// load should not decide the comparison.
			casMed, fileMed := median(casTimes), median(fileTimes)
			mb := float64(size) / 1e6
			b.ReportMetric(mb/casMed.Seconds(), "cashttp-MB/s")
			b.ReportMetric(mb/fileMed.Seconds(), "FileServer-MB/s")
			b.ReportMetric(fileMed.Seconds()/casMed.Seconds(), "ratio")
		})
	}
}

// Benchmark304 answers conditional requests for a blob over a loopback
// server, interleaved with the same requests to a handler that only writes
// the 304 (the limit). It reports backend calls per request (must be 0)
// and, from median request times, the ratio of the baseline's time to
// cashttp's.
func Benchmark304(b *testing.B) {
	back, err := fsstore.New(b.TempDir(), fsstore.WithoutSync())
	if err != nil {
		b.Fatal(err)
	}
	counts := faulty.New(back)
	store := cas.New(counts)
	res, err := store.Put(context.Background(), testutil.Reader(2, 1<<20))
	if err != nil {
		b.Fatal(err)
	}
	etag := `"` + res.Hash.String() + `"`
	casSrv := httptest.NewServer(cashttp.NewHandler(store))
	defer casSrv.Close()
	baseSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("If-None-Match") == etag {
			w.Header().Set("ETag", etag)
			w.Header().Set("Cache-Control", cashttp.CacheControl)
			w.WriteHeader(http.StatusNotModified)
		}
	}))
	defer baseSrv.Close()
	casURL := casSrv.URL + urls.Inline(res.Hash, "image/png")
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	defer c.CloseIdleConnections()
	fetch(b, c, casURL, "If-None-Match", etag)
	fetch(b, c, baseSrv.URL, "If-None-Match", etag)
	counts.Reset()

	casTimes := make([]time.Duration, 0, b.N)
	baseTimes := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		fetch(b, c, casURL, "If-None-Match", etag)
		t1 := time.Now()
		fetch(b, c, baseSrv.URL, "If-None-Match", etag)
		casTimes = append(casTimes, t1.Sub(t0))
		baseTimes = append(baseTimes, time.Since(t1))
	}
	b.StopTimer()
	calls := 0
	for _, n := range counts.Counts() {
		calls += n
	}
	if calls != 0 {
		b.Fatalf("304 path made %d backend calls: %v", calls, counts.Counts())
	}
	b.ReportMetric(float64(calls)/float64(b.N), "backend-calls/op")
	casMed, baseMed := median(casTimes), median(baseTimes)
	b.ReportMetric(float64(casMed.Nanoseconds()), "cashttp-ns/req")
	b.ReportMetric(float64(baseMed.Nanoseconds()), "baseline-ns/req")
	b.ReportMetric(baseMed.Seconds()/casMed.Seconds(), "ratio")
}
