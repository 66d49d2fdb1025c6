package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
)

// noRedirect is a client that returns redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// send sends a request with optional headers and returns the response,
// body read.
func (ta *testApp) send(c *http.Client, method, path string, hdr map[string]string) (*http.Response, []byte) {
	ta.t.Helper()
	req, err := http.NewRequestWithContext(ta.t.Context(), method, ta.srv.URL+path, nil)
	require.NoError(ta.t, err)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	require.NoError(ta.t, err)
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, err = buf.ReadFrom(resp.Body)
	require.NoError(ta.t, err)
	return resp, buf.Bytes()
}

// allParts returns every part with its attachments, as the API gives them.
func (ta *testApp) allParts() map[string][]attachmentJSON {
	ta.t.Helper()
	var parts []partJSON
	ta.doJSON("GET", "/api/parts", nil, http.StatusOK, &parts)
	out := map[string][]attachmentJSON{}
	for _, p := range parts {
		out[p.Key] = ta.attachments(p.Key)
	}
	return out
}

func (ta *testApp) migration() migrationJSON {
	ta.t.Helper()
	var j migrationJSON
	ta.doJSON("GET", "/api/migration", nil, http.StatusOK, &j)
	return j
}

// requireForbidden checks the answer to a bad legacy URL.
func requireForbidden(t *testing.T, ta *testApp, path, why string) {
	t.Helper()
	resp, _ := ta.send(noRedirect, "GET", path, nil)
	require.Equal(t, http.StatusForbidden, resp.StatusCode, why+": "+path)
	require.Equal(t, "no-store", resp.Header.Get("Cache-Control"), why)
}

