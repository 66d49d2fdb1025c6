package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/cas/s3store"
	"github.com/casa-go/casa/cashttp"
	"github.com/casa-go/casa/casurl"
	"github.com/casa-go/casa/internal/testutil"
)

// countedBody counts the bytes read from a request body.
type countedBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c countedBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// countedWriter counts the body bytes a handler writes.
type countedWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c countedWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// uploadSection: the bytes the upload protocol moves when most files are
// known, and the bytes a redirected download leaves in the app.
func uploadSection(cfg *config) ([]row, error) {
	ctx := context.Background()
	var rows []row

	// 100 files, 90 already stored: batch first, then PUT the missing.
	store := cas.New(memstore.New())
	var in atomic.Int64
	up := cashttp.NewUploadHandler(store)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = countedBody{r.Body, &in}
		http.StripPrefix("/up", up).ServeHTTP(w, r)
	}))
	defer srv.Close()
	const n, size = 100, 64 << 10
	files := map[cas.Hash][]byte{}
	var hashes []cas.Hash
	for i := range n {
		p := testutil.Bytes(uint64(5000+i), size)
		h := cas.SumBytes(p)
		files[h] = p
		hashes = append(hashes, h)
		if i%10 != 0 {
			if _, err := store.Put(ctx, bytes.NewReader(p)); err != nil {
				return nil, err
			}
		}
	}
	c := &cashttp.UploadClient{BaseURL: srv.URL + "/up", HTTP: newClient(1)}
	missing, err := c.Missing(ctx, hashes)
	if err != nil {
		return nil, err
	}
	for _, h := range missing {
		if _, err := c.Put(ctx, h, bytes.NewReader(files[h]), size); err != nil {
			return nil, err
		}
	}
	moved, total := in.Load(), int64(n*size)
	ratio := float64(moved) / float64(total)
	rows = append(rows, row{
		Name:   "upload 100 files of 64 KiB, 90 already stored, via UploadClient (batch, then PUT the missing): request body bytes",
		Figure: fmt.Sprintf("%d B", moved), Peer: fmt.Sprintf("every file: %d B", total),
		Ratio: ratio, Target: "<= 0.12", Pass: len(missing) == 10 && ratio <= 0.12,
	})

	// A 16 MiB blob on S3: proxied vs redirected (WithRedirect).
	s3, err := startS3(cfg, 0)
	if err != nil {
		return nil, err
	}
	defer s3.Close()
	s3s := cas.New(s3store.New(s3.Client, s3.Bucket))
	blob := testutil.Bytes(77, 16<<20)
	res, err := s3s.Put(ctx, bytes.NewReader(blob))
	if err != nil {
		return nil, err
	}
	u, err := casurl.Builder{}.Inline(res.Hash, "video/mp4")
	if err != nil {
		return nil, err
	}
	sent := func(h http.Handler) (int64, int, time.Duration, error) {
		var out atomic.Int64
		app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(countedWriter{w, &out}, r)
		}))
		defer app.Close()
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		t0 := time.Now()
		resp, err := client.Get(app.URL + u)
		if err != nil {
			return 0, 0, 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return out.Load(), resp.StatusCode, time.Since(t0), nil
	}
	proxied, st1, d1, err := sent(cashttp.NewHandler(s3s))
	if err != nil {
		return nil, err
	}
	redirected, st2, d2, err := sent(cashttp.NewHandler(s3s, cashttp.WithRedirect(1<<20, 15*time.Minute)))
	if err != nil {
		return nil, err
	}
	rows = append(rows, row{
		Name:   fmt.Sprintf("GET of a 16 MiB video/mp4 blob on S3 (test server), WithRedirect: body bytes the app sends (status %d, %v)", st2, d2.Round(time.Millisecond)),
		Figure: fmt.Sprintf("%d B", redirected), Peer: fmt.Sprintf("proxied: %d B (status %d, %v)", proxied, st1, d1.Round(time.Millisecond)),
		Target: "0", Pass: redirected == 0 && st2 == http.StatusTemporaryRedirect && proxied == int64(len(blob)),
	})
	return rows, nil
}
