package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/fsstore"
	"github.com/casa-go/casa/internal/testutil/faulty"
	"github.com/casa-go/casa/internal/testutil/imagetest"
)

// rawConn dials the test server and writes a request head and the first
// bytes of its body; the rest is up to the caller. It returns the
// connection and a reader for the answers.
func (ta *testApp) rawConn(head string, body []byte) (net.Conn, *bufio.Reader) {
	ta.t.Helper()
	u, err := url.Parse(ta.srv.URL)
	require.NoError(ta.t, err)
	conn, err := net.Dial("tcp", u.Host)
	require.NoError(ta.t, err)
	ta.t.Cleanup(func() { _ = conn.Close() })
	_, err = conn.Write(append([]byte(head), body...))
	require.NoError(ta.t, err)
	return conn, bufio.NewReader(conn)
}

// readAnswer reads one response from br within d, body included.
func readAnswer(t *testing.T, conn net.Conn, br *bufio.Reader, d time.Duration) (*http.Response, []byte) {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(d)))
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err, "no answer within %v", d)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	resp.Body.Close()
	return resp, b
}

// requireClosed asserts that the server closes conn within d: the read
// ends with EOF, or with a reset when the client had written after the
// server closed (a TCP RST answers data sent to a closed socket); a read
// deadline (the connection left open) fails.
func requireClosed(t *testing.T, conn net.Conn, br *bufio.Reader, d time.Duration) {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(d)))
	_, err := br.ReadByte()
	if !errors.Is(err, syscall.ECONNRESET) {
		require.ErrorIs(t, err, io.EOF, "the server keeps the connection open")
	}
}

// uploadHead is the head of a multipart upload of a file of declared
// Content-Length n, and the start of its body.
func uploadHead(host, partKey string, n int) (string, []byte) {
	start := "--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n\r\n"
	head := fmt.Sprintf("POST /api/parts/%s/attachments HTTP/1.1\r\nHost: %s\r\n"+
		"Content-Type: multipart/form-data; boundary=XX\r\nContent-Length: %d\r\n\r\n", partKey, host, n)
	return head, []byte(start)
}

// tempFiles lists the files being written in the fsstore under dir.
func tempFiles(t *testing.T, dataDir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dataDir, "blobs", ".tmp"))
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestStalledUploadIsCutOff: an upload that stops sending after 4 KB is
// answered 408 once it has sent nothing for the stall period, its
// connection is closed and its temp file removed.
func TestStalledUploadIsCutOff(t *testing.T) {
	t.Parallel()
	const stall = 300 * time.Millisecond
	dir := t.TempDir()
	ta := serveApp(t, Config{DataDir: dir, BodyStall: stall})
	key := ta.createPart("part")
	head, start := uploadHead("x", key, 1<<20)
	began := time.Now()
	conn, br := ta.rawConn(head, append(start, bytes.Repeat([]byte{'a'}, 4096)...))
	// The upload is in progress: its temp file exists.
	require.Eventually(t, func() bool { return len(tempFiles(t, dir)) == 1 }, 5*time.Second, 10*time.Millisecond)

	resp, b := readAnswer(t, conn, br, 10*time.Second)
	require.Equal(t, http.StatusRequestTimeout, resp.StatusCode, "body: %s", b)
	require.GreaterOrEqual(t, time.Since(began), stall)
	require.True(t, resp.Close, "Connection: close")
	requireJSONError(t, b)
	requireClosed(t, conn, br, 5*time.Second)
	require.Empty(t, tempFiles(t, dir))
	require.Equal(t, 0, ta.rowCount("attachments"))
	require.Empty(t, keys(t, ta.backend, cas.KeyPrefix))
}

// TestStalledJSONIsCutOff: a JSON body that stalls is cut off after the
// stall period; one that trickles a byte at a time, never stalling, is cut
// off when the whole-body timeout passes.
func TestStalledJSONIsCutOff(t *testing.T) {
	t.Parallel()
	const stall, whole = time.Second, 2500 * time.Millisecond
	ta := newTestApp(t, Config{BodyStall: stall, SmallBodyTimeout: whole})
	body := `{"description": "` + strings.Repeat("x", 80) + `"}`
	head := fmt.Sprintf("POST /api/parts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))

	t.Run("stalled", func(t *testing.T) {
		began := time.Now()
		conn, br := ta.rawConn(head, []byte(body[:10]))
		resp, b := readAnswer(t, conn, br, 10*time.Second)
		require.Equal(t, http.StatusRequestTimeout, resp.StatusCode, "body: %s", b)
		require.Less(t, time.Since(began), whole, "cut off by the stall period, not the whole-body timeout")
		requireClosed(t, conn, br, 5*time.Second)
	})
	t.Run("trickle", func(t *testing.T) {
		began := time.Now()
		conn, br := ta.rawConn(head, nil)
		// A byte every tenth of the stall period, until the answer comes
		// (writing on would get the answer reset).
		done := make(chan struct{})
		var wg sync.WaitGroup
		defer wg.Wait()
		wg.Go(func() {
			tick := time.NewTicker(stall / 10)
			defer tick.Stop()
			for i := 0; i < len(body); i++ {
				select {
				case <-done:
					return
				case <-tick.C:
				}
				if _, err := conn.Write([]byte{body[i]}); err != nil {
					return // cut off
				}
			}
		})
		resp, b := readAnswer(t, conn, br, 20*time.Second)
		close(done)
		require.Equal(t, http.StatusRequestTimeout, resp.StatusCode, "body: %s", b)
		require.GreaterOrEqual(t, time.Since(began), whole)
		requireClosed(t, conn, br, 5*time.Second)
	})
	require.Equal(t, 0, ta.rowCount("parts"))
}

// TestSlowUploadIsNotCutOff: an upload that sends a little at a time,
// never pausing for the stall period, succeeds however long it takes.
func TestSlowUploadIsNotCutOff(t *testing.T) {
	t.Parallel()
	const stall = time.Second
	ta := serveApp(t, Config{BodyStall: stall})
	key := ta.createPart("part")
	data := bytes.Repeat([]byte("0123456789abcdef"), 256) // 4 KiB
	body, ct := multipartBody(t, "slow", "slow.bin", "", data)
	b, err := io.ReadAll(body)
	require.NoError(t, err)

	u, err := url.Parse(ta.srv.URL)
	require.NoError(t, err)
	head := fmt.Sprintf("POST /api/parts/%s/attachments HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
		key, u.Host, ct, len(b))
	conn, br := ta.rawConn(head, nil)
	began := time.Now()
	const chunks = 12
	for c := range chunks {
		lo, hi := c*len(b)/chunks, (c+1)*len(b)/chunks
		_, err := conn.Write(b[lo:hi])
		require.NoError(t, err)
		if c < chunks-1 {
			time.Sleep(stall / 10)
		}
	}
	resp, rb := readAnswer(t, conn, br, 10*time.Second)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "body: %s", rb)
	require.Greater(t, time.Since(began), stall, "the upload took longer than the stall period")
	require.Equal(t, 1, ta.rowCount("attachments"))
}

