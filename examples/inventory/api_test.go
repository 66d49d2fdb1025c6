package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	_ "image/jpeg" // decode thumbnails
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/fsstore"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/casurl"
	"github.com/casa-go/casa/internal/testutil/faulty"
	"github.com/casa-go/casa/internal/testutil/imagetest"
)

func ptr[T any](v T) *T { return &v }

// mustURL takes the results of a casurl.Builder method and fails t on an
// error: mustURL(t)(urls.Thumbnail(h, 150)).
func mustURL(t testing.TB) func(string, error) string {
	return func(u string, err error) string {
		t.Helper()
		require.NoError(t, err)
		return u
	}
}

func TestCreateListGetPart(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, d testDB) {
		ta := newTestApp(t, Config{DB: d.dsn})
		before := time.Now().Add(-time.Second)

		status, b := ta.do("POST", "/api/parts", "application/json", strings.NewReader(`{"description": "  NE555 timer  "}`))
		require.Equal(t, http.StatusCreated, status, "body: %s", b)
		// The exact JSON shape: these four fields, cover_url null.
		var raw map[string]any
		require.NoError(t, json.Unmarshal(b, &raw))
		require.ElementsMatch(t, []string{"key", "description", "cover_url", "created_at"}, mapKeys(raw))
		require.Nil(t, raw["cover_url"])
		require.Contains(t, raw, "cover_url")

		var p partJSON
		require.NoError(t, json.Unmarshal(b, &p))
		require.Regexp(t, `^[a-z2-7]{10}$`, p.Key)
		require.Equal(t, "NE555 timer", p.Description)
		require.WithinRange(t, p.CreatedAt, before, time.Now().Add(time.Second))

		var got partJSON
		ta.doJSON("GET", "/api/parts/"+p.Key, nil, http.StatusOK, &got)
		require.Empty(t, cmp.Diff(p, got))

		second := ta.createPart("LM7805")
		var list []partJSON
		ta.doJSON("GET", "/api/parts", nil, http.StatusOK, &list)
		require.Len(t, list, 2)
		require.Equal(t, []string{p.Key, second}, []string{list[0].Key, list[1].Key})

		ta.doJSON("GET", "/api/parts/nosuchpart", nil, http.StatusNotFound, nil)
	})
}

func TestListPartsEmptyIsArray(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, Config{})
	status, b := ta.do("GET", "/api/parts", "", nil)
	require.Equal(t, http.StatusOK, status)
	require.JSONEq(t, `[]`, string(b))
}

func TestUploadURLFields(t *testing.T) {
	t.Parallel()
	jpg := imagetest.JPEG(400, 300)
	png := imagetest.PNG(300, 200)
	pdf := imagetest.PDF()
	text := []byte("resistor colour codes\n")
	html := []byte("<!DOCTYPE html><html><script>alert(1)</script></html>")

	tests := []struct {
		name, filename, declared string
		data                     []byte
		wantType, wantCT         string
		wantThumb                bool
	}{
		{"jpeg", "photo.jpg", "image/jpeg", jpg, "image", "image/jpeg", true},
		{"png sniffed from octet-stream", "board.png", "application/octet-stream", png, "image", "image/png", true},
		{"png without declared type", "board.png", "", png, "image", "image/png", true},
		{"pdf", "datasheet.pdf", "application/pdf", pdf, "pdf", "application/pdf", false},
		{"text", "notes.txt", "text/plain; charset=utf-8", text, "file", "text/plain; charset=utf-8", false},
		{"html is a file", "page.html", "text/html", html, "file", "text/html", false},
		{"unicode filename", "Schaltplan für Netzteil.pdf", "application/pdf", pdf, "pdf", "application/pdf", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ta := newTestApp(t, Config{})
			key := ta.createPart("part")
			status, b := ta.upload(key, "My title", tc.filename, tc.declared, tc.data)
			require.Equal(t, http.StatusCreated, status, "body: %s", b)

			// The stored key never appears in a response.
			h := cas.SumBytes(tc.data)
			var raw map[string]any
			require.NoError(t, json.Unmarshal(b, &raw))
			require.NotContains(t, raw, "storage_key")
			for f, v := range raw {
				require.NotEqual(t, h.Key(), v, f)
			}
			require.ElementsMatch(t, []string{"id", "title", "attachment_type", "filename", "content_type",
				"file_size", "url", "download_url", "thumbnail_url"}, mapKeys(raw))

			var at attachmentJSON
			require.NoError(t, json.Unmarshal(b, &at))
			urls := casurl.Builder{}
			want := attachmentJSON{
				ID:             at.ID,
				Title:          "My title",
				AttachmentType: tc.wantType,
				Filename:       ptr(tc.filename),
				ContentType:    ptr(tc.wantCT),
				FileSize:       ptr(int64(len(tc.data))),
				DownloadURL:    ptr(mustURL(t)(urls.Download(h, tc.wantCT, tc.filename))),
			}
			if tc.wantThumb {
				want.ThumbnailURL = ptr(mustURL(t)(urls.Thumbnail(h, 150)))
			}
			require.Empty(t, cmp.Diff(want, at))
			require.Positive(t, at.ID)
			if !tc.wantThumb {
				require.Nil(t, raw["thumbnail_url"])
			}

			// The list says the same.
			require.Empty(t, cmp.Diff([]attachmentJSON{at}, ta.attachments(key)))

			// download_url serves the bytes as an attachment under the name.
			status, hdr, body := ta.get(*at.DownloadURL)
			require.Equal(t, http.StatusOK, status)
			require.Equal(t, tc.data, body)
			require.Equal(t, tc.wantCT, hdr.Get("Content-Type"))
			require.Contains(t, hdr.Get("Content-Disposition"), "attachment")
			require.Contains(t, hdr.Get("Cache-Control"), "immutable")

			if tc.wantThumb {
				status, hdr, body := ta.get(*at.ThumbnailURL)
				require.Equal(t, http.StatusOK, status, "body: %s", body)
				require.Equal(t, "image/jpeg", hdr.Get("Content-Type"))
				cfg, format, err := image.DecodeConfig(bytes.NewReader(body))
				require.NoError(t, err)
				require.Equal(t, "jpeg", format)
				require.LessOrEqual(t, max(cfg.Width, cfg.Height), 150)
				require.Equal(t, 150, max(cfg.Width, cfg.Height), "a larger image is scaled to fit 150")
			}
		})
	}
}

