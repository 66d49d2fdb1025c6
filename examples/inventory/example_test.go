package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"log"
	"maps"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/cashttp"
	"github.com/casa-go/casa/migrate"
)

// Example runs the app on a test server and uses its JSON API: create a
// part, upload a file, and fetch it through the download_url the API
// returns.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "inventory-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	app, err := NewApp(ctx, Config{DataDir: dir, Backend: memstore.New()})
	if err != nil {
		log.Fatal(err)
	}
	defer app.Close()
	srv := httptest.NewServer(app.Handler())
	defer srv.Close()

	// POST /api/parts
	resp, err := http.Post(srv.URL+"/api/parts", "application/json", strings.NewReader(`{"description": "NE555 timer"}`))
	if err != nil {
		log.Fatal(err)
	}
	var part struct{ Key string }
	_ = json.NewDecoder(resp.Body).Decode(&part)
	resp.Body.Close()

	// POST /api/parts/{key}/attachments, multipart: title and file.
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("title", "Pinout")
	fw, _ := mw.CreateFormFile("file", "pinout.txt")
	_, _ = io.WriteString(fw, "1 GND, 2 TRIG, 3 OUT, 4 RESET, 5 CTRL, 6 THR, 7 DIS, 8 VCC\n")
	_ = mw.Close()
	resp, err = http.Post(srv.URL+"/api/parts/"+part.Key+"/attachments", mw.FormDataContentType(), &body)
	if err != nil {
		log.Fatal(err)
	}
	var att struct {
		Title          string  `json:"title"`
		AttachmentType string  `json:"attachment_type"`
		DownloadURL    string  `json:"download_url"`
		ThumbnailURL   *string `json:"thumbnail_url"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&att)
	resp.Body.Close()
	fmt.Println(resp.Status, att.Title, att.AttachmentType, att.ThumbnailURL == nil)
	fmt.Println(att.DownloadURL)

	// The URL names the bytes by hash; cashttp serves them.
	resp, err = http.Get(srv.URL + att.DownloadURL)
	if err != nil {
		log.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.Header.Get("Cache-Control"))
	fmt.Printf("%q\n", b[:12])
	// Output:
	// 201 Created Pinout file true
	// /api/cas/58260426371358c68d72ef8030a43588c3f613308db0b7222652e3ad988b12b6?content_type=text%2Fplain%3B+charset%3Dutf-8&disposition=attachment&filename=pinout.txt
	// public, max-age=31536000, immutable
	// "1 GND, 2 TRI"
}

// notes is a custom migrate.Migrator: here a map guarded by a mutex,
// standing in for whatever your records live in (a document store, a
// table with an unusual layout, a JSON file). It is the part of a migration
// an application writes itself.
type notes struct {
	mu   sync.Mutex
	keys map[string]string // note ID -> object key
}

// Pending yields the notes still on legacy keys. It copies them first so
// that no lock is held while migrate.Run calls Commit.
func (n *notes) Pending(ctx context.Context) iter.Seq2[migrate.Record, error] {
	return func(yield func(migrate.Record, error) bool) {
		n.mu.Lock()
		var recs []migrate.Record
		for _, id := range slices.Sorted(maps.Keys(n.keys)) {
			if k := n.keys[id]; k != "" && !cas.IsKey(k) {
				recs = append(recs, migrate.Record{ID: id, Key: k})
			}
		}
		n.mu.Unlock()
		for _, r := range recs {
			if !yield(r, nil) {
				return
			}
		}
	}
}

// Commit repoints one note, only if it still has the key it was read with.
func (n *notes) Commit(ctx context.Context, rec migrate.Record, newKey string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.keys[rec.ID] != rec.Key {
		return migrate.ErrConflict
	}
	n.keys[rec.ID] = newKey
	return nil
}

// Referenced yields every key a note points at, so that Cleanup keeps them.
func (n *notes) Referenced(ctx context.Context) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		n.mu.Lock()
		keys := slices.Collect(maps.Values(n.keys))
		n.mu.Unlock()
		for _, k := range keys {
			if k != "" && !yield(k, nil) {
				return
			}
		}
	}
}

// Example_customMigrator migrates records that are not in a SQL table with
// a Migrator of your own, then cleans up the legacy objects and serves the
// migrated blobs with cashttp.
func Example_customMigrator() {
	ctx := context.Background()
	backend := memstore.New()
	store := cas.New(backend)

	// Two notes store the same bytes under different UUID keys.
	put := func(key, s string) {
		if err := backend.Put(ctx, key, strings.NewReader(s), int64(len(s)), cas.PutOptions{}); err != nil {
			log.Fatal(err)
		}
	}
	put("8a1c6a53-0a49-4c8e-9f5e-3c1b1d1f2a01", "order 20 more NE555")
	put("legacy/2f6e5b0e-7c1d-4d2a-8b3c-9d4e5f6a7b02", "order 20 more NE555")
	m := &notes{keys: map[string]string{
		"n1": "8a1c6a53-0a49-4c8e-9f5e-3c1b1d1f2a01",
		"n2": "legacy/2f6e5b0e-7c1d-4d2a-8b3c-9d4e5f6a7b02",
		"n3": "", // a note without a file
	}}

	report, err := migrate.Run(ctx, store, m, migrate.Options{})
	if err != nil {
		log.Fatal(err)
	}
	if err := report.Err(); err != nil {
		log.Fatal("refusing to start: ", err) // a real service exits here
	}
	fmt.Printf("migrated %d, deduplicated %d, failed %d\n", report.Migrated, report.Deduplicated, report.Failed)

	cleaned, err := migrate.Cleanup(ctx, store, m, migrate.CleanupOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("legacy objects deleted:", cleaned.Deleted)

	// Both notes now point at one CAS object, which cashttp serves.
	fmt.Println(m.keys["n1"] == m.keys["n2"], m.keys["n1"])
	h, _ := cas.ParseKey(m.keys["n1"])
	mux := http.NewServeMux()
	mux.Handle("GET /api/cas/{hash}", cashttp.NewHandler(store))
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/api/cas/"+h.String()+"?content_type=text/plain", nil))
	fmt.Println(rec.Code, rec.Body.String())
	// Output:
	// migrated 2, deduplicated 1, failed 0
	// legacy objects deleted: 2
	// true cas/5274dd9be86190b986236527e7c85965dd1b80c55c45b960a6cb53ebe6c68f41
	// 200 order 20 more NE555
}