func TestLegacyRouteServesWaitingFiles(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, d testDB) {
		dir, b := d.dir, memstore.New()
		objects := seed(t, d.where(), b, 2)
		ta := newTestApp(t, Config{DataDir: dir, DB: d.dsn, Backend: b, Migrate: MigrateOff})
		keysBefore := storageKeys(t, d.where())

		var parts []partJSON
		ta.doJSON("GET", "/api/parts", nil, http.StatusOK, &parts)
		require.Len(t, parts, 2)
		for _, p := range parts {
			require.NotNil(t, p.CoverURL, "a waiting cover has a URL")
			require.True(t, strings.HasPrefix(*p.CoverURL, "/api/legacy/"), *p.CoverURL)
		}

		var download, thumb, other *attachmentJSON
		for _, atts := range ta.allParts() {
			for i := range atts {
				at := &atts[i]
				if at.AttachmentType == "url" {
					continue
				}
				require.NotNil(t, at.DownloadURL, "a waiting file has a download URL")
				require.Contains(t, *at.DownloadURL, "expires=")
				if at.AttachmentType == "image" {
					require.NotNil(t, at.ThumbnailURL)
					if thumb == nil {
						thumb = at
					}
				} else if download == nil {
					download = at
				} else {
					other = at
				}
			}
		}
		require.NotNil(t, download)
		require.NotNil(t, other)

		// The legacy object, privately cacheable for a short while.
		resp, body := ta.send(http.DefaultClient, "GET", *download.DownloadURL, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, objects[keysBefore[download.ID]], body)
		cc := resp.Header.Get("Cache-Control")
		require.True(t, strings.HasPrefix(cc, "private, max-age="), cc)
		maxAge, err := strconv.Atoi(strings.TrimPrefix(cc, "private, max-age="))
		require.NoError(t, err)
		require.LessOrEqual(t, maxAge, 60)
		require.NotContains(t, cc, "immutable")
		require.Equal(t, "application/pdf", resp.Header.Get("Content-Type"))
		require.Contains(t, resp.Header.Get("Content-Disposition"), "attachment")
		etag := resp.Header.Get("ETag")
		require.NotEmpty(t, etag)
		resp, _ = ta.send(http.DefaultClient, "GET", *download.DownloadURL, map[string]string{"If-None-Match": etag})
		require.Equal(t, http.StatusNotModified, resp.StatusCode)
		resp, body = ta.send(http.DefaultClient, "HEAD", *download.DownloadURL, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Empty(t, body)

		// Tampered, expired and unknown links: 403, no-store.
		u, err := url.Parse(*download.DownloadURL)
		require.NoError(t, err)
		q := u.Query()
		for name, change := range map[string]func(url.Values){
			"filename":  func(v url.Values) { v.Set("filename", "evil.html") },
			"type":      func(v url.Values) { v.Set("content_type", "text/html") },
			"inline":    func(v url.Values) { v.Set("disposition", "inline") },
			"expires":   func(v url.Values) { v.Set("expires", "9999999999") },
			"no sig":    func(v url.Values) { v.Del("sig") },
			"no expiry": func(v url.Values) { v.Del("expires") },
			"bad sig":   func(v url.Values) { v.Set("sig", strings.Repeat("A", 43)) },
		} {
			v := url.Values{}
			for k, vs := range q {
				v[k] = append([]string(nil), vs...)
			}
			change(v)
			requireForbidden(t, ta, u.Path+"?"+v.Encode(), name)
		}
		otherPath := strings.Replace(u.Path, "/api/legacy/"+strconv.FormatInt(download.ID, 10)+"/",
			"/api/legacy/"+strconv.FormatInt(other.ID, 10)+"/", 1)
		requireForbidden(t, ta, otherPath+"?"+u.RawQuery, "a URL for another attachment")
		unknown := strings.Replace(u.Path, "/api/legacy/"+strconv.FormatInt(download.ID, 10)+"/", "/api/legacy/99999/", 1)
		requireForbidden(t, ta, unknown+"?"+u.RawQuery, "unknown attachment")
		requireForbidden(t, ta, "/api/legacy/x/"+strings.Repeat("0", 64)+"?"+u.RawQuery, "bad id")
		ta.online.skew.Store(int64(LegacyTTL + time.Second))
		requireForbidden(t, ta, *download.DownloadURL, "expired")
		ta.online.skew.Store(0)

		// The status says what waits; the page shows it.
		st := ta.migration()
		require.Equal(t, MigrateOff, st.Mode)
		require.Equal(t, "off", st.State)
		require.Equal(t, len(keysBefore), st.Pending)
		_, _, page := ta.get("/")
		require.Contains(t, string(page), `id="migration-status"`)

		// A waiting thumbnail: the row is migrated now and redirected.
		resp, _ = ta.send(noRedirect, "GET", *thumb.ThumbnailURL, nil)
		require.Equal(t, http.StatusFound, resp.StatusCode)
		loc := resp.Header.Get("Location")
		require.True(t, strings.HasPrefix(loc, "/api/cas/"), loc)
		require.Contains(t, loc, "thumbnail=150")
		require.True(t, cas.IsKey(storageKeys(t, d.where())[thumb.ID]), "the row is migrated on demand")
		resp, body = ta.send(http.DefaultClient, "GET", *thumb.ThumbnailURL, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "image/jpeg", resp.Header.Get("Content-Type"))
		require.NotEmpty(t, body)
		// Its old download URL now leads to the CAS URL.
		resp, _ = ta.send(noRedirect, "GET", *thumb.DownloadURL, nil)
		require.Equal(t, http.StatusFound, resp.StatusCode)
		require.True(t, strings.HasPrefix(resp.Header.Get("Location"), "/api/cas/"))
		require.Equal(t, len(keysBefore)-1, ta.migration().Pending)
	})
}

// requireAllURLsWork follows every URL the API returns for a file and
// checks that it answers 200.
func requireAllURLsWork(t *testing.T, ta *testApp) {
	t.Helper()
	for _, atts := range ta.allParts() {
		for _, at := range atts {
			if at.AttachmentType == "url" {
				continue
			}
			require.NotNil(t, at.DownloadURL, "attachment %d has no download URL", at.ID)
			urls := []string{*at.DownloadURL}
			if at.AttachmentType == "image" {
				require.NotNil(t, at.ThumbnailURL, "image %d has no thumbnail URL", at.ID)
				urls = append(urls, *at.ThumbnailURL)
			}
			for _, u := range urls {
				resp, body := ta.send(http.DefaultClient, "GET", u, nil)
				require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", u, body)
			}
		}
	}
}