func TestUploadTitleDefaultsToFilename(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, Config{})
	key := ta.createPart("part")
	at := ta.uploadOK(key, "", "pinout.pdf", "application/pdf", imagetest.PDF())
	require.Equal(t, "pinout.pdf", at.Title)
}

func TestUploadDeduplicates(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, Config{})
	a, b := ta.createPart("first"), ta.createPart("second")
	data := imagetest.JPEG(120, 90)

	at1 := ta.uploadOK(a, "front", "front.jpg", "image/jpeg", data)
	at2 := ta.uploadOK(b, "same bytes", "other-name.jpg", "image/jpeg", data)
	at3 := ta.uploadOK(a, "again", "front.jpg", "image/jpeg", data)

	require.NotEqual(t, at1.ID, at2.ID)
	require.NotEqual(t, at1.ID, at3.ID)
	// One object in the store, three rows pointing at it.
	require.Equal(t, []string{cas.SumBytes(data).Key()}, keys(t, ta.backend, cas.KeyPrefix))
	require.Equal(t, 3, ta.rowCount("attachments"))
	require.Equal(t, *at1.ThumbnailURL, *at2.ThumbnailURL)
	require.Equal(t, *at1.DownloadURL, *at3.DownloadURL)
	require.NotEqual(t, *at1.DownloadURL, *at2.DownloadURL, "the filename is part of the URL")
}

// TestConcurrentIdenticalUploads: parallel uploads of the same bytes into
// the default fsstore make one object and one row each.
func TestConcurrentIdenticalUploads(t *testing.T) {
	t.Parallel()
	ta := serveApp(t, Config{})
	key := ta.createPart("part")
	data := imagetest.JPEG(200, 150)
	const n = 8
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := range n {
		body, ct := multipartBody(t, "", "p.jpg", "image/jpeg", data)
		wg.Go(func() {
			req, err := http.NewRequestWithContext(t.Context(), "POST", ta.srv.URL+"/api/parts/"+key+"/attachments", body)
			if err != nil {
				return
			}
			req.Header.Set("Content-Type", ct)
			resp, err := ta.srv.Client().Do(req)
			if err != nil {
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		})
	}
	wg.Wait()
	for i, s := range statuses {
		require.Equal(t, http.StatusCreated, s, "upload %d", i)
	}
	require.Equal(t, n, ta.rowCount("attachments"))
	require.Equal(t, []string{cas.SumBytes(data).Key()}, keys(t, ta.backend, cas.KeyPrefix))
}

func TestURLAttachment(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, Config{})
	key := ta.createPart("part")
	status, b := ta.do("POST", "/api/parts/"+key+"/attachments", "application/json",
		strings.NewReader(`{"title": "Distributor", "url": "https://example.com/ne555?x=1"}`))
	require.Equal(t, http.StatusCreated, status, "body: %s", b)
	var raw map[string]any
	require.NoError(t, json.Unmarshal(b, &raw))
	for _, f := range []string{"download_url", "thumbnail_url", "filename", "content_type", "file_size"} {
		require.Contains(t, raw, f)
		require.Nil(t, raw[f], f)
	}
	require.Equal(t, "url", raw["attachment_type"])
	require.Equal(t, "https://example.com/ne555?x=1", raw["url"])
	require.Equal(t, "Distributor", raw["title"])
	require.Empty(t, keys(t, ta.backend, ""), "a URL attachment stores no object")
}

func TestCopyAttachmentReusesObject(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, d testDB) {
		fault := faulty.New(memstore.New())
		ta := newTestApp(t, Config{Backend: fault, DB: d.dsn})
		src, dst := ta.createPart("source"), ta.createPart("target")
		orig := ta.uploadOK(src, "photo", "photo.jpg", "image/jpeg", imagetest.JPEG(80, 60))
		putsBefore := fault.Calls(faulty.MethodPut)
		openBefore := fault.Calls(faulty.MethodOpen)

		var cp attachmentJSON
		ta.doJSON("POST", "/api/parts/"+src+"/attachments/"+itoa(orig.ID)+"/copy",
			map[string]string{"target_part_key": dst}, http.StatusCreated, &cp)
		require.NotEqual(t, orig.ID, cp.ID)
		want := orig
		want.ID = cp.ID
		require.Empty(t, cmp.Diff(want, cp), "same fields and URLs, new id")
		require.Equal(t, putsBefore, fault.Calls(faulty.MethodPut), "no new object")
		require.Equal(t, openBefore, fault.Calls(faulty.MethodOpen), "no bytes read")
		require.Len(t, keys(t, fault, cas.KeyPrefix), 1)
		require.Empty(t, cmp.Diff([]attachmentJSON{cp}, ta.attachments(dst)))
		require.Len(t, ta.attachments(src), 1)

		// Hostile copies change nothing.
		ta.doJSON("POST", "/api/parts/"+src+"/attachments/"+itoa(orig.ID)+"/copy",
			map[string]string{"target_part_key": "nosuchpart"}, http.StatusBadRequest, nil)
		ta.doJSON("POST", "/api/parts/"+src+"/attachments/"+itoa(orig.ID)+"/copy",
			map[string]string{}, http.StatusBadRequest, nil)
		ta.doJSON("POST", "/api/parts/"+dst+"/attachments/999/copy",
			map[string]string{"target_part_key": src}, http.StatusNotFound, nil)
		ta.doJSON("POST", "/api/parts/"+dst+"/attachments/"+itoa(orig.ID)+"/copy",
			map[string]string{"target_part_key": src}, http.StatusNotFound, nil) // orig is not dst's
		require.Equal(t, 2, ta.rowCount("attachments"))
	})
}

