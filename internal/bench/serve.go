package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/fsstore"
	"github.com/casa-go/casa/cashttp"
	"github.com/casa-go/casa/casurl"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/internal/testutil/faulty"
)

// newClient returns a client that keeps enough idle connections for n
// concurrent requests to one loopback server.
func newClient(n int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConns:        n,
		MaxIdleConnsPerHost: n,
		DisableCompression:  true,
	}}
}

// get performs one GET, drains the body and checks the status.
func get(c *http.Client, url string, want int, hdr http.Header) (int64, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return n, err
	}
	if resp.StatusCode != want {
		return n, fmt.Errorf("GET %s: status %d, want %d", url, resp.StatusCode, want)
	}
	return n, nil
}

// serveSection: GET throughput through cashttp beside http.FileServer on the
// same bytes, and the 304 path beside a handler that only writes 304.
func serveSection(cfg *config) ([]row, error) {
	ctx := context.Background()
	fsb, err := fsstore.New(filepath.Join(cfg.tmp, "serve-fs"))
	if err != nil {
		return nil, err
	}
	counted := faulty.New(fsb)
	store := cas.New(counted)
	plain := filepath.Join(cfg.tmp, "serve-plain")
	if err := os.MkdirAll(plain, 0o755); err != nil {
		return nil, err
	}

	mux := http.NewServeMux()
	mux.Handle("GET /api/cas/{hash}", cashttp.NewHandler(store))
	mux.Handle("GET /files/", http.StripPrefix("/files/", http.FileServer(http.Dir(plain))))
	mux.HandleFunc("GET /only304", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotModified) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	client := newClient(4)
	urls := casurl.Builder{}

	var rows []row
	var last cas.Hash
	for _, size := range []int{1 << 20, 64 << 20} {
		data := testutil.Bytes(uint64(size)+7, size)
		res, err := store.Put(ctx, bytes.NewReader(data))
		if err != nil {
			return rows, err
		}
		last = res.Hash
		name := res.Hash.String() + ".bin"
		if err := os.WriteFile(filepath.Join(plain, name), data, 0o644); err != nil {
			return rows, err
		}
		casPath, err := urls.Inline(res.Hash, "application/octet-stream")
		if err != nil {
			return rows, err
		}
		casURL := srv.URL + casPath
		fileURL := srv.URL + "/files/" + name
		fetch := func(u string) op {
			return func(int) (time.Duration, error) {
				return timed(func() error {
					n, err := get(client, u, http.StatusOK, nil)
					if err == nil && n != int64(size) {
						err = fmt.Errorf("GET %s: %d bytes, want %d", u, n, size)
					}
					return err
				})
			}
		}
		rc, rf, err := paired(cfg.minDur, fetch(casURL), fetch(fileURL))
		if err != nil {
			return rows, err
		}
		rows = append(rows, row{
			Name:   fmt.Sprintf("GET %s blob via cashttp (fsstore)", sizeName(size)),
			Figure: mbps(rc * float64(size)),
			Peer:   "http.FileServer " + mbps(rf*float64(size)),
			Ratio:  rc / rf,
			Target: ">= 0.80",
			Pass:   rc/rf >= 0.80,
		})
	}

	// The 304 path: a conditional GET that must not touch storage.
	inm := http.Header{"If-None-Match": {`"` + last.String() + `"`}}
	casPath, err := urls.Inline(last, "application/octet-stream")
	if err != nil {
		return rows, err
	}
	casURL := srv.URL + casPath
	counted.Reset()
	not := func(u string) op {
		return func(int) (time.Duration, error) {
			return timed(func() error { _, err := get(client, u, http.StatusNotModified, inm); return err })
		}
	}
	r304, rPlain, err := paired(cfg.minDur, not(casURL), not(srv.URL+"/only304"))
	if err != nil {
		return rows, err
	}
	calls := 0
	for _, n := range counted.Counts() {
		calls += n
	}
	rows = append(rows,
		row{
			Name:   "304 Not Modified via cashttp (If-None-Match)",
			Figure: fmt.Sprintf("%.0f req/s", r304),
			Peer:   fmt.Sprintf("bare 304 handler %.0f req/s", rPlain),
			Ratio:  r304 / rPlain,
		},
		row{
			Name:   "backend calls during the 304 run",
			Figure: fmt.Sprint(calls),
			Peer:   "0",
			Target: "0",
			Pass:   calls == 0,
		})
	return rows, nil
}
