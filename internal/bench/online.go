package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Parameters of the online-migration section.
const (
	onlineRows      = 20000 // parts seeded with -seed-legacy (two files each)
	onlineRowsQuick = 300
	onlineClients   = 32
	onlinePageSize  = 25 // parts per GET /api/parts page
	// onlineBaseMax caps the baseline run: the same load for as long as
	// the migration took, but no longer than this.
	onlineBaseMax = 2 * time.Minute
)

// onlineSection seeds the example app with legacy rows, starts it with
// -migrate online (SQLite + fsstore on disk) and runs 32 clients against
// its API until GET /api/migration reports the migration complete: each
// client takes the next page of GET /api/parts (following Link rel=next),
// lists every part's attachments and GETs every URL the API returned
// (cover, download and thumbnail URLs, redirects followed). Then the same
// load runs against the migrated data, without a migration, for the
// baseline: as long as the migration took, up to onlineBaseMax.
//
// Seeding runs on tmpfs when /dev/shm exists (on disk, fsync makes
// 20,000 rows take more than ten minutes); the seeded directory is then
// copied to disk and flushed, so that the migration itself writes to disk.
func onlineSection(cfg *config) ([]row, error) {
	n := onlineRows
	if cfg.quick {
		n = onlineRowsQuick
	}
	bin, err := buildInventory(cfg)
	if err != nil {
		return nil, err
	}

	// 1. Seed: -seed-legacy N -migrate off, until it serves.
	seedParent, seedPlace := cfg.tmp, "disk"
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		seedParent, seedPlace = "/dev/shm", "tmpfs"
	}
	seedDir, err := os.MkdirTemp(seedParent, "casa-bench-seed-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(seedDir)
	cfg.log.Printf("online migration: seeding %d legacy parts on %s", n, seedPlace)
	t0 := time.Now()
	seeder, err := startInventory(bin, seedDir, "-seed-legacy", fmt.Sprint(n), "-migrate", "off")
	if err != nil {
		return nil, err
	}
	if err := seeder.ready(30 * time.Minute); err != nil {
		seeder.stop()
		return nil, err
	}
	seedTime := time.Since(t0)
	if err := seeder.stop(); err != nil {
		return nil, fmt.Errorf("seeding app: %w", err)
	}
	dataDir := filepath.Join(cfg.tmp, "online-data")
	if err := copyTree(seedDir, dataDir); err != nil {
		return nil, err
	}
	_ = os.RemoveAll(filepath.Join(dataDir, "thumbnails"))
	syscall.Sync() // the copy's dirty pages are not the migration's to write
	cfg.log.Printf("online migration: seeded in %s", seedTime.Round(time.Second))

	// 2. The online migration under load.
	app, err := startInventory(bin, dataDir, "-migrate", "online")
	if err != nil {
		return nil, err
	}
	appStart := time.Now()
	if err := app.ready(time.Minute); err != nil {
		app.stop()
		return nil, err
	}
	readyAfter := time.Since(appStart)
	var finish time.Duration
	var final migrationStatus
	lastLog := time.Now()
	during := runOnlineLoad(app, func(stop <-chan struct{}) error {
		for {
			var st migrationStatus
			if err := getJSON(app.client, app.base+"/api/migration", &st); err != nil {
				return err
			}
			switch st.State {
			case "complete":
				finish, final = time.Since(appStart), st
				return nil
			case "running":
				if time.Since(lastLog) > 30*time.Second {
					cfg.log.Printf("online migration: %d pending, %d migrated by the background run", st.Pending, st.Migrated)
					lastLog = time.Now()
				}
			default:
				return fmt.Errorf("migration %s: %+v", st.State, st)
			}
			select {
			case <-stop:
				return errors.New("the load stopped before the migration completed")
			case <-time.After(200 * time.Millisecond):
			}
			if time.Since(appStart) > 2*time.Hour {
				return errors.New("the migration did not complete within 2 h")
			}
		}
	})
	if err := app.stop(); err != nil && during.err == nil {
		during.err = fmt.Errorf("online app: %w", err)
	}
	if during.err != nil {
		return nil, fmt.Errorf("%w; app said:\n%s", during.err, app.log.tail())
	}
	cfg.log.Printf("online migration: complete after %s, %d requests", finish.Round(time.Second), len(during.lats))

	// 3. Baseline: the migrated data, no migration, a cold thumbnail
	// cache like the run above had, the same load for the same time.
	if err := os.RemoveAll(filepath.Join(dataDir, "thumbnails")); err != nil {
		return nil, err
	}
	base, err := startInventory(bin, dataDir, "-migrate", "off")
	if err != nil {
		return nil, err
	}
	if err := base.ready(time.Minute); err != nil {
		base.stop()
		return nil, err
	}
	var pending migrationStatus
	if err := getJSON(base.client, base.base+"/api/migration", &pending); err != nil {
		base.stop()
		return nil, err
	}
	baseDur := min(during.elapsed, onlineBaseMax)
	without := runOnlineLoad(base, func(stop <-chan struct{}) error {
		select {
		case <-stop:
			return errors.New("the load stopped early")
		case <-time.After(baseDur):
			return nil
		}
	})
	if err := base.stop(); err != nil && without.err == nil {
		without.err = fmt.Errorf("baseline app: %w", err)
	}
	if without.err != nil {
		return nil, fmt.Errorf("%w; app said:\n%s", without.err, base.log.tail())
	}

	attachments := 2 * n // a photo and a datasheet per part
	if pending.Pending != 0 {
		return nil, fmt.Errorf("after the migration %d attachments still wait", pending.Pending)
	}
	p99d, p99w := during.pct(0.99), without.pct(0.99)
	what := fmt.Sprintf("%d parts, %d clients", n, onlineClients)
	return []row{
		{Name: fmt.Sprintf("seeding %d legacy parts (2 files each, -seed-legacy, on %s, then copied to disk)", n, seedPlace),
			Figure: seedTime.Round(100 * time.Millisecond).String(), Peer: "not part of the migration"},
		{Name: "time to finish the online migration (app start to GET /api/migration complete; SQLite + fsstore on disk; " + what + " loading)",
			Figure: finish.Round(100 * time.Millisecond).String(),
			Peer: fmt.Sprintf("%d attachments, %.0f/s (%d by the background run, the rest on demand by thumbnail requests); serving %s after start",
				attachments, float64(attachments)/finish.Seconds(), final.Migrated, ms(readyAfter))},
		{Name: "errors during the migration (transport error, or not 2xx after redirects)",
			Figure: during.errText(), Peer: during.requestsText(), Target: "0", Pass: during.errs.Load() == 0},
		{Name: "null URL fields of rows with files during the migration (cover, download, thumbnail)",
			Figure: during.nullText(), Peer: fmt.Sprintf("%d URL fields read", during.fields.Load()), Target: "0", Pass: during.nulls.Load() == 0},
		{Name: "latency p50 / p99 during the migration",
			Figure: fmt.Sprintf("%s / %s", ms2(during.pct(0.50)), ms2(p99d)),
			Peer:   fmt.Sprintf("without a migration %s / %s", ms2(without.pct(0.50)), ms2(p99w)),
			Ratio:  float64(p99d) / float64(max(p99w, 1))},
		{Name: "requests/s during the migration",
			Figure: fmt.Sprintf("%.0f req/s", float64(len(during.lats))/during.elapsed.Seconds()),
			Peer:   fmt.Sprintf("without a migration %.0f req/s", float64(len(without.lats))/without.elapsed.Seconds())},
		{Name: "errors without a migration (same load on the migrated data, cold thumbnail cache, for the migration's time up to " + onlineBaseMax.String() + ")",
			Figure: without.errText(), Peer: without.requestsText(), Target: "0", Pass: without.errs.Load() == 0},
	}, nil
}