func TestCover(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, d testDB) {
		ta := newTestApp(t, Config{DB: d.dsn})
		key, other := ta.createPart("part"), ta.createPart("other")
		img := imagetest.PNG(200, 100)
		photo := ta.uploadOK(key, "photo", "photo.png", "image/png", img)
		pdf := ta.uploadOK(key, "datasheet", "d.pdf", "application/pdf", imagetest.PDF())
		foreign := ta.uploadOK(other, "foreign", "f.png", "image/png", imagetest.PNG(10, 10))

		var p partJSON
		ta.doJSON("PUT", "/api/parts/"+key+"/cover", map[string]any{"attachment_id": photo.ID}, http.StatusOK, &p)
		wantCover := mustURL(t)(casurl.Builder{}.Thumbnail(cas.SumBytes(img), 150))
		require.NotNil(t, p.CoverURL)
		require.Equal(t, wantCover, *p.CoverURL)

		ta.doJSON("GET", "/api/parts/"+key, nil, http.StatusOK, &p)
		require.Equal(t, wantCover, *p.CoverURL)
		var list []partJSON
		ta.doJSON("GET", "/api/parts", nil, http.StatusOK, &list)
		require.Equal(t, wantCover, *list[0].CoverURL)
		require.Nil(t, list[1].CoverURL)
		status, hdr, _ := ta.get(wantCover)
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, "image/jpeg", hdr.Get("Content-Type"))

		// Bad covers leave the cover as it was.
		ta.doJSON("PUT", "/api/parts/"+key+"/cover", map[string]any{"attachment_id": pdf.ID}, http.StatusBadRequest, nil)
		ta.doJSON("PUT", "/api/parts/"+key+"/cover", map[string]any{"attachment_id": foreign.ID}, http.StatusNotFound, nil)
		ta.doJSON("PUT", "/api/parts/"+key+"/cover", map[string]any{"attachment_id": "1"}, http.StatusBadRequest, nil)
		ta.doJSON("PUT", "/api/parts/nosuchpart/cover", map[string]any{"attachment_id": photo.ID}, http.StatusNotFound, nil)
		ta.doJSON("GET", "/api/parts/"+key, nil, http.StatusOK, &p)
		require.Equal(t, wantCover, *p.CoverURL)

		// null clears it.
		ta.doJSON("PUT", "/api/parts/"+key+"/cover", map[string]any{"attachment_id": nil}, http.StatusOK, &p)
		require.Nil(t, p.CoverURL)

		// Deleting the cover attachment clears the cover too.
		ta.doJSON("PUT", "/api/parts/"+key+"/cover", map[string]any{"attachment_id": photo.ID}, http.StatusOK, &p)
		require.NotNil(t, p.CoverURL)
		ta.doJSON("DELETE", "/api/parts/"+key+"/attachments/"+itoa(photo.ID), nil, http.StatusNoContent, nil)
		ta.doJSON("GET", "/api/parts/"+key, nil, http.StatusOK, &p)
		require.Nil(t, p.CoverURL)
	})
}

func TestDeleteAttachment(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, d testDB) {
		ta := newTestApp(t, Config{DB: d.dsn})
		key := ta.createPart("part")
		data := imagetest.PDF()
		a := ta.uploadOK(key, "a", "a.pdf", "application/pdf", data)
		b := ta.uploadOK(key, "b", "b.pdf", "application/pdf", data)

		ta.doJSON("DELETE", "/api/parts/"+key+"/attachments/"+itoa(a.ID), nil, http.StatusNoContent, nil)
		require.Empty(t, cmp.Diff([]attachmentJSON{b}, ta.attachments(key)))
		ta.doJSON("DELETE", "/api/parts/"+key+"/attachments/"+itoa(a.ID), nil, http.StatusNotFound, nil)
		ta.doJSON("DELETE", "/api/parts/other/attachments/"+itoa(b.ID), nil, http.StatusNotFound, nil)
		ta.doJSON("DELETE", "/api/parts/"+key+"/attachments/x", nil, http.StatusNotFound, nil)

		// The object stays: b still points at it.
		status, _, body := ta.get(*b.DownloadURL)
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, data, body)
	})
}

