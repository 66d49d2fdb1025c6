package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/internal/testutil/s3test"
)

// TestHungS3Backend is the hung-backend defect end to end: the command runs
// (as `go run` would) on an S3 server that then stops answering
// (connections accepted, no answers). An upload and a blob GET must answer
// with 503 + Retry-After within a bound set by -s3-op-timeout and
// -s3-stall-timeout, instead of hanging until the client gives up; once the
// server answers again the same requests succeed.
func TestHungS3Backend(t *testing.T) {
	srv := s3test.New(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-data", t.TempDir(),
			"-s3-bucket", srv.Bucket, "-s3-endpoint", srv.URL, "-s3-region", "us-east-1", "-s3-path-style",
			"-s3-op-timeout", "300ms", "-s3-stall-timeout", "300ms"}, &out)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("run did not return after cancel")
		}
	})
	urlRE := regexp.MustCompile(`url=(http://127\.0\.0\.1:\d+)/`)
	var base string
	require.Eventually(t, func() bool {
		m := urlRE.FindStringSubmatch(out.String())
		if m != nil {
			base = m[1]
		}
		return m != nil
	}, 20*time.Second, 10*time.Millisecond, "no serving line in:\n%s", &out)

	// The client would wait far longer than the bound; the app must answer
	// first.
	client := &http.Client{Timeout: 30 * time.Second}
	var header http.Header // of the last answer
	do := func(method, path, contentType string, body io.Reader) (int, []byte, time.Duration) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, base+path, body)
		require.NoError(t, err)
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		start := time.Now()
		resp, err := client.Do(req)
		require.NoError(t, err, "no answer from the app")
		defer resp.Body.Close()
		header = resp.Header
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, b, time.Since(start)
	}
	upload := func(partKey string, data []byte) (int, []byte, time.Duration) {
		t.Helper()
		body, ct := multipartBody(t, "datasheet", "ds.txt", "text/plain", data)
		return do("POST", "/api/parts/"+partKey+"/attachments", ct, body)
	}

	status, b, _ := do("POST", "/api/parts", "application/json", strings.NewReader(`{"description":"hung"}`))
	require.Equal(t, http.StatusCreated, status, "body: %s", b)
	var part partJSON
	require.NoError(t, json.Unmarshal(b, &part))
	first := bytes.Repeat([]byte("stored before the hang\n"), 100)
	status, b, _ = upload(part.Key, first)
	require.Equal(t, http.StatusCreated, status, "body: %s", b)
	var at attachmentJSON
	require.NoError(t, json.Unmarshal(b, &at))
	require.NotNil(t, at.DownloadURL)

	// The bound: a few timeouts of 300 ms, with room for a loaded machine.
	// Before the fix both requests waited for the client's 30 s timeout.
	const bound = 5 * time.Second
	srv.Hang()
	second := bytes.Repeat([]byte("uploaded during the hang\n"), 100)
	status, b, took := upload(part.Key, second)
	require.Equal(t, http.StatusServiceUnavailable, status, "upload during the hang: %s", b)
	require.NotEmpty(t, header.Get("Retry-After"), "upload during the hang")
	require.Less(t, took, bound, "upload during the hang")
	t.Logf("during the hang: the upload answered %d in %v", status, took)
	status, b, took = do("GET", *at.DownloadURL, "", nil)
	require.Equal(t, http.StatusServiceUnavailable, status, "blob GET during the hang: %s", b)
	require.NotEmpty(t, header.Get("Retry-After"), "blob GET during the hang")
	require.Equal(t, "no-store", header.Get("Cache-Control"))
	require.Less(t, took, bound, "blob GET during the hang")
	// The logs name the backend and the operation that timed out.
	logs := out.String()
	// (The upload's first S3 call is the dedup HeadObject.)
	require.Regexp(t, `level=WARN msg="storage backend did not answer in time" method=POST .*s3store: HeadObject `+srv.Bucket+`/cas/[0-9a-f]{64}: no answer in 300ms`, logs)
	require.Regexp(t, `level=WARN msg="cashttp: backend unavailable" .*s3store: HeadObject `+srv.Bucket+`/cas/[0-9a-f]{64}: no answer in 300ms`, logs)
	t.Logf("during the hang: the blob GET answered %d in %v", status, took)

	// The app recovers when the server answers again.
	srv.Resume()
	require.Eventually(t, func() bool { return srv.Held() == 0 }, 10*time.Second, 10*time.Millisecond)
	status, b, _ = do("GET", *at.DownloadURL, "", nil)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, first, b)
	status, b, _ = upload(part.Key, second)
	require.Equal(t, http.StatusCreated, status, "body: %s", b)
	require.NoError(t, json.Unmarshal(b, &at))
	status, b, _ = do("GET", *at.DownloadURL, "", nil)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, second, b)
	require.Zero(t, srv.OpenUploads(t))
	status, b, _ = do("GET", "/api/parts/"+part.Key+"/attachments", "", nil)
	require.Equal(t, http.StatusOK, status)
	var atts []attachmentJSON
	require.NoError(t, json.Unmarshal(b, &atts))
	require.Len(t, atts, 2, "the upload that failed during the hang left no attachment")
}
