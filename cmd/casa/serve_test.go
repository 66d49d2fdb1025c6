package main_test

import (
	"bufio"
	"bytes"
	"image/jpeg"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/internal/testutil/imagetest"
)

// TestServe: serve answers content and thumbnail URLs over a -dir store,
// caches the thumbnail in the store, and exits 0 on SIGINT.
func TestServe(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	dir := filepath.Join(t.TempDir(), "store")
	png := imagetest.PNG(640, 480)
	c.ok("put", "-dir", dir, writeFile(t, c.dir, "photo.png", png))
	h := cas.SumBytes(png)

	cmd := exec.CommandContext(t.Context(), casaBin, "serve", "-dir", dir, "-addr", "127.0.0.1:0")
	cmd.Env = c.env
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	// "casa serve: serving http://ADDR/api/cas/"
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var base string
	select {
	case l := <-lines:
		_, base, _ = strings.Cut(l, "casa serve: serving ")
		require.NotEmpty(t, base, "first line: %q", l)
	case <-time.After(30 * time.Second):
		t.Fatal("serve printed no address")
	}
	go func() { // drain
		for range lines {
		}
	}()

	get := func(url string) (int, http.Header, []byte) {
		resp, err := http.Get(url)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, resp.Header, b
	}
	status, hdr, body := get(base + h.String() + "?content_type=image/png")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, png, body)
	require.Equal(t, `"`+h.String()+`"`, hdr.Get("ETag"))
	require.Contains(t, hdr.Get("Cache-Control"), "immutable")

	status, hdr, body = get(base + h.String() + "?thumbnail=100")
	require.Equal(t, http.StatusOK, status, "%s", body)
	require.Equal(t, "image/jpeg", hdr.Get("Content-Type"))
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(body))
	require.NoError(t, err)
	require.Equal(t, 100, max(cfg.Width, cfg.Height))
	_, err = os.Stat(filepath.Join(dir, "thumbnails"))
	require.NoError(t, err, "the thumbnail is cached in the store")

	status, _, _ = get(base + "nothex?content_type=image/png")
	require.Equal(t, http.StatusBadRequest, status)

	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, "exit code 0 after SIGINT")
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop on SIGINT")
	}
}

// TestHelp: `casa help` documents every command, the environment and the
// exit codes; `casa help COMMAND` and -h document a command's flags.
func TestHelp(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	r := c.ok("help")
	for _, w := range []string{
		"put", "get", "stat", "ls", "verify", "serve", "migrate", "cleanup",
		"CASA_DIR", "CASA_S3_BUCKET", "CASA_S3_ENDPOINT", "CASA_S3_REGION", "CASA_S3_PATH_STYLE", "CASA_S3_PREFIX", "CASA_DB",
		"AWS_ACCESS_KEY_ID", "store root", ".tmp",
		"0  success", "1  failure", "2  usage", "3  corruption", "4  not found",
	} {
		require.Contains(t, r.stdout, w)
	}
	r = c.ok("help", "migrate")
	for _, w := range []string{"Usage: casa migrate", "-dry-run", "-concurrency", "-revert", "-final", "-db", "-table", "-id-column", "-key-column", "-json", "-dir", "-s3-bucket"} {
		require.Contains(t, r.stdout, w)
	}
	r = c.ok("cleanup", "-h")
	require.Contains(t, r.stdout, "-min-age duration")
	require.Contains(t, r.stdout, "(default 24h0m0s)")
	r = c.run()
	require.Equal(t, 2, r.code, "no command: usage")
	require.Contains(t, r.stderr, "Commands:")
}
