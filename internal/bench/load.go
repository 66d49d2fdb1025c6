package main

import (
	"bufio"
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
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// loadSection starts the example app (go build ./examples/inventory) on
// loopback with seeded data, and runs 64 concurrent clients against it:
// content GETs, 304s and cached thumbnails, round robin.
func loadSection(cfg *config) ([]row, error) {
	bin, err := buildInventory(cfg)
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	// -migrate blocking: the load measures serving migrated data. Online, a
	// URL loaded while its row still waited is a legacy URL that starts
	// redirecting to the CAS URL once the row migrates, and a conditional
	// GET of it then (rightly) gets the CAS representation, not a 304.
	app := exec.Command(bin, "-addr", addr, "-data", filepath.Join(cfg.tmp, "inventory-data"), "-seed-legacy", "16", "-migrate", "blocking")
	app.Env = append(os.Environ(), "GODEBUG=gctrace=1")
	stderr, err := app.StderrPipe()
	if err != nil {
		return nil, err
	}
	app.Stdout = io.Discard
	if err := app.Start(); err != nil {
		return nil, err
	}
	gc := newGCTrace(stderr)
	defer func() {
		_ = app.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = app.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = app.Process.Kill()
			<-done
		}
	}()
	base := "http://" + addr
	client := newClient(64)
	if err := waitReady(client, base+"/api/parts", 60*time.Second); err != nil {
		return nil, fmt.Errorf("%w; app said:\n%s", err, gc.tail())
	}

	targets, err := loadTargets(client, base)
	if err != nil {
		return nil, err
	}
	// Warm the thumbnail cache and learn the ETags.
	for i := range targets {
		resp, err := client.Get(targets[i].url)
		if err != nil {
			return nil, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %d", targets[i].url, resp.StatusCode)
		}
		targets[i].etag = resp.Header.Get("ETag")
	}

	dur := 10 * time.Second
	if cfg.quick {
		dur = 3 * time.Second
	}
	const clients = 64
	var (
		errCount atomic.Int64
		firstErr atomic.Value
		mu       sync.Mutex
		lats     []time.Duration
		wg       sync.WaitGroup
	)
	gc.resetPeak()
	rssBefore := vmHWM(app.Process.Pid)
	deadline := time.Now().Add(dur)
	start := time.Now()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for i := c; time.Now().Before(deadline); i++ {
				t := targets[i%len(targets)]
				conditional := t.kind == "content" && i%3 == 0
				t0 := time.Now()
				err := hit(client, t, conditional)
				mine = append(mine, time.Since(t0))
				if err != nil {
					errCount.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
			mu.Lock()
			lats = append(lats, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lats)
	pct := func(p float64) time.Duration { return lats[min(len(lats)-1, int(p*float64(len(lats))))] }
	nErr := errCount.Load()
	errText := "0"
	if nErr > 0 {
		errText = fmt.Sprintf("%d (first: %v)", nErr, firstErr.Load())
	}
	peakHeap := gc.peak()
	kinds := map[string]int{}
	for _, t := range targets {
		kinds[t.kind]++
	}
	what := fmt.Sprintf("%d clients, %s, %d blobs + %d cached thumbnails, every 3rd content GET conditional (304)",
		clients, dur, kinds["content"], kinds["thumbnail"])
	return []row{
		{Name: "requests/s (" + what + ")", Figure: fmt.Sprintf("%.0f req/s", float64(len(lats))/elapsed.Seconds()), Peer: fmt.Sprintf("%d requests", len(lats))},
		{Name: "latency p50 / p99", Figure: fmt.Sprintf("%.2f ms / %.2f ms", float64(pct(0.50))/1e6, float64(pct(0.99))/1e6)},
		{Name: "errors", Figure: errText, Peer: fmt.Sprintf("%d requests", len(lats)), Target: "0", Pass: nErr == 0},
		{Name: "app peak Go heap during the run (gctrace: heap at GC start)", Figure: peakHeap, Peer: fmt.Sprintf("peak RSS %s (before the run %s)", vmHWM(app.Process.Pid), rssBefore)},
	}, nil
}

type target struct {
	kind string // content or thumbnail
	url  string
	etag string
}

// loadTargets reads the app's parts and attachments through its JSON API.
func loadTargets(c *http.Client, base string) ([]target, error) {
	var parts []struct {
		Key string `json:"key"`
	}
	if err := getJSON(c, base+"/api/parts", &parts); err != nil {
		return nil, err
	}
	var ts []target
	for _, p := range parts {
		var atts []struct {
			DownloadURL  *string `json:"download_url"`
			ThumbnailURL *string `json:"thumbnail_url"`
		}
		if err := getJSON(c, base+"/api/parts/"+p.Key+"/attachments", &atts); err != nil {
			return nil, err
		}
		for _, a := range atts {
			if a.DownloadURL != nil {
				ts = append(ts, target{kind: "content", url: base + *a.DownloadURL})
			}
			if a.ThumbnailURL != nil {
				ts = append(ts, target{kind: "thumbnail", url: base + *a.ThumbnailURL})
			}
		}
	}
	if len(ts) == 0 {
		return nil, errors.New("the app lists no blobs to request")
	}
	return ts, nil
}

func hit(c *http.Client, t target, conditional bool) error {
	req, err := http.NewRequest(http.MethodGet, t.url, nil)
	if err != nil {
		return err
	}
	want := http.StatusOK
	if conditional {
		req.Header.Set("If-None-Match", t.etag)
		want = http.StatusNotModified
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("GET %s: status %d, want %d", t.url, resp.StatusCode, want)
	}
	return nil
}

func getJSON(c *http.Client, url string, v any) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d", url, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func waitReady(c *http.Client, url string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("the example app did not answer %s within %s", url, limit)
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory: run from the casa repository")
		}
		dir = parent
	}
}

// vmHWM returns a process's peak resident set size from /proc.
func vmHWM(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "n/a"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(v)
			if kb, err := strconv.Atoi(f[0]); err == nil {
				return mib(uint64(kb) << 10)
			}
		}
	}
	return "n/a"
}

// gcTrace reads a child's GODEBUG=gctrace=1 output and tracks the largest
// heap size at the start of a GC ("gc N @t s P%: ... A->B->C MB ...").
type gcTrace struct {
	mu    sync.Mutex
	max   float64
	lines []string
}

var gcLine = regexp.MustCompile(`(\d+)->(\d+)->(\d+) MB`)

func newGCTrace(r io.Reader) *gcTrace {
	g := &gcTrace{}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			line := sc.Text()
			g.mu.Lock()
			if m := gcLine.FindStringSubmatch(line); m != nil && strings.HasPrefix(line, "gc ") {
				if v, err := strconv.ParseFloat(m[1], 64); err == nil && v > g.max {
					g.max = v
				}
			} else {
				g.lines = append(g.lines, line)
				if len(g.lines) > 20 {
					g.lines = g.lines[1:]
				}
			}
			g.mu.Unlock()
		}
	}()
	return g
}

func (g *gcTrace) resetPeak() { g.mu.Lock(); g.max = 0; g.mu.Unlock() }

func (g *gcTrace) peak() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.max == 0 {
		return "no GC during the run"
	}
	return fmt.Sprintf("%.0f MiB", g.max)
}

func (g *gcTrace) tail() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return strings.Join(g.lines, "\n")
}
