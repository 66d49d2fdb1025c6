package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"testing"
	"time"
)

// blobReader yields n pseudo-random bytes made from seed, without holding
// them: each benchmark iteration uploads a distinct blob, so nothing is
// deduplicated, and memory does not grow with n.
func blobReader(seed uint64, n int64) io.Reader {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	return io.LimitReader(rand.NewChaCha8(key), n)
}

// BenchmarkUpload measures a multipart upload through the API (HTTP over
// loopback, streaming multipart parse, sniffing, Store.Put into the default
// fsstore, SQLite insert) against its limit measured in the same run:
// Store.Put of the same number of bytes straight into the same store.
// "x-limit" is the ratio of the two times; B/op stays flat as the size grows
// because nothing buffers a whole blob.
func BenchmarkUpload(b *testing.B) {
	for _, size := range []int64{1 << 20, 16 << 20} {
		b.Run(fmt.Sprintf("size=%dMiB", size>>20), func(b *testing.B) {
			ta := serveApp(b, Config{MaxUpload: 64 << 20})
			key := ta.createPart("bench")
			client := ta.srv.Client()
			var apiTime, putTime time.Duration
			var seed uint64
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				seed++
				t0 := time.Now()
				pr, pw := io.Pipe()
				mw := multipart.NewWriter(pw)
				go func() {
					fw, err := mw.CreateFormFile("file", "blob.bin")
					if err == nil {
						_, err = io.Copy(fw, blobReader(seed, size))
					}
					if err == nil {
						err = mw.Close()
					}
					pw.CloseWithError(err)
				}()
				req, err := http.NewRequestWithContext(b.Context(), "POST", ta.srv.URL+"/api/parts/"+key+"/attachments", pr)
				if err != nil {
					b.Fatal(err)
				}
				req.Header.Set("Content-Type", mw.FormDataContentType())
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					b.Fatalf("status %d", resp.StatusCode)
				}
				t1 := time.Now()
				// The limit: the same bytes (another seed, so not deduplicated)
				// straight into the store.
				if _, err := ta.uploads.Put(b.Context(), blobReader(seed|1<<63, size)); err != nil {
					b.Fatal(err)
				}
				apiTime += t1.Sub(t0)
				putTime += time.Since(t1)
			}
			b.ReportMetric(float64(apiTime)/float64(putTime), "x-limit")
		})
	}
}
