package main

import (
	"bytes"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/fsstore"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/migrate"
)

// storageKeys returns storage_key by attachment id for every file
// attachment in the database where (a data directory or a PostgreSQL URL,
// see dbIn).
func storageKeys(t *testing.T, where string) map[int64]string {
	t.Helper()
	db, err := openDB(t.Context(), dbIn(where))
	require.NoError(t, err)
	defer db.Close()
	rows, err := db.QueryContext(t.Context(), `SELECT id, storage_key FROM attachments WHERE storage_key IS NOT NULL`)
	require.NoError(t, err)
	defer rows.Close()
	m := map[int64]string{}
	for rows.Next() {
		var (
			id  int64
			key string
		)
		require.NoError(t, rows.Scan(&id, &key))
		m[id] = key
	}
	require.NoError(t, rows.Err())
	return m
}

// seed creates n legacy parts in the database where (a fresh data
// directory or PostgreSQL schema, see dbIn), without migrating, and returns
// the original bytes of every legacy object.
func seed(t *testing.T, where string, b cas.Backend, n int) map[string][]byte {
	t.Helper()
	db, err := openDB(t.Context(), dbIn(where))
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, SeedLegacy(t.Context(), db, b, n))
	objects := map[string][]byte{}
	for _, k := range legacyKeys(t, b) {
		objects[k] = readObject(t, b, k)
	}
	return objects
}

func readObject(t *testing.T, b cas.Backend, key string) []byte {
	t.Helper()
	obj, err := b.Open(t.Context(), key)
	require.NoError(t, err)
	defer obj.Close()
	data, err := io.ReadAll(obj)
	require.NoError(t, err)
	return data
}

