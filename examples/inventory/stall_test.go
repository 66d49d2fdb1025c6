package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestStalledBodiesUnderFDLimit runs the built app as a process limited to
// 1024 file descriptors, with -body-stall 1s. 1500 connections on loopback
// each send a request head and the first 4 KB of an upload (a quarter of
// them) or the first bytes of a JSON body and then stall: more stalled
// bodies than the
// process has descriptors, so accept fails with EMFILE for a while. While
// they are open, ordinary requests still answer; then every stalled
// connection is cut off, the temp directory is empty and the process is
// back to its idle number of descriptors.
func TestStalledBodiesUnderFDLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the app and opens 1500 connections")
	}
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	dir := t.TempDir()
	bin := buildApp(t, dir)

	data := filepath.Join(dir, "data")
	var logs syncBuffer
	// Go raises its soft limit to the hard limit at start-up, so set both.
	cmd := exec.Command("sh", "-c", `ulimit -n 1024 && exec "$0" "$@"`,
		bin, "-addr", "127.0.0.1:0", "-data", data, "-body-stall", "1s")
	cmd.Stderr = &logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	urlRE := regexp.MustCompile(`url=http://(127\.0\.0\.1:\d+)/`)
	var host string
	require.Eventually(t, func() bool {
		m := urlRE.FindStringSubmatch(logs.String())
		if m != nil {
			host = m[1]
		}
		return m != nil
	}, 30*time.Second, 20*time.Millisecond, "no serving line in:\n%s", &logs)
	pid := cmd.Process.Pid
	limits, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	require.NoError(t, err)
	require.Regexp(t, `Max open files\s+1024\s+1024`, string(limits))
	fds := func() int {
		entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		require.NoError(t, err)
		return len(entries)
	}
	idle := fds()

	// A new connection for every request, as new clients would come: a
	// kept-alive connection accepted before the stall proves nothing.
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	base := "http://" + host
	resp, err := client.Post(base+"/api/parts", "application/json", strings.NewReader(`{"description":"part"}`))
	require.NoError(t, err)
	var p partJSON
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&p))
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)

	// Open the stalled bodies, 32 dials at a time.
	// Open the stalled bodies while the process is stopped, so that they
	// wait in the listen backlog (4096 on this kernel) however slowly this
	// machine dials, and the process accepts them in one burst when it
	// continues: more than it has descriptors.
	const n = 1500
	uploadHeadText, uploadStart := uploadHead(host, p.Key, 1<<20)
	upload := append([]byte(uploadHeadText), uploadStart...)
	upload = append(upload, make([]byte, 4096)...)
	jsonBody := []byte("POST /api/parts HTTP/1.1\r\nHost: " + host +
		"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"descrip")
	conns := make([]net.Conn, n)
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				_ = c.Close()
			}
		}
	})
	require.NoError(t, cmd.Process.Signal(syscall.SIGSTOP))
	forEach(n, 64, func(i int) error { return dialStalled(host, &conns[i], i, upload, jsonBody) }, t)
	require.NoError(t, cmd.Process.Signal(syscall.SIGCONT))
	opened := time.Now()

	// Ordinary requests answer while the stalled connections are open.
	var slowest time.Duration
	for range 5 {
		began := time.Now()
		resp, err := client.Get(base + "/api/parts")
		require.NoError(t, err, "an ordinary request got no answer")
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		slowest = max(slowest, time.Since(began))
	}

	// Every stalled connection is cut off by the server.
	var answered408 atomic.Int64
	deadline := time.Now().Add(30 * time.Second)
	forEach(n, 64, func(i int) error {
		c := conns[i]
		if err := c.SetReadDeadline(deadline); err != nil {
			return err
		}
		b, err := io.ReadAll(c)
		if bytes408(b) {
			answered408.Add(1)
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return fmt.Errorf("connection %d still open 30 s after the ordinary requests", i)
		}
		return nil // EOF or a reset: closed
	}, t)
	cutOff := time.Since(opened)

	require.Contains(t, logs.String(), "too many open files", "the test did not exhaust the descriptors")

	require.Eventually(t, func() bool {
		entries, err := os.ReadDir(filepath.Join(data, "blobs", ".tmp"))
		return err == nil && len(entries) == 0
	}, 10*time.Second, 50*time.Millisecond, "temp files are left")
	require.Eventually(t, func() bool { return fds() <= idle+8 }, 10*time.Second, 50*time.Millisecond,
		"descriptors: idle %d, now %d", idle, fds())
	resp, err = client.Get(base + "/")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	t.Logf("%d stalled connections, RLIMIT_NOFILE 1024, -body-stall 1s: slowest ordinary request %v, all cut off after %v (%d answered 408), idle fds %d",
		n, slowest.Round(time.Millisecond), cutOff.Round(time.Millisecond), answered408.Load(), idle)
}

// dialStalled opens connection i into *conn and sends the start of a
// request: mostly JSON bodies, so that more of them stall than the process
// has descriptors whether or not an upload gets its temp file.
func dialStalled(host string, conn *net.Conn, i int, upload, jsonBody []byte) error {
	c, err := net.DialTimeout("tcp", host, 10*time.Second)
	if err != nil {
		return err
	}
	*conn = c
	msg := jsonBody
	if i%4 == 0 {
		msg = upload
	}
	_, err = c.Write(msg)
	return err
}

// forEach runs f(0..n-1) on workers goroutines and fails t with the
// first error.
func forEach(n, workers int, f func(i int) error, t *testing.T) {
	t.Helper()
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	require.NoError(t, first)
}

func bytes408(b []byte) bool { return strings.HasPrefix(string(b), "HTTP/1.1 408 ") }