// migrationStatus is GET /api/migration.
type migrationStatus struct {
	State    string  `json:"state"`
	Pending  int     `json:"pending"`
	Migrated int     `json:"migrated"`
	Failed   int     `json:"failed"`
	Rate     float64 `json:"rate"`
}

// loadResult is what one run of runOnlineLoad measured.
type loadResult struct {
	err      error // why the run stopped early, if it did
	elapsed  time.Duration
	lats     []time.Duration // sorted
	errs     atomic.Int64
	firstErr atomic.Value
	nulls    atomic.Int64
	firstNul atomic.Value
	fields   atomic.Int64 // URL fields that should hold a URL
	legacy   atomic.Int64 // requests to /api/legacy/ URLs
	redirect atomic.Int64 // redirects followed
}

func (r *loadResult) pct(p float64) time.Duration {
	if len(r.lats) == 0 {
		return 0
	}
	return r.lats[min(len(r.lats)-1, int(p*float64(len(r.lats))))]
}

func (r *loadResult) errText() string {
	if n := r.errs.Load(); n > 0 {
		return fmt.Sprintf("%d (first: %v)", n, r.firstErr.Load())
	}
	return "0"
}

func (r *loadResult) nullText() string {
	if n := r.nulls.Load(); n > 0 {
		return fmt.Sprintf("%d (first: %v)", n, r.firstNul.Load())
	}
	return "0"
}