func TestGoneEndpoints(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, Config{})
	key := ta.createPart("part")
	at := ta.uploadOK(key, "p", "p.png", "image/png", imagetest.PNG(20, 20))
	tests := map[string]string{
		"/api/parts/" + key + "/attachments/" + itoa(at.ID) + "/download":  "download_url",
		"/api/parts/" + key + "/attachments/" + itoa(at.ID) + "/thumbnail": "thumbnail_url",
		"/api/parts/" + key + "/cover/thumbnail":                           "cover_url",
	}
	for path, field := range tests {
		status, hdr, b := ta.get(path)
		require.Equal(t, http.StatusGone, status, path)
		require.Equal(t, "application/json", hdr.Get("Content-Type"))
		var body map[string]string
		require.NoError(t, json.Unmarshal(b, &body))
		require.Equal(t, field, body["replaced_by"])
		require.Contains(t, body["error"], field)
	}
}

func TestSignedURLs(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, Config{SignKey: []byte("test key")})
	key := ta.createPart("part")
	data := imagetest.JPEG(64, 64)
	at := ta.uploadOK(key, "p", "p.jpg", "image/jpeg", data)
	signed := casurl.Builder{Signer: casurl.NewSigner([]byte("test key"))}
	h := cas.SumBytes(data)
	require.Equal(t, mustURL(t)(signed.Download(h, "image/jpeg", "p.jpg")), *at.DownloadURL)
	require.Equal(t, mustURL(t)(signed.Thumbnail(h, 150)), *at.ThumbnailURL)
	require.Contains(t, *at.DownloadURL, "sig=")

	status, _, body := ta.get(*at.DownloadURL)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, data, body)
	status, _, _ = ta.get(*at.ThumbnailURL)
	require.Equal(t, http.StatusOK, status)

	// Unsigned or tampered URLs are refused.
	status, _, _ = ta.get(mustURL(t)(casurl.Builder{}.Download(h, "image/jpeg", "p.jpg")))
	require.Equal(t, http.StatusForbidden, status)
	tampered := strings.Replace(*at.ThumbnailURL, "thumbnail=150", "thumbnail=151", 1)
	require.NotEqual(t, *at.ThumbnailURL, tampered)
	status, _, _ = ta.get(tampered)
	require.Equal(t, http.StatusForbidden, status)
}

func TestUploadTooLarge(t *testing.T) {
	t.Parallel()
	const limit = 4096
	ta := newTestApp(t, Config{MaxUpload: limit})
	key := ta.createPart("part")

	// Exactly at the limit is fine.
	ok := bytes.Repeat([]byte{'a'}, limit)
	ta.uploadOK(key, "ok", "ok.bin", "", ok)

	for _, n := range []int{limit + 1, limit + multipartSlack + 10, 4 * limit << 10} {
		status, b := ta.upload(key, "big", "big.bin", "", bytes.Repeat([]byte{'b'}, n))
		require.Equal(t, http.StatusRequestEntityTooLarge, status, "size %d: %s", n, b)
		requireJSONError(t, b)
	}
	require.Equal(t, 1, ta.rowCount("attachments"))
	require.Equal(t, []string{cas.SumBytes(ok).Key()}, keys(t, ta.backend, ""), "nothing of the large uploads stored")
}

// TestUploadFailedPutLeavesNoRow: when the store fails, the client gets a
// 500 and no row points at a missing object.
func TestUploadFailedPutLeavesNoRow(t *testing.T) {
	t.Parallel()
	fault := faulty.New(memstore.New())
	ta := newTestApp(t, Config{Backend: fault})
	key := ta.createPart("part")
	fault.SetFailRate(1, faulty.MethodPut)
	status, b := ta.upload(key, "p", "p.jpg", "image/jpeg", imagetest.JPEG(30, 30))
	require.Equal(t, http.StatusInternalServerError, status)
	require.JSONEq(t, `{"error": "internal error"}`, string(b), "backend errors do not leak")
	require.Equal(t, 0, ta.rowCount("attachments"))
	require.Empty(t, keys(t, fault.Inner(), ""))

	fault.ClearFaults()
	ta.uploadOK(key, "p", "p.jpg", "image/jpeg", imagetest.JPEG(30, 30))
	require.Equal(t, 1, ta.rowCount("attachments"))
}

// faultyFS is an app over a real fsstore (so uploads write real temp
// files) behind a FaultBackend's staging view, logging into a buffer.
type faultyFS struct {
	*testApp
	fault *faulty.Backend
	dir   string
	log   *syncBuffer
}

func newFaultyFS(t *testing.T) *faultyFS {
	t.Helper()
	dir := t.TempDir()
	fs, err := fsstore.New(filepath.Join(dir, "blobs"))
	require.NoError(t, err)
	fault := faulty.New(fs)
	var log syncBuffer
	ta := serveApp(t, Config{DataDir: dir, Backend: fault.Staging(), Logger: slog.New(slog.NewTextHandler(&log, nil))})
	return &faultyFS{testApp: ta, fault: fault, dir: dir, log: &log}
}

// requireNothingLeft asserts that no row, no object and no temp file is
// left of the failed uploads.
func (f *faultyFS) requireNothingLeft(t *testing.T) {
	t.Helper()
	require.Equal(t, 0, f.rowCount("attachments"))
	require.Empty(t, keys(t, f.fault.Inner(), ""))
	require.Empty(t, tempFiles(t, f.dir))
}

