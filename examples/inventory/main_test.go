package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/s3store"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/internal/testutil/imagetest"
	"github.com/casa-go/casa/internal/testutil/s3test"
)

func TestParseFlags(t *testing.T) {
	t.Parallel()
	o, err := parseFlags(nil, io.Discard)
	require.NoError(t, err)
	require.Equal(t, options{addr: "127.0.0.1:8080", data: "inventory-data", maxUpload: 50 << 20, bodyStall: 30 * time.Second, thumbTime: 10 * time.Second,
		migrate: MigrateOnline}, o)

	o, err = parseFlags([]string{"-addr", ":0", "-data", "/tmp/x", "-db", "postgres://h/db", "-thumb-cache", "local", "-s3-bucket", "b", "-s3-endpoint", "http://localhost:9000",
		"-s3-region", "eu-west-1", "-s3-path-style", "-sign-key", "k", "-max-upload", "1024", "-body-stall", "1500ms", "-thumb-timeout", "1m", "-seed-legacy", "3",
		"-cleanup", "-final", "-migrate-only", "-migrate", "off", "-migrate-rate", "25"}, io.Discard)
	require.NoError(t, err)
	require.Equal(t, options{addr: ":0", data: "/tmp/x", db: "postgres://h/db", thumbCache: ThumbCacheLocal, s3Bucket: "b", s3Endpoint: "http://localhost:9000",
		s3Region: "eu-west-1", s3PathStyle: true, signKey: "k", maxUpload: 1024, bodyStall: 1500 * time.Millisecond, thumbTime: time.Minute, seedLegacy: 3,
		cleanup: true, final: true, migrateOnly: true, migrate: MigrateOff, migrateRate: 25}, o)

	bad := [][]string{
		{"-max-upload", "0"},
		{"-max-upload", "-5"},
		{"-max-upload", "lots"},
		{"-seed-legacy", "-1"},
		{"-body-stall", "0"},
		{"-body-stall", "-1s"},
		{"-body-stall", "30"},
		{"-thumb-timeout", "0"},
		{"-thumb-timeout", "-2s"},
		{"-s3-endpoint", "http://x"},
		{"-s3-path-style"},
		{"-s3-create-bucket"},
		{"-nope"},
		{"stray"},
		{"-migrate", "sometimes"},
		{"-migrate", ""},
		{"-migrate-rate", "-1"},
		{"-thumb-cache", "disk"},
		{"-thumb-cache", "Shared"},
		{"-revert", "-final"},
		{"-revert", "-cleanup"},
		{"-revert", "-migrate-only"},
	}
	for _, args := range bad {
		_, err := parseFlags(args, io.Discard)
		require.Error(t, err, "%q", args)
	}
	_, err = parseFlags([]string{"-h"}, io.Discard)
	require.ErrorIs(t, err, flag.ErrHelp)
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestRunServesAndShutsDown runs the command as `go run` would (on a free
// port), uses it, and stops it as SIGINT would: run returns nil.
func TestRunServesAndShutsDown(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-data", t.TempDir(), "-seed-legacy", "1"}, &out)
	}()

	urlRE := regexp.MustCompile(`url=(http://127\.0\.0\.1:\d+)/`)
	var base string
	require.Eventually(t, func() bool {
		m := urlRE.FindStringSubmatch(out.String())
		if m != nil {
			base = m[1]
		}
		return m != nil
	}, 20*time.Second, 10*time.Millisecond, "no serving line in:\n%s", &out)
	// Online by default: serving starts at once, the migration finishes
	// in the background.
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "background migration complete") },
		20*time.Second, 10*time.Millisecond, "no migration in:\n%s", &out)

	resp, err := http.Get(base + "/")
	require.NoError(t, err)
	page, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(page), "NE555 timer, DIP-8 (legacy #1)")
	require.Contains(t, string(page), `class="cover-thumb" src="/api/cas/`)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	require.Contains(t, out.String(), "shutting down")
	_, err = http.Get(base + "/")
	require.Error(t, err, "the listener is closed")
}

func TestRunRefusesBadFlags(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	err := run(t.Context(), []string{"-max-upload", "0"}, &out)
	require.ErrorContains(t, err, "-max-upload")
	err = run(t.Context(), []string{"-addr", "256.0.0.1:bad", "-data", t.TempDir()}, &out)
	require.Error(t, err)
}

// TestS3Backend runs the app with its blobs in S3, end to end: the real
// aws-sdk-go-v2 client against gofakes3 (in the test process) and against
// SeaweedFS (a real server, .ci/start-servers.sh; skipped locally without
// it). Legacy data is seeded into the bucket and migrated at startup, then
// a file is uploaded, listed, downloaded, and its thumbnail generated and
// cached beside the blobs (the shared cache).
func TestS3Backend(t *testing.T) {
	t.Parallel()
	servers := []struct {
		name    string
		backend func(t *testing.T) cas.Backend
	}{
		{"gofakes3", func(t *testing.T) cas.Backend {
			srv := s3test.New(t)
			return s3store.New(srv.Client, srv.Bucket)
		}},
		{"seaweedfs", func(t *testing.T) cas.Backend {
			rs := testutil.NewRealS3(t)
			return s3store.New(rs.Client, rs.Bucket, s3store.WithKeyPrefix(rs.Prefix))
		}},
	}
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			t.Parallel()
			b := srv.backend(t)
			dir := t.TempDir()
			seed(t, dir, b, 2)
			ta := newTestApp(t, Config{DataDir: dir, Backend: b, Cleanup: true, Final: true, ThumbCache: ThumbCacheShared})
			require.Equal(t, 4, ta.Migration.Report.Migrated)
			require.Equal(t, 4, ta.Migration.Cleanup.Deleted)

			key := ta.createPart("in S3")
			data := imagetest.JPEG(300, 200)
			at := ta.uploadOK(key, "photo", "photo.jpg", "image/jpeg", data)
			listed := ta.attachments(key)
			require.Len(t, listed, 1)
			require.Equal(t, at.DownloadURL, listed[0].DownloadURL)
			status, _, body := ta.get(*at.DownloadURL)
			require.Equal(t, http.StatusOK, status)
			require.Equal(t, data, body)
			status, hdr, thumb := ta.get(*at.ThumbnailURL)
			require.Equal(t, http.StatusOK, status)
			require.Equal(t, "image/jpeg", hdr.Get("Content-Type"))

			// Every object is a CAS object (3 photos, 1 datasheet) but
			// the thumbnail, cached beside them with the same bytes.
			var casKeys, thumbKeys []string
			for _, k := range keys(t, b, "") {
				if cas.IsKey(k) {
					casKeys = append(casKeys, k)
				} else {
					thumbKeys = append(thumbKeys, k)
				}
			}
			require.Len(t, casKeys, 4)
			require.Len(t, thumbKeys, 1)
			require.True(t, strings.HasPrefix(thumbKeys[0], cas.ThumbnailPrefix), thumbKeys[0])
			require.Equal(t, thumb, readObject(t, b, thumbKeys[0]))
		})
	}
}