func (r *loadResult) requestsText() string {
	return fmt.Sprintf("%d requests in %s (%d to legacy URLs, %d redirects followed)",
		len(r.lats), r.elapsed.Round(100*time.Millisecond), r.legacy.Load(), r.redirect.Load())
}

func (r *loadResult) fail(err error) {
	r.errs.Add(1)
	r.firstErr.CompareAndSwap(nil, err.Error())
}

func (r *loadResult) null(what string) {
	r.nulls.Add(1)
	r.firstNul.CompareAndSwap(nil, what)
}

// runOnlineLoad runs onlineClients clients against app until until
// returns (it gets a channel closed if every client has stopped).
func runOnlineLoad(app *inventoryProc, until func(stop <-chan struct{}) error) *loadResult {
	res := &loadResult{}
	pages := &pageWalk{first: app.base + fmt.Sprintf("/api/parts?limit=%d", onlinePageSize)}
	done := make(chan struct{})
	clientsDone := make(chan struct{})
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	start := time.Now()
	for range onlineClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &loadClient{app: app, res: res}
			for {
				select {
				case <-done:
					mu.Lock()
					res.lats = append(res.lats, c.lats...)
					mu.Unlock()
					return
				default:
				}
				c.page(pages)
			}
		}()
	}
	go func() { wg.Wait(); close(clientsDone) }()
	res.err = until(clientsDone)
	res.elapsed = time.Since(start)
	close(done)
	<-clientsDone
	slices.Sort(res.lats)
	return res
}

// pageWalk is one walk through GET /api/parts shared by the clients: each
// takes the next page; after the last page the walk starts over.
type pageWalk struct {
	mu    sync.Mutex
	first string
	next  string
}

var linkNext = regexp.MustCompile(`<([^>]+)>;\s*rel="next"`)

// partJSON is a part as GET /api/parts returns it.
type partJSON struct {
	Key      string  `json:"key"`
	CoverURL *string `json:"cover_url"`
}

// attachmentJSON is an attachment as the API returns it.
type attachmentJSON struct {
	ID           int64   `json:"id"`
	Type         string  `json:"attachment_type"`
	DownloadURL  *string `json:"download_url"`
	ThumbnailURL *string `json:"thumbnail_url"`
}

type loadClient struct {
	app  *inventoryProc
	res  *loadResult
	lats []time.Duration
}

// page takes the next page of parts and requests everything on it.
func (c *loadClient) page(w *pageWalk) {
	w.mu.Lock()
	u := w.next
	if u == "" {
		u = w.first
	}
	var parts []partJSON
	hdr, err := c.getJSON(u, &parts)
	if err == nil {
		w.next = ""
		if m := linkNext.FindStringSubmatch(hdr.Get("Link")); m != nil {
			w.next = c.app.base + m[1]
		}
	}
	w.mu.Unlock()
	if err != nil {
		time.Sleep(10 * time.Millisecond)
		return
	}
	for _, p := range parts {
		c.part(p)
	}
}

