package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/internal/testutil/imagetest"
)

// hostileImage is a fixture of the hardening issue and the status its
// thumbnail must get.
type hostileImage struct {
	name   string
	data   []byte
	status int
}

// hostileImages returns the fixtures; variant makes each file
// distinct (one pixel narrower per variant) so that requests for several
// are not coalesced or deduplicated.
func hostileImages(variant int) []hostileImage {
	w := 7000 - variant
	return []hostileImage{
		// YCbCr is decoded by shrink-on-load (internal/jpegdec) at 1/8
		// for a small thumbnail: 4:2:0 keeps its chroma coefficients
		// (about 52 MiB at 49 MP), 4:4:4 its DC coefficients only (about
		// 8 MiB). image/jpeg would need 353 and 700 MiB; the 4:4:4 one
		// was refused (415) before shrink-on-load.
		{"progressive ycbcr 4:2:0", imagetest.ProgressiveJPEG(w, 7000, imagetest.LayoutYCbCr420, 3, false), http.StatusOK},
		{"progressive ycbcr 4:4:4", imagetest.ProgressiveJPEG(w, 7000, imagetest.LayoutYCbCr444, 3, false), http.StatusOK},
		// CMYK goes to image/jpeg at full size: over the budget.
		{"progressive cmyk", imagetest.ProgressiveJPEG(w, 7000, imagetest.LayoutCMYK, 4, false), http.StatusUnsupportedMediaType},
		{"progressive cmyk truncated", imagetest.ProgressiveJPEG(w, 7000, imagetest.LayoutCMYK, 4, true), http.StatusUnsupportedMediaType},
		// Gray fits the budget (233 MiB): decoded up to the scan limit.
		{"progressive 2000 scans", imagetest.ProgressiveJPEG(w, 7000, imagetest.LayoutGray, 2000, false), http.StatusUnsupportedMediaType},
		{"png 16-bit interlaced", imagetest.PNGInterlaced16(w, 7000), http.StatusUnsupportedMediaType},
		{"webp lossless", imagetest.WebP(w, 7000, imagetest.Red), http.StatusOK},
	}
}

// TestThumbnailMemoryBound builds the example app, runs it, uploads the
// hostile images of the hardening issue and requests their thumbnails,
// reading the app's peak resident set (VmHWM) against its level once
// idle: under 512 MiB more for one request of each fixture (each in a
// fresh process), under 1 GiB more for eight at once.
func TestThumbnailMemoryBound(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the app")
	}
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/<pid>/status")
	}
	bin := buildApp(t, t.TempDir())

	const mib = 1 << 20
	for _, img := range hostileImages(0) {
		t.Run(img.name, func(t *testing.T) {
			app := startApp(t, bin)
			url := app.upload(img.data)
			idle := app.vmHWM()
			status := app.getStatus(url)
			growth := app.vmHWM() - idle
			t.Logf("%-28s %d bytes: status %d, VmHWM idle %d MiB, +%d MiB", img.name, len(img.data), status, idle/mib, growth/mib)
			require.Equal(t, img.status, status)
			require.Less(t, growth, int64(512*mib))
		})
	}

	eight := func(t *testing.T, pick func(i int) hostileImage) {
		app := startApp(t, bin)
		var urls []string
		var want []int
		for i := range 8 {
			img := pick(i)
			urls = append(urls, app.upload(img.data))
			want = append(want, img.status)
		}
		idle := app.vmHWM()
		got := make([]int, len(urls))
		var wg sync.WaitGroup
		for i, u := range urls {
			wg.Go(func() { got[i] = app.getStatus(u) })
		}
		wg.Wait()
		growth := app.vmHWM() - idle
		t.Logf("8 at once: statuses %v, VmHWM idle %d MiB, +%d MiB", got, idle/mib, growth/mib)
		require.Equal(t, want, got)
		require.Less(t, growth, int64(1024*mib))
	}
	t.Run("eight at once", func(t *testing.T) {
		eight(t, func(i int) hostileImage {
			imgs := hostileImages(1 + i/len(hostileImages(0)))
			return imgs[i%len(imgs)]
		})
	})
	// Eight that are all decoded, the costliest YCbCr case (4:2:0:
	// full chroma coefficients) at once.
	t.Run("eight progressive 4:2:0 at once", func(t *testing.T) {
		eight(t, func(i int) hostileImage { return hostileImages(1 + i)[0] })
	})
}

// runningApp is the built example app, started on a free port.
type runningApp struct {
	t    *testing.T
	cmd  *exec.Cmd
	base string
	part string
}

func startApp(t *testing.T, bin string) *runningApp {
	t.Helper()
	// A long generation deadline: the test measures memory, and on a loaded
	// machine (parallel test packages, the race detector) eight queued
	// progressive decodes can outlast the 10 s default and answer 500.
	proc := startBinary(t, bin, "app", nil, "-thumb-timeout", "3m")
	a := &runningApp{t: t, cmd: proc.cmd, base: proc.base}
	resp, err := http.Post(a.base+"/api/parts", "application/json", strings.NewReader(`{"description":"hostile images"}`))
	require.NoError(t, err)
	defer resp.Body.Close()
	var p partJSON
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&p))
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	a.part = p.Key
	return a
}

// upload attaches data to the app's part and returns its thumbnail URL.
func (a *runningApp) upload(data []byte) string {
	a.t.Helper()
	body, ct := multipartBody(a.t, "hostile", "image", "", data)
	resp, err := http.Post(a.base+"/api/parts/"+a.part+"/attachments", ct, body)
	require.NoError(a.t, err)
	defer resp.Body.Close()
	var at attachmentJSON
	require.Equal(a.t, http.StatusCreated, resp.StatusCode)
	require.NoError(a.t, json.NewDecoder(resp.Body).Decode(&at))
	require.NotNil(a.t, at.ThumbnailURL, "no thumbnail URL: not sniffed as an image")
	return *at.ThumbnailURL
}

// getStatus requests a URL path of the app and returns the status.
func (a *runningApp) getStatus(path string) int {
	a.t.Helper()
	client := &http.Client{Timeout: 60 * time.Second}
	resp, err := client.Get(a.base + path)
	require.NoError(a.t, err)
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// vmHWM returns the app's peak resident set size in bytes.
func (a *runningApp) vmHWM() int64 {
	a.t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", a.cmd.Process.Pid))
	require.NoError(a.t, err)
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(v)
			kb, err := strconv.ParseInt(f[0], 10, 64)
			require.NoError(a.t, err)
			return kb << 10
		}
	}
	a.t.Fatal("no VmHWM in /proc status")
	return 0
}