// TestS3Flags drives -s3-bucket, -s3-endpoint, -s3-region and
// -s3-path-style with credentials from the standard AWS environment
// variables, as a user would against MinIO.
func TestS3Flags(t *testing.T) {
	srv := s3test.New(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")

	var out bytes.Buffer
	err := run(t.Context(), []string{"-data", t.TempDir(), "-s3-bucket", srv.Bucket, "-s3-endpoint", srv.URL,
		"-s3-region", "us-east-1", "-s3-path-style", "-seed-legacy", "1", "-migrate-only"}, &out)
	require.NoError(t, err, "output:\n%s", &out)
	require.Contains(t, out.String(), "2 migrated")
	var legacy, casKeys int
	for _, k := range srv.ObjectKeys(t) {
		if cas.IsKey(k) {
			casKeys++
		} else {
			legacy++
		}
	}
	require.Equal(t, 2, casKeys)
	require.Equal(t, 2, legacy, "no -cleanup: the legacy objects stay")

	// A missing bucket stops the app at start-up, before any upload or
	// migration, with an error that names the bucket and the way out.
	out.Reset()
	err = run(t.Context(), []string{"-data", t.TempDir(), "-s3-bucket", "no-such-bucket", "-s3-endpoint", srv.URL,
		"-s3-path-style", "-seed-legacy", "1", "-migrate-only"}, &out)
	require.ErrorIs(t, err, cas.ErrNotFound)
	require.ErrorContains(t, err, `S3 bucket "no-such-bucket" does not exist`)
	require.ErrorContains(t, err, "-s3-create-bucket")
	require.NotContains(t, out.String(), "migrate:", "nothing ran against the missing bucket")

	// -s3-create-bucket creates it, for demos, and the app runs.
	err = run(t.Context(), []string{"-data", t.TempDir(), "-s3-bucket", "demo-bucket", "-s3-endpoint", srv.URL,
		"-s3-path-style", "-s3-create-bucket", "-seed-legacy", "1", "-migrate-only"}, &out)
	require.NoError(t, err, "output:\n%s", &out)
	require.Contains(t, out.String(), "2 migrated")
}

// startRun runs the command in the test process (as `go run` would) with
// args and -addr 127.0.0.1:0, and returns its base URL once it serves.
// It is stopped, as SIGINT would, when the test ends.
func startRun(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, append([]string{"-addr", "127.0.0.1:0"}, args...), &out) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err, "output:\n%s", &out)
		case <-time.After(15 * time.Second):
			t.Error("run did not return after cancel")
		}
	})
	var base string
	require.Eventually(t, func() bool {
		m := servingRE.FindStringSubmatch(out.String())
		if m != nil {
			base = m[1]
		}
		return m != nil
	}, 20*time.Second, 10*time.Millisecond, "no serving line in:\n%s", &out)
	return base
}

// TestS3SharesThumbnailsByDefault: with -s3-bucket, a thumbnail is cached
// in the bucket (where other replicas find it) unless -thumb-cache local
// says otherwise.
func TestS3SharesThumbnailsByDefault(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	for _, c := range []struct {
		args   []string
		thumbs int
	}{
		{nil, 1},
		{[]string{"-thumb-cache", "shared"}, 1},
		{[]string{"-thumb-cache", "local"}, 0},
	} {
		srv := s3test.New(t)
		base := startRun(t, append([]string{"-data", t.TempDir(), "-s3-bucket", srv.Bucket, "-s3-endpoint", srv.URL,
			"-s3-region", "us-east-1", "-s3-path-style"}, c.args...)...)
		resp, err := http.Post(base+"/api/parts", "application/json", strings.NewReader(`{"description":"thumbs"}`))
		require.NoError(t, err)
		var p partJSON
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&p))
		resp.Body.Close()
		body, ct := multipartBody(t, "photo", "photo.jpg", "image/jpeg", imagetest.JPEG(300, 200))
		resp, err = http.Post(base+"/api/parts/"+p.Key+"/attachments", ct, body)
		require.NoError(t, err)
		var at attachmentJSON
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&at))
		resp.Body.Close()
		require.NotNil(t, at.ThumbnailURL)
		resp, err = http.Get(base + *at.ThumbnailURL)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		n := 0
		for _, k := range srv.ObjectKeys(t) {
			if strings.HasPrefix(k, cas.ThumbnailPrefix) {
				n++
			}
		}
		require.Equal(t, c.thumbs, n, "%q", c.args)
	}
}