// part checks and requests one part's URLs. Every seeded part has files
// and a photo as its cover.
func (c *loadClient) part(p partJSON) {
	c.res.fields.Add(1)
	if p.CoverURL == nil {
		c.res.null("cover_url of part " + p.Key)
	} else {
		c.follow(*p.CoverURL)
	}
	var atts []attachmentJSON
	if _, err := c.getJSON(c.app.base+"/api/parts/"+p.Key+"/attachments", &atts); err != nil {
		return
	}
	for _, a := range atts {
		if a.Type == "url" {
			continue
		}
		c.res.fields.Add(1)
		if a.DownloadURL == nil {
			c.res.null(fmt.Sprintf("download_url of attachment %d", a.ID))
		} else {
			c.follow(*a.DownloadURL)
		}
		if a.Type != "image" {
			continue
		}
		c.res.fields.Add(1)
		if a.ThumbnailURL == nil {
			c.res.null(fmt.Sprintf("thumbnail_url of attachment %d", a.ID))
		} else {
			c.follow(*a.ThumbnailURL)
		}
	}
}

// follow GETs a URL the API returned, following redirects, and wants 2xx.
func (c *loadClient) follow(path string) {
	if strings.HasPrefix(path, "/api/legacy/") {
		c.res.legacy.Add(1)
	}
	_, _ = c.get(c.app.base+path, io.Discard)
}

// getJSON GETs url and decodes its JSON body into v.
func (c *loadClient) getJSON(url string, v any) (http.Header, error) {
	var buf strings.Builder
	hdr, err := c.get(url, &buf)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(buf.String()), v); err != nil {
		c.res.fail(fmt.Errorf("GET %s: %w", url, err))
		return nil, err
	}
	return hdr, nil
}

// get performs one timed GET (redirects followed), copies the body to
// body, and counts an error unless the final answer is 2xx.
func (c *loadClient) get(url string, body io.Writer) (http.Header, error) {
	t0 := time.Now()
	resp, err := c.app.client.Get(url)
	if err == nil {
		_, err = io.Copy(body, resp.Body)
		resp.Body.Close()
	}
	c.lats = append(c.lats, time.Since(t0))
	if err == nil && resp.Request.Response != nil {
		c.res.redirect.Add(1) // the final request was caused by a redirect
	}
	if err == nil && (resp.StatusCode < 200 || resp.StatusCode > 299) {
		err = fmt.Errorf("GET %s: status %d", resp.Request.URL, resp.StatusCode)
	}
	if err != nil {
		c.res.fail(err)
		return nil, err
	}
	return resp.Header, nil
}

// inventoryProc is the example app running as a process on loopback.
type inventoryProc struct {
	cmd    *exec.Cmd
	base   string
	client *http.Client
	log    *gcTrace // the last lines it wrote to standard error
}

// buildInventory builds the example app into the scratch directory; the
// load and online-migration sections both run it.
func buildInventory(cfg *config) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(cfg.tmp, "inventory")
	build := exec.Command("go", "build", "-o", bin, "./examples/inventory")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./examples/inventory: %v\n%s", err, out)
	}
	return bin, nil
}

// startInventory starts the app on a free loopback port over dataDir.
func startInventory(bin, dataDir string, args ...string) (*inventoryProc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, append([]string{"-addr", addr, "-data", dataDir}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	client := newClient(2 * onlineClients)
	client.Timeout = time.Minute // a request that hangs is an error, not a hung benchmark
	return &inventoryProc{cmd: cmd, base: "http://" + addr, client: client, log: newGCTrace(stderr)}, nil
}

// ready waits until the app answers GET /api/migration.
func (p *inventoryProc) ready(limit time.Duration) error {
	if err := waitReady(p.client, p.base+"/api/migration", limit); err != nil {
		return fmt.Errorf("%w; app said:\n%s", err, p.log.tail())
	}
	return nil
}

// stop interrupts the app (graceful shutdown) and waits for it; after 30 s
// it kills it.
func (p *inventoryProc) stop() error {
	p.client.CloseIdleConnections()
	_ = p.cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
		return errors.New("did not stop within 30 s of an interrupt; killed")
	}
}

// copyTree copies the regular files and directories under src to dst.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o750)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

func ms2(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }
