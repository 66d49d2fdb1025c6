package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas/fsstore"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/internal/testutil/imagetest"
)

// findChromium returns the path of a Chromium or Chrome binary, or "".
func findChromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// TestBrowserUploadShowsThumbnail loads the page in headless Chromium,
// uploads a JPEG through a part's form, and checks that the thumbnail the
// page then shows has really rendered (naturalWidth > 0), as does the cover
// once it is set.
func TestBrowserUploadShowsThumbnail(t *testing.T) {
	chrome := findChromium()
	if chrome == "" {
		testutil.SkipMissing(t, "chromium not installed: apt-get install chromium (bash .ci/run installs it)")
	}
	t.Parallel()

	// The default blob store (fsstore in the data directory), as
	// `go run ./examples/inventory` uses it.
	dir := t.TempDir()
	ta := serveApp(t, Config{DataDir: dir})
	key := ta.createPart("NE555 timer, DIP-8")

	photo := filepath.Join(t.TempDir(), "ne555.jpg")
	require.NoError(t, os.WriteFile(photo, imagetest.JPEG(640, 480), 0o600))

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var chromeOut bytes.Buffer
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chrome),
		chromedp.Headless,
		chromedp.NoSandbox, // tests often run as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.CombinedOutput(&chromeOut),
	)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()

	partSel := fmt.Sprintf("#part-%s", key)
	thumbLoaded := func(sel string) string {
		return fmt.Sprintf(`(() => { const img = document.querySelector(%q); `+
			`return img !== null && img.complete && img.naturalWidth > 0 ? img.naturalWidth : 0; })()`, sel)
	}

	err := chromedp.Do(bctx,
		chromedp.Navigate(ta.srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(partSel+" form.upload")),
		chromedp.SetUploadFiles(chromedp.CSS(partSel+` input[type="file"]`), []string{photo}),
		chromedp.SendKeys(chromedp.CSS(partSel+` input[name="title"]`), "Top view"),
		chromedp.Click(chromedp.CSS(partSel+" form.upload button")),
		// The form posts, the server redirects back to the page.
		chromedp.WaitVisible(chromedp.CSS(partSel+" img.thumb")),
	)
	require.NoError(t, err, "chromium output:\n%s", &chromeOut)

	width, err := chromedp.Run(bctx, chromedp.Poll[int](thumbLoaded(partSel+" img.thumb"),
		chromedp.WithPollingTimeout(20*time.Second)))
	require.NoError(t, err, "the thumbnail never rendered")
	require.Equal(t, 150, width, "a 640x480 photo's thumbnail is 150 px wide")

	// The upload went through the same path as the API.
	atts := ta.attachments(key)
	require.Len(t, atts, 1)
	require.Equal(t, "Top view", atts[0].Title)
	require.Equal(t, "ne555.jpg", *atts[0].Filename)
	require.Equal(t, "image", atts[0].AttachmentType)
	src, err := chromedp.Run(bctx, chromedp.Evaluate[string](
		fmt.Sprintf(`document.querySelector(%q).getAttribute("src")`, partSel+" img.thumb")))
	require.NoError(t, err)
	require.Equal(t, *atts[0].ThumbnailURL, src)

	// Set the cover through the API; the page shows it.
	ta.doJSON("PUT", "/api/parts/"+key+"/cover", map[string]any{"attachment_id": atts[0].ID}, http.StatusOK, nil)
	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(ta.srv.URL+"/")))
	width, err = chromedp.Run(bctx,
		chromedp.Poll[int](thumbLoaded(partSel+" img.cover-thumb"), chromedp.WithPollingTimeout(20*time.Second)))
	require.NoError(t, err, "the cover never rendered")
	require.Equal(t, 150, width)
}

// TestBrowserShowsEveryThumbnailDuringOnlineMigration loads the page while
// a slow online migration has barely begun: every thumbnail and cover
// (legacy URLs for the waiting rows, which migrate on demand) renders.
func TestBrowserShowsEveryThumbnailDuringOnlineMigration(t *testing.T) {
	chrome := findChromium()
	if chrome == "" {
		testutil.SkipMissing(t, "chromium not installed: apt-get install chromium (bash .ci/run installs it)")
	}
	t.Parallel()
	dir := t.TempDir()
	blobs, err := fsstore.New(filepath.Join(dir, "blobs"))
	require.NoError(t, err)
	seed(t, dir, blobs, 3)
	ta := serveApp(t, Config{DataDir: dir, Migrate: MigrateOnline, MigrateRate: 0.2})

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var chromeOut bytes.Buffer
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chrome), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.CombinedOutput(&chromeOut))
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()

	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(ta.srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS("#migration-status"))), "chromium output:\n%s", &chromeOut)
	legacy, err := chromedp.Run(bctx, chromedp.Evaluate[int](
		`[...document.querySelectorAll("img")].filter(i => i.getAttribute("src").startsWith("/api/legacy/")).length`))
	require.NoError(t, err)
	require.Positive(t, legacy, "the page was loaded while rows waited")
	all, err := chromedp.Run(bctx, chromedp.Poll[int](
		`(() => { const imgs = [...document.querySelectorAll("img.thumb, img.cover-thumb")]; `+
			`return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0) ? imgs.length : 0; })()`,
		chromedp.WithPollingTimeout(30*time.Second)))
	require.NoError(t, err, "not every thumbnail rendered")
	require.Equal(t, 6, all, "3 photos and 3 covers")
	require.Positive(t, ta.migration().Pending, "the background migration was still going")
}