// TestUploadDiskFull: a backend out of space gets 507 with a clear message
// (API and page), logged as an error, and leaves nothing behind. Once
// there is room again the same upload works.
func TestUploadDiskFull(t *testing.T) {
	t.Parallel()
	f := newFaultyFS(t)
	key := f.createPart("part")
	full := fmt.Errorf("fsstore: link %s: no space left on device: %w", "cas/…", cas.ErrNoSpace)
	f.fault.SetError(full)
	data := imagetest.JPEG(300, 200)
	for _, method := range []string{faulty.MethodCommit, faulty.MethodStage} {
		f.fault.SetFailRate(1, method)
		status, b := f.upload(key, "p", "p.jpg", "image/jpeg", data)
		require.Equal(t, http.StatusInsufficientStorage, status, "%s: body: %s", method, b)
		require.JSONEq(t, `{"error": "insufficient storage: the server has no room for this file; nothing was stored"}`, string(b))
		f.requireNothingLeft(t)
	}
	// The page's upload form says the same in plain text.
	body, ct := multipartBody(t, "p", "p.jpg", "image/jpeg", data)
	status, b := f.do("POST", "/parts/"+key+"/attachments", ct, body)
	require.Equal(t, http.StatusInsufficientStorage, status)
	require.Contains(t, string(b), "insufficient storage")
	f.requireNothingLeft(t)
	require.Contains(t, f.log.String(), "level=ERROR msg=\"storage full\"")
	require.Contains(t, f.log.String(), "no space left on device")

	f.fault.ClearFaults()
	f.uploadOK(key, "p", "p.jpg", "image/jpeg", data)
	require.Equal(t, 1, f.rowCount("attachments"))
}

// TestUploadBackendUnavailable: a backend that does not answer in time
// (an error wrapping cas.ErrUnavailable, or a backend's own deadline) gets
// 503 with Retry-After, is logged at WARN with the backend's error (which
// names the backend and the operation), and leaves nothing behind.
func TestUploadBackendUnavailable(t *testing.T) {
	t.Parallel()
	errs := map[string]error{
		"unavailable": fmt.Errorf("s3store: PutObject bucket b: no answer within 10s: %w", cas.ErrUnavailable),
		"deadline":    fmt.Errorf("s3store: HeadObject bucket b: %w", context.DeadlineExceeded),
	}
	for name, injected := range errs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFaultyFS(t)
			key := f.createPart("part")
			f.fault.SetError(injected)
			f.fault.SetFailRate(1, faulty.MethodCommit)
			body, ct := multipartBody(t, "p", "p.pdf", "application/pdf", imagetest.PDF())
			req, err := http.NewRequestWithContext(t.Context(), "POST", f.srv.URL+"/api/parts/"+key+"/attachments", body)
			require.NoError(t, err)
			req.Header.Set("Content-Type", ct)
			resp, err := f.srv.Client().Do(req)
			require.NoError(t, err)
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "body: %s", b)
			require.Equal(t, retryAfter, resp.Header.Get("Retry-After"))
			require.JSONEq(t, `{"error": "the storage backend did not answer in time; nothing was stored; try again later"}`, string(b))
			f.requireNothingLeft(t)
			logs := f.log.String()
			require.Contains(t, logs, "level=WARN msg=\"storage backend did not answer in time\"")
			require.Contains(t, logs, injected.Error(), "the log names the backend and the operation")
			require.NotContains(t, logs, "level=ERROR")

			// The page's upload form answers the same way.
			body, ct = multipartBody(t, "p", "p.pdf", "application/pdf", imagetest.PDF())
			status, b := f.do("POST", "/parts/"+key+"/attachments", ct, body)
			require.Equal(t, http.StatusServiceUnavailable, status, "body: %s", b)
			f.requireNothingLeft(t)
		})
	}
}

func TestHostileRequests(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, Config{})
	key := ta.createPart("part")
	pdf := imagetest.PDF()

	mp := func(title, filename, ct string, data []byte) (string, string) {
		body, typ := multipartBody(t, title, filename, ct, data)
		b, err := io.ReadAll(body)
		require.NoError(t, err)
		return string(b), typ
	}
	okBody, okType := mp("t", "f.pdf", "application/pdf", pdf)
	bidiBody, bidiType := mp("t", "invoice\u202efdp.exe", "", pdf)
	longBody, longType := mp("t", strings.Repeat("é", 200)+".pdf", "", pdf)
	ctrlTitle, ctrlType := mp("bad\x00title", "f.pdf", "", pdf)
	noFile := "--XX\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nhello\r\n--XX--\r\n"
	twoFiles := "--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\naaa\r\n" +
		"--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"b\"\r\n\r\nbbb\r\n--XX--\r\n"
	attachments := "/api/parts/" + key + "/attachments"
	nulPart := func(header string) string {
		return "--XX\r\n" + header + "\r\n\r\naaa\r\n--XX--\r\n"
	}

	tests := []struct {
		name, method, path, contentType, body string
		want                                  int
	}{
		{"part: not JSON", "POST", "/api/parts", "application/json", `{"description":`, 400},
		{"part: not an object", "POST", "/api/parts", "application/json", `["x"]`, 400},
		{"part: unknown field", "POST", "/api/parts", "application/json", `{"description":"x","key":"mine"}`, 400},
		{"part: two values", "POST", "/api/parts", "application/json", `{"description":"x"}{"description":"y"}`, 400},
		{"part: missing description", "POST", "/api/parts", "application/json", `{}`, 400},
		{"part: blank description", "POST", "/api/parts", "application/json", `{"description":"   "}`, 400},
		{"part: description type", "POST", "/api/parts", "application/json", `{"description":5}`, 400},
		{"part: control character", "POST", "/api/parts", "application/json", `{"description":"a\u0007b"}`, 400},
		{"part: too long", "POST", "/api/parts", "application/json", `{"description":"` + strings.Repeat("x", 1001) + `"}`, 400},
		{"part: huge body", "POST", "/api/parts", "application/json", `{"description":"` + strings.Repeat("x", 100<<10) + `"}`, 413},
		{"part: form encoding", "POST", "/api/parts", "application/x-www-form-urlencoded", `description=x`, 415},
		{"part: no content type", "POST", "/api/parts", "", `{"description":"x"}`, 415},
		{"upload: unknown part", "POST", "/api/parts/nosuchpart/attachments", okType, okBody, 404},
		{"upload: text/plain", "POST", attachments, "text/plain", "hello", 415},
		{"upload: bad boundary", "POST", attachments, "multipart/form-data", okBody, 400},
		{"upload: truncated", "POST", attachments, okType, okBody[:len(okBody)/2], 400},
		{"upload: no file", "POST", attachments, "multipart/form-data; boundary=XX", noFile, 400},
		{"upload: two files", "POST", attachments, "multipart/form-data; boundary=XX", twoFiles, 400},
		{"upload: bidi filename", "POST", attachments, bidiType, bidiBody, 400},
		{"upload: filename over 255 bytes", "POST", attachments, longType, longBody, 400},
		{"upload: control character in title", "POST", attachments, ctrlType, ctrlTitle, 400},
		{"upload: NUL in part header name", "POST", attachments, "multipart/form-data; boundary=XX",
			nulPart("Content-Disposition: form-data; name=\"file\"; filename=\"a\"\r\nX-A\x00: b"), 400},
		{"upload: NUL in part header value", "POST", attachments, "multipart/form-data; boundary=XX",
			nulPart("Content-Disposition: form-data; name=\"file\"; filename=\"a\"\r\nContent-Type: image/png\x00"), 400},
		{"upload: NUL in filename", "POST", attachments, "multipart/form-data; boundary=XX",
			nulPart("Content-Disposition: form-data; name=\"file\"; filename=\"a\x00b\""), 400},
		{"upload: NUL in field name", "POST", attachments, "multipart/form-data; boundary=XX",
			nulPart("Content-Disposition: form-data; name=\"ti\x00tle\""), 400},
		{"upload: NUL in title part header", "POST", attachments, "multipart/form-data; boundary=XX",
			"--XX\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nt\r\n" +
				nulPart("Content-Disposition: form-data\x00; name=\"file\"; filename=\"a\""), 400},
		{"parts: limit 0", "GET", "/api/parts?limit=0", "", "", 400},
		{"parts: limit over 1000", "GET", "/api/parts?limit=1001", "", "", 400},
		{"parts: limit not a number", "GET", "/api/parts?limit=ten", "", "", 400},
		{"parts: negative limit", "GET", "/api/parts?limit=-1", "", "", 400},
		{"parts: cursor not base64", "GET", "/api/parts?after=%25%00", "", "", 400},
		{"parts: cursor without key", "GET", "/api/parts?after=" + encodeCursor(partCursor{created: "2026-01-01T00:00:00Z"}), "", "", 400},
		{"parts: cursor with bad time", "GET", "/api/parts?after=" + encodeCursor(partCursor{created: "yesterday", key: "abc"}), "", "", 400},
		{"parts: cursor with padding", "GET", "/api/parts?after=" + encodeCursor(partCursor{created: "2026-01-01T00:00:00Z", key: "ab"}) + "==", "", "", 400},
		{"url: javascript", "POST", attachments, "application/json", `{"title":"x","url":"javascript:alert(1)"}`, 400},
		{"url: relative", "POST", attachments, "application/json", `{"title":"x","url":"/etc/passwd"}`, 400},
		{"url: missing", "POST", attachments, "application/json", `{"title":"x"}`, 400},
		{"url: too long", "POST", attachments, "application/json", `{"title":"x","url":"https://e.com/` + strings.Repeat("a", 2000) + `"}`, 400},
		{"cover: not JSON", "PUT", "/api/parts/" + key + "/cover", "application/json", `nope`, 400},
		{"cover: missing attachment", "PUT", "/api/parts/" + key + "/cover", "application/json", `{"attachment_id": 12345}`, 404},
		{"copy: bad id", "POST", attachments + "/-1/copy", "application/json", `{"target_part_key":"x"}`, 404},
		{"delete: huge id", "DELETE", attachments + "/99999999999999999999", "", "", 404},
		{"unknown endpoint", "GET", "/api/nothing", "", "", 404},
		{"unknown method", "DELETE", "/api/parts/" + key, "", "", 405},
		{"wrong method", "PATCH", "/api/parts", "application/json", `{}`, 405},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, b := ta.do(tc.method, tc.path, tc.contentType, strings.NewReader(tc.body))
			require.Equal(t, tc.want, status, "body: %s", b)
			requireJSONError(t, b)
		})
	}
	// Nothing was written by any of them.
	require.Equal(t, 1, ta.rowCount("parts"))
	require.Equal(t, 0, ta.rowCount("attachments"))

	// The well-formed upload built alongside them works.
	status, b := ta.do("POST", attachments, okType, strings.NewReader(okBody))
	require.Equal(t, http.StatusCreated, status, "body: %s", b)
}