func TestSeedLegacyStoresUUIDKeys(t *testing.T) {
	t.Parallel()
	dir, b := t.TempDir(), memstore.New()
	objects := seed(t, dir, b, 3)
	require.Len(t, objects, 6, "a photo and a datasheet per part")
	keys := storageKeys(t, dir)
	require.Len(t, keys, 6)
	var bare, prefixed int
	for _, k := range keys {
		require.False(t, cas.IsKey(k))
		require.Contains(t, objects, k, "every row points at an object that exists")
		require.Regexp(t, `^(legacy/)?[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, k)
		if strings.HasPrefix(k, "legacy/") {
			prefixed++
		} else {
			bare++
		}
	}
	require.Positive(t, bare)
	require.Positive(t, prefixed)
}

func TestStartupMigration(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, d testDB) {
		dir, b := d.dir, memstore.New()
		objects := seed(t, d.where(), b, 3)

		var progress bytes.Buffer
		ta := newTestApp(t, Config{DataDir: dir, DB: d.dsn, Backend: b, Progress: &progress})
		r := ta.Migration.Report
		require.Equal(t, 6, r.Seen)
		require.Equal(t, 6, r.Migrated)
		require.Equal(t, 2, r.Deduplicated, "the three parts share one datasheet")
		require.Zero(t, r.Failed)
		require.Nil(t, ta.Migration.Cleanup)
		require.Contains(t, progress.String(), "migrate: 6/6 attachments")
		require.Contains(t, progress.String(), "6 migrated (2 already stored), 0 failed")

		// Every row is on the CAS key of its original bytes.
		for _, k := range storageKeys(t, d.where()) {
			require.True(t, cas.IsKey(k), k)
		}
		require.Len(t, keys(t, b, cas.KeyPrefix), 4, "three photos and one datasheet")
		// Without -cleanup the legacy objects stay.
		require.ElementsMatch(t, mapKeysOf(objects), legacyKeys(t, b))

		// The API serves the migrated files: every download is one of the
		// originals, and every part has its cover.
		originals := map[cas.Hash]bool{}
		for _, data := range objects {
			originals[cas.SumBytes(data)] = true
		}
		var parts []partJSON
		ta.doJSON("GET", "/api/parts", nil, http.StatusOK, &parts)
		require.Len(t, parts, 3)
		for _, p := range parts {
			require.NotNil(t, p.CoverURL, p.Key)
			status, _, _ := ta.get(*p.CoverURL)
			require.Equal(t, http.StatusOK, status)
			atts := ta.attachments(p.Key)
			require.Len(t, atts, 3)
			types := []string{}
			for _, at := range atts {
				types = append(types, at.AttachmentType)
				if at.AttachmentType == "url" {
					require.Nil(t, at.DownloadURL)
					continue
				}
				status, _, body := ta.get(*at.DownloadURL)
				require.Equal(t, http.StatusOK, status)
				require.True(t, originals[cas.SumBytes(body)])
			}
			require.Equal(t, []string{"image", "pdf", "url"}, types)
		}

		// A second start has nothing left to do.
		ta2 := newTestApp(t, Config{DataDir: dir, DB: d.dsn, Backend: b})
		require.Zero(t, ta2.Migration.Report.Seen)
	})
}

func TestStartupMigrationCleanup(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, d testDB) {
		dir, b := d.dir, memstore.New()
		objects := seed(t, d.where(), b, 2)
		// An object of the old app that no row references, and one that a row
		// still needs after migration: neither is CAS.
		require.NoError(t, b.Put(t.Context(), "legacy/unreferenced", strings.NewReader("x"), 1, cas.PutOptions{}))

		// Not final: cleanup is refused, and nothing is deleted.
		_, err := NewApp(t.Context(), Config{DataDir: dir, DB: d.dsn, Backend: b, Cleanup: true})
		require.ErrorContains(t, err, "not final")
		require.Len(t, legacyKeys(t, b), len(objects)+1, "a refused cleanup deletes nothing")

		ta := newTestApp(t, Config{DataDir: dir, DB: d.dsn, Backend: b, Cleanup: true, Final: true})
		require.NotNil(t, ta.Migration.Cleanup)
		require.Equal(t, len(objects)+1, ta.Migration.Cleanup.Deleted)
		require.Empty(t, legacyKeys(t, b), "every legacy object is gone")
		require.Len(t, keys(t, b, cas.KeyPrefix), 3, "the CAS objects stay")
		for _, k := range storageKeys(t, d.where()) {
			require.True(t, cas.IsKey(k))
		}
	})
}

// TestStartupRefusesMissingLegacyObject: a legacy object that is missing
// makes startup fail with every other row migrated and that row untouched;
// after the object is restored, the next start migrates it and serves.
func TestStartupRefusesMissingLegacyObject(t *testing.T) {
	t.Parallel()
	dir, b := t.TempDir(), memstore.New()
	objects := seed(t, dir, b, 2)
	before := storageKeys(t, dir)
	var missingID int64
	for id := range before {
		missingID = id
		break
	}
	missingKey := before[missingID]
	require.NoError(t, b.Delete(t.Context(), missingKey))

	var progress bytes.Buffer
	app, err := NewApp(t.Context(), Config{DataDir: dir, Backend: b, Progress: &progress})
	require.ErrorIs(t, err, migrate.ErrIncomplete)
	require.ErrorIs(t, err, cas.ErrNotFound)
	require.Nil(t, app)
	require.Contains(t, err.Error(), "refusing to start")
	require.Contains(t, progress.String(), "1 failed")

	after := storageKeys(t, dir)
	require.Equal(t, missingKey, after[missingID], "the failed row keeps its legacy key")
	for id, k := range after {
		if id != missingID {
			require.True(t, cas.IsKey(k), "row %d migrated", id)
		}
	}

	// Fix it: put the object back. The rerun migrates just that row.
	data := objects[missingKey]
	require.NoError(t, b.Put(t.Context(), missingKey, bytes.NewReader(data), int64(len(data)), cas.PutOptions{}))
	ta := newTestApp(t, Config{DataDir: dir, Backend: b})
	require.Equal(t, 1, ta.Migration.Report.Seen)
	require.Equal(t, 1, ta.Migration.Report.Migrated)
	require.Equal(t, cas.SumBytes(data).Key(), storageKeys(t, dir)[missingID])
}

// TestRunMigrateOnly drives the command itself: -seed-legacy with the
// default fsstore, -migrate-only, then a missing legacy file makes the
// command fail, and restoring it makes it succeed.
func TestRunMigrateOnly(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var out bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"-data", dir, "-seed-legacy", "2", "-migrate-only"}, &out))
	require.Contains(t, out.String(), "4 migrated (1 already stored), 0 failed")
	for _, k := range storageKeys(t, dir) {
		require.True(t, cas.IsKey(k))
	}

	// Seed two more, lose one of their files, and start again.
	fs, err := fsstore.New(filepath.Join(dir, "blobs"))
	require.NoError(t, err)
	objects := seed(t, dir, fs, 2)
	var lost string
	for _, k := range storageKeys(t, dir) {
		if !cas.IsKey(k) {
			lost = k
			break
		}
	}
	require.NotEmpty(t, lost)
	require.NoError(t, fs.Delete(t.Context(), lost))

	out.Reset()
	err = run(t.Context(), []string{"-data", dir, "-migrate-only"}, &out)
	require.ErrorIs(t, err, migrate.ErrIncomplete)
	require.Contains(t, out.String(), "attachment not migrated")
	require.Contains(t, out.String(), lost)

	data := objects[lost]
	require.NoError(t, fs.Put(t.Context(), lost, bytes.NewReader(data), int64(len(data)), cas.PutOptions{}))
	out.Reset()
	require.NoError(t, run(t.Context(), []string{"-data", dir, "-migrate-only", "-cleanup", "-final"}, &out))
	require.Contains(t, out.String(), "1 migrated")
	require.Contains(t, out.String(), "cleanup: 8 legacy objects deleted")
	require.Empty(t, legacyKeys(t, fs))
}

func mapKeysOf[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