func TestOnlineMigrationServesAtOnceAndCompletes(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, d testDB) {
		dir, b := d.dir, memstore.New()
		seed(t, d.where(), b, 3)
		// Slow enough that serving starts long before the migration ends.
		ta := newTestApp(t, Config{DataDir: dir, DB: d.dsn, Backend: b, Migrate: MigrateOnline, MigrateRate: 4})
		st := ta.migration()
		require.Equal(t, MigrateOnline, st.Mode)
		require.Positive(t, st.Pending, "serving starts before the migration is done")
		requireAllURLsWork(t, ta)

		require.Eventually(t, func() bool { return ta.migration().State == "complete" }, 20*time.Second, 50*time.Millisecond)
		for id, k := range storageKeys(t, d.where()) {
			require.True(t, cas.IsKey(k), "attachment %d", id)
		}
		for _, atts := range ta.allParts() {
			for _, at := range atts {
				if at.DownloadURL != nil {
					require.True(t, strings.HasPrefix(*at.DownloadURL, "/api/cas/"), *at.DownloadURL)
				}
			}
		}
		requireAllURLsWork(t, ta)
		require.False(t, ta.migration().Final)
		require.Len(t, legacyKeys(t, b), 6, "not final: nothing deleted")
	})
}

func TestOnlineFinalAndCleanupRunAfterCompletion(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, d testDB) {
		dir, b := d.dir, memstore.New()
		seed(t, d.where(), b, 2)
		ta := newTestApp(t, Config{DataDir: dir, DB: d.dsn, Backend: b, Migrate: MigrateOnline, Final: true, Cleanup: true})
		require.Eventually(t, func() bool {
			ta.online.mu.Lock()
			defer ta.online.mu.Unlock()
			return ta.online.report != nil
		}, 20*time.Second, 20*time.Millisecond)
		require.True(t, ta.migration().Final)
		require.Empty(t, legacyKeys(t, b))
		requireAllURLsWork(t, ta)
	})
}

func TestCleanupRefusedUnlessFinal(t *testing.T) {
	t.Parallel()
	dir, b := t.TempDir(), memstore.New()
	seed(t, dir, b, 1)
	for _, mode := range []string{MigrateOnline, MigrateOff, MigrateBlocking} {
		_, err := NewApp(t.Context(), Config{DataDir: dir, Backend: b, Migrate: mode, Cleanup: true})
		require.ErrorContains(t, err, "not final", mode)
	}
	require.Len(t, legacyKeys(t, b), 2)
}

func TestRevertFlag(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, d testDB) {
		dir, b := d.dir, memstore.New()
		seed(t, d.where(), b, 2)
		before := storageKeys(t, d.where())
		migrateBlocking := func() {
			app, err := NewApp(t.Context(), Config{DataDir: dir, DB: d.dsn, Backend: b, Migrate: MigrateBlocking})
			require.NoError(t, err)
			require.NoError(t, app.Close())
		}
		migrateBlocking()
		after := storageKeys(t, d.where())
		require.NotEqual(t, before, after)

		// -revert: every row back on its legacy key; the app runs it with
		// the migration off.
		app, err := NewApp(t.Context(), Config{DataDir: dir, DB: d.dsn, Backend: b, Migrate: MigrateOff})
		require.NoError(t, err)
		var out bytes.Buffer
		require.NoError(t, app.Revert(t.Context(), &out))
		require.NoError(t, app.Close())
		require.Contains(t, out.String(), "4 reverted")
		require.Equal(t, before, storageKeys(t, d.where()))

		// Migrating again gives the same CAS keys.
		migrateBlocking()
		require.Equal(t, after, storageKeys(t, d.where()))
	})
}

func TestRevertFlagThroughRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var out bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"-data", dir, "-seed-legacy", "1", "-migrate-only"}, &out))
	migrated := storageKeys(t, dir)
	out.Reset()
	require.NoError(t, run(t.Context(), []string{"-data", dir, "-revert"}, &out))
	require.Contains(t, out.String(), "2 reverted")
	for id, k := range storageKeys(t, dir) {
		require.False(t, cas.IsKey(k), "attachment %d back on its legacy key", id)
	}
	out.Reset()
	require.NoError(t, run(t.Context(), []string{"-data", dir, "-migrate-only"}, &out))
	require.Equal(t, migrated, storageKeys(t, dir))
}

// TestLegacyRouteClosedInBlockingMode: blocking mode hands out no legacy
// URLs, so the route accepts none, whatever the URL carries (without a
// Signer, casurl.ParseAt would check nothing and the migrated rows would
// redirect).
func TestLegacyRouteClosedInBlockingMode(t *testing.T) {
	t.Parallel()
	dir, b := t.TempDir(), memstore.New()
	seed(t, dir, b, 1)
	ta := newTestApp(t, Config{DataDir: dir, Backend: b})
	for id := range storageKeys(t, dir) {
		requireForbidden(t, ta, "/api/legacy/"+strconv.FormatInt(id, 10)+"/"+strings.Repeat("0", 64)+
			"?content_type=application/pdf&expires=9999999999&sig=x", "blocking mode")
	}
}

// movingBackend plays another replica: the first Open of key migrates
// that row itself (object stored under its CAS key, row repointed), then
// answers with the legacy object (this run's commit then conflicts) or,
// with cleanedUp, as if that replica's -cleanup had deleted it.
type movingBackend struct {
	cas.Backend
	key       string
	cleanedUp bool
	move      func()
	once      sync.Once
}

func (m *movingBackend) Open(ctx context.Context, key string) (cas.Object, error) {
	moved := false
	if key == m.key {
		m.once.Do(func() { m.move(); moved = true })
	}
	if moved && m.cleanedUp {
		return nil, fmt.Errorf("legacy object %s: %w", key, cas.ErrNotFound)
	}
	return m.Backend.Open(ctx, key)
}

// TestOnlineMigrationRowMovedIsAConflict: a row that another replica
// migrates while this one does is a conflict, not a failure, whether this
// run's commit finds the row changed (migrate.ErrConflict) or its read
// finds the legacy object gone (the other replica's -cleanup): the
// background migration completes. Before the fix it stopped, with
// ErrConflict or "open legacy object: not found".
func TestOnlineMigrationRowMovedIsAConflict(t *testing.T) {
	t.Parallel()
	for _, cleanedUp := range []bool{false, true} {
		t.Run(fmt.Sprintf("cleaned up %v", cleanedUp), func(t *testing.T) {
			t.Parallel()
			dir, mem := t.TempDir(), memstore.New()
			objects := seed(t, dir, mem, 1)
			var (
				id  int64
				key string
			)
			for id, key = range storageKeys(t, dir) {
				break
			}
			mb := &movingBackend{Backend: mem, key: key, cleanedUp: cleanedUp}
			mb.move = func() {
				data := objects[key]
				h := cas.SumBytes(data)
				if err := mem.Put(context.Background(), h.Key(), bytes.NewReader(data), int64(len(data)), cas.PutOptions{}); err != nil && !errors.Is(err, cas.ErrExists) {
					t.Error(err)
				}
				db, err := openDB(context.Background(), dbIn(dir))
				if err != nil {
					t.Error(err)
					return
				}
				defer db.Close()
				if _, err := db.ExecContext(context.Background(), `UPDATE attachments SET storage_key = ? WHERE id = ?`, h.Key(), id); err != nil {
					t.Error(err)
				}
			}
			ta := newTestApp(t, Config{DataDir: dir, Backend: mb, Migrate: MigrateOnline})
			require.Eventually(t, func() bool { return !ta.online.running.Load() }, 20*time.Second, 10*time.Millisecond)
			ta.online.mu.Lock()
			bgErr := ta.online.bgErr
			ta.online.mu.Unlock()
			require.NoError(t, bgErr)
			st := ta.migration()
			require.Equal(t, "complete", st.State)
			require.Equal(t, 1, st.Migrated, "the other row; the moved one was the other replica's")
			require.Equal(t, 1, st.Conflicts, "/api/migration shows the moved row as a conflict")
			require.Zero(t, st.Failed)
			for i, k := range storageKeys(t, dir) {
				require.True(t, cas.IsKey(k), "attachment %d", i)
			}
		})
	}
}