// TestSlowBackendAfterBodyIsNotCutOff: once the whole body is in, the
// stall deadline no longer applies: a backend that takes longer than the
// stall period to commit does not get its request cancelled.
func TestSlowBackendAfterBodyIsNotCutOff(t *testing.T) {
	t.Parallel()
	const stall = 200 * time.Millisecond
	dir := t.TempDir()
	fs, err := fsstore.New(filepath.Join(dir, "blobs"))
	require.NoError(t, err)
	fault := faulty.New(fs)
	ta := serveApp(t, Config{DataDir: dir, Backend: fault.Staging(), BodyStall: stall})
	key := ta.createPart("part")
	fault.SetLatency(4 * stall) // every call, Commit included, after the body is read
	ta.uploadOK(key, "slow commit", "f.pdf", "application/pdf", imagetest.PDF())
	require.Equal(t, 1, fault.Calls(faulty.MethodCommit))
	require.Empty(t, tempFiles(t, dir))
}

// TestUnreadBodyIsBounded: a handler that answers without reading the
// body (an unknown part) does not leave the connection waiting on a
// stalled client: net/http's drain of the unread body is bounded too.
func TestUnreadBodyIsBounded(t *testing.T) {
	t.Parallel()
	const stall = 300 * time.Millisecond
	ta := serveApp(t, Config{BodyStall: stall})
	head, start := uploadHead("x", "nosuchpart", 100<<10) // under net/http's 256 KiB drain
	conn, br := ta.rawConn(head, start)
	resp, b := readAnswer(t, conn, br, 10*time.Second)
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "body: %s", b)
	requireClosed(t, conn, br, 5*time.Second)
}

// TestExpectContinueOverLimit: a declared Content-Length over the limit
// with "Expect: 100-continue" is answered 413 at once, never "100
// Continue"; one within the limit gets its "100 Continue" and is stored.
func TestExpectContinueOverLimit(t *testing.T) {
	t.Parallel()
	const limit = 4096
	ta := newTestApp(t, Config{MaxUpload: limit})
	key := ta.createPart("part")

	over := []struct {
		name, head string
	}{
		{"upload", fmt.Sprintf("POST /api/parts/%s/attachments HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XX\r\n"+
			"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n", key, limit+multipartSlack+1)},
		{"upload of 1 GB", fmt.Sprintf("POST /api/parts/%s/attachments HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XX\r\n"+
			"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n", key, 1<<30)},
		{"page upload", fmt.Sprintf("POST /parts/%s/attachments HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XX\r\n"+
			"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n", key, limit+multipartSlack+1)},
		{"JSON", fmt.Sprintf("POST /api/parts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
			"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n", maxJSONBody+1)},
		{"URL attachment", fmt.Sprintf("POST /api/parts/%s/attachments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
			"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n", key, maxJSONBody+1)},
		{"form", fmt.Sprintf("POST /parts HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"+
			"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n", maxJSONBody+1)},
	}
	for _, tc := range over {
		t.Run(tc.name, func(t *testing.T) {
			conn, br := ta.rawConn(tc.head, nil)
			resp, b := readAnswer(t, conn, br, 5*time.Second)
			require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, "the first answer; body: %s", b)
			requireClosed(t, conn, br, 5*time.Second)
		})
	}

	// Within the limit: 100 Continue, then the body, then 201.
	body, ct := multipartBody(t, "small", "small.bin", "", bytes.Repeat([]byte{'s'}, limit))
	b, err := io.ReadAll(body)
	require.NoError(t, err)
	conn, br := ta.rawConn(fmt.Sprintf("POST /api/parts/%s/attachments HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\n"+
		"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n", key, ct, len(b)), nil)
	resp, _ := readAnswer(t, conn, br, 5*time.Second)
	require.Equal(t, http.StatusContinue, resp.StatusCode)
	_, err = conn.Write(b)
	require.NoError(t, err)
	resp, rb := readAnswer(t, conn, br, 5*time.Second)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "body: %s", rb)
	require.Equal(t, 1, ta.rowCount("attachments"))
	require.Equal(t, 1, ta.rowCount("parts"))
}