func TestContentType(t *testing.T) {
	t.Parallel()
	png := imagetest.PNG(4, 4)
	tests := []struct {
		declared string
		head     []byte
		want     string
	}{
		{"image/png", png, "image/png"},
		{"IMAGE/PNG", png, "image/png"},
		{"", png, "image/png"},
		{"application/octet-stream", png, "image/png"},
		{"not a type", png, "image/png"},
		{"image/png; x=\"\r\n\"", png, "image/png"},
		{"text/plain; charset=utf-8", []byte("hi"), "text/plain; charset=utf-8"},
		{"application/x-" + strings.Repeat("a", 300), []byte("%PDF-1.4"), "application/pdf"},
		{"", nil, "text/plain; charset=utf-8"},
	}
	for _, tc := range tests {
		got := contentType(tc.declared, tc.head)
		require.Equal(t, tc.want, got, "declared %q", tc.declared)
		require.True(t, validURLContentType(got))
	}
}

// FuzzContentType: whatever a client declares, the stored content type is
// one a casurl URL can carry.
func FuzzContentType(f *testing.F) {
	for _, s := range []string{"", "image/png", "text/html; charset=utf-8", "a/b; c=\"\xff\"", "x/" + strings.Repeat("y", 300), "\x00/\x00"} {
		f.Add(s, []byte("%PDF-1.4"))
	}
	f.Fuzz(func(t *testing.T, declared string, head []byte) {
		got := contentType(declared, head)
		if !validURLContentType(got) {
			t.Fatalf("contentType(%q) = %q, not valid in a URL", declared, got)
		}
	})
}

// FuzzCleanFilename: an accepted filename is one casurl accepts.
func FuzzCleanFilename(f *testing.F) {
	for _, s := range []string{"", "a.pdf", "..", "invoice\u202efdp.exe", "a\x00b", strings.Repeat("é", 200), " x ", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got, err := cleanFilename(name)
		if err != nil {
			return
		}
		if _, err := (casurl.Builder{}).Download(cas.Hash{}, "a/b", got); err != nil {
			t.Fatalf("cleanFilename(%q) = %q, which casurl rejects: %v", name, got, err)
		}
	})
}

// FuzzCreatePart sends arbitrary bodies to POST /api/parts: the answer is
// 201 with a row, or a JSON 4xx error with no row; never a 500.
func FuzzCreatePart(f *testing.F) {
	for _, s := range []string{`{"description":"x"}`, `{}`, `{"description":null}`, `{"description":"\u0000"}`, `[`, `{"description":"a"}x`, ""} {
		f.Add(s)
	}
	ta := newTestApp(f, Config{})
	h := ta.Handler()
	f.Fuzz(func(t *testing.T, body string) {
		before := countRows(t, ta.db, "parts")
		req := httptest.NewRequestWithContext(t.Context(), "POST", "/api/parts", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		after := countRows(t, ta.db, "parts")
		switch rec.Code {
		case http.StatusCreated:
			var p partJSON
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p))
			require.Equal(t, before+1, after)
			require.NotEmpty(t, p.Description)
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			requireJSONError(t, rec.Body.Bytes())
			require.Equal(t, before, after)
		default:
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
	})
}

// FuzzUploadBody sends arbitrary multipart bodies (boundary XX) to the
// upload endpoint: the answer is 201 with a row, or a JSON 4xx error with
// no row; never a 500.
func FuzzUploadBody(f *testing.F) {
	part := func(header, data string) string {
		return "--XX\r\n" + header + "\r\n\r\n" + data + "\r\n"
	}
	file := `Content-Disposition: form-data; name="file"; filename="a.txt"`
	for _, s := range []string{
		part(file, "hello") + "--XX--\r\n",
		part(`Content-Disposition: form-data; name="title"`, "t") + part(file, "x") + "--XX--\r\n",
		part(file+"\r\nX-A\x00: b", "x") + "--XX--\r\n",
		part(file+"\r\nContent-Type: image/png\x00", "x") + "--XX--\r\n",
		part(`Content-Disposition: form-data; name="file"; filename="a\x00b"`, "x") + "--XX--\r\n",
		part(file, "x"),
		"--XX\r\n" + file,
		"--XX--\r\n",
		"",
	} {
		f.Add(s)
	}
	ta := newTestApp(f, Config{MaxUpload: 1024})
	key := ta.createPart("part")
	h := ta.Handler()
	f.Fuzz(func(t *testing.T, body string) {
		before := countRows(t, ta.db, "attachments")
		req := httptest.NewRequestWithContext(t.Context(), "POST", "/api/parts/"+key+"/attachments", strings.NewReader(body))
		req.Header.Set("Content-Type", "multipart/form-data; boundary=XX")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		after := countRows(t, ta.db, "attachments")
		switch rec.Code {
		case http.StatusCreated:
			require.Equal(t, before+1, after)
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			requireJSONError(t, rec.Body.Bytes())
			require.Equal(t, before, after)
		default:
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
	})
}

func requireJSONError(t *testing.T, b []byte) {
	t.Helper()
	var e map[string]string
	require.NoError(t, json.Unmarshal(b, &e), "body: %s", b)
	require.NotEmpty(t, e["error"])
}

func mapKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// insertParts inserts parts directly, at the given creation times (many
// equal), in the order given, and returns every part's key in the order
// the API lists them: created_at, then key.
func (ta *testApp) insertParts(times []time.Time) []string {
	ta.t.Helper()
	for i, at := range times {
		_, err := insertPart(ta.t.Context(), ta.db, fmt.Sprintf("part %d", i), at)
		require.NoError(ta.t, err)
	}
	rows, err := ta.db.QueryContext(ta.t.Context(), `SELECT "key" FROM parts ORDER BY created_at, "key"`)
	require.NoError(ta.t, err)
	defer rows.Close()
	var want []string
	for rows.Next() {
		var k string
		require.NoError(ta.t, rows.Scan(&k))
		want = append(want, k)
	}
	require.NoError(ta.t, rows.Err())
	return want
}

// sameTimes returns n creation times drawn from only a few distinct
// instants, out of order, so that most parts share a timestamp with others.
func sameTimes(n int) []time.Time {
	base := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	instants := []time.Time{base.Add(2 * time.Second), base, base.Add(time.Millisecond), base.Add(time.Second)}
	ts := make([]time.Time, n)
	for i := range ts {
		ts[i] = instants[(i*7)%len(instants)]
	}
	return ts
}

var nextLinkRE = regexp.MustCompile(`^<(/api/parts\?[^>]+)>; rel="next"$`)

// pageThrough follows GET /api/parts from first through its Link headers
// and returns the keys of every page.
func (ta *testApp) pageThrough(first string, limit int) [][]string {
	ta.t.Helper()
	var pages [][]string
	for u := first; u != ""; {
		require.Less(ta.t, len(pages), 10000, "the pages do not end")
		status, hdr, b := ta.get(u)
		require.Equal(ta.t, http.StatusOK, status, "%s: %s", u, b)
		var parts []partJSON
		require.NoError(ta.t, json.Unmarshal(b, &parts))
		require.LessOrEqual(ta.t, len(parts), limit)
		var page []string
		for _, p := range parts {
			page = append(page, p.Key)
		}
		pages = append(pages, page)
		u = ""
		if link := hdr.Get("Link"); link != "" {
			m := nextLinkRE.FindStringSubmatch(link)
			require.NotNil(ta.t, m, "Link: %s", link)
			require.Len(ta.t, parts, limit, "a page before the last is full")
			u = m[1]
		}
	}
	return pages
}

// TestListPartsPaginated pages through parts with many equal creation
// times at several page sizes: every part comes once, in order, with no
// gaps; only the last page has no Link header.
func TestListPartsPaginated(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, d testDB) {
		ta := newTestApp(t, Config{DB: d.dsn})
		want := ta.insertParts(sameTimes(23))
		for _, limit := range []int{1, 2, 4, 7, 22, 23, 24, 1000} {
			pages := ta.pageThrough("/api/parts?limit="+strconv.Itoa(limit), limit)
			require.Len(t, pages, (len(want)+limit-1)/limit, "limit %d", limit)
			var got []string
			for _, p := range pages {
				got = append(got, p...)
			}
			require.Equal(t, want, got, "limit %d", limit)
		}
	})
}

// TestListPartsDefaultPage: without a limit a page holds 100 parts, and a
// part created while a client pages through comes on a later page, once.
func TestListPartsDefaultPage(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, Config{})
	want := ta.insertParts(sameTimes(150))

	status, hdr, b := ta.get("/api/parts")
	require.Equal(t, http.StatusOK, status)
	var first []partJSON
	require.NoError(t, json.Unmarshal(b, &first))
	require.Len(t, first, defaultPageSize)
	m := nextLinkRE.FindStringSubmatch(hdr.Get("Link"))
	require.NotNil(t, m, "Link: %q", hdr.Get("Link"))
	require.Contains(t, m[1], "limit=100")

	late := ta.createPart("created while paging") // now: after every seeded part
	rest := ta.pageThrough(m[1], defaultPageSize)
	require.Len(t, rest, 1)
	got := make([]string, 0, len(want)+1)
	for _, p := range first {
		got = append(got, p.Key)
	}
	got = append(got, rest[0]...)
	require.Equal(t, append(want, late), got)
}

// TestUploadBackendErrorIsNotTheClients: a store error that wraps
// io.ErrUnexpectedEOF or reads like a multipart error (an S3 transport's
// "unexpected EOF", the checked layer's short read) is the backend's: a 500
// whose body never quotes it, not a 400 "bad multipart body" naming the
// bucket.
func TestUploadBackendErrorIsNotTheClients(t *testing.T) {
	t.Parallel()
	f := newFaultyFS(t)
	key := f.createPart("part")
	data := imagetest.JPEG(300, 200)
	for _, injected := range []error{
		fmt.Errorf("s3store: PutObject secret-bucket/cas/x: %w", io.ErrUnexpectedEOF),
		fmt.Errorf("multipart: secret-bucket said no"),
	} {
		f.fault.SetError(injected)
		f.fault.SetFailRate(1, faulty.MethodStage)
		status, b := f.upload(key, "p", "p.jpg", "image/jpeg", data)
		require.Equal(t, http.StatusInternalServerError, status, "%v: body: %s", injected, b)
		require.NotContains(t, string(b), "secret-bucket")
		require.NotContains(t, string(b), "multipart")
		f.requireNothingLeft(t)
		f.fault.ClearFaults()
	}
	// A body the client cuts off is still the client's 400.
	body, ct := multipartBody(t, "p", "p.jpg", "image/jpeg", data)
	whole, err := io.ReadAll(body)
	require.NoError(t, err)
	status, b := f.do("POST", "/api/parts/"+key+"/attachments", ct, bytes.NewReader(whole[:len(whole)-100]))
	require.Equal(t, http.StatusBadRequest, status, "body: %s", b)
	require.Contains(t, string(b), "bad multipart body")
	f.requireNothingLeft(t)
}
