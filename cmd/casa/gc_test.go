package main_test

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/fsstore"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/migrate/sqlmigrator"
)

type gcJSON struct {
	DryRun         bool   `json:"dry_run"`
	MinAge         string `json:"min_age"`
	Scanned        int
	Deleted        int
	WouldDelete    int `json:"would_delete"`
	Kept           int
	Referenced     int
	Young          int
	Touched        int
	Failed         int
	Bytes          int64
	DerivedScanned int `json:"derived_scanned"`
	DerivedDeleted int `json:"derived_deleted"`
	Keys           []string
}

// gcStore is a store seeded for gc, and what gc must do with it.
type gcStore struct {
	dir string
	// old blobs (two days): referenced, and an orphan with a thumbnail;
	// a young orphan (two hours, kept by the default day, deleted with
	// -min-age 1h); a young orphan a writer touches; a young referenced
	// blob.
	referenced, orphan, youngOrphan, touched, youngReferenced cas.Hash
	orphanSize, youngSize                                     int64
	legacy                                                    string // an old, unreferenced legacy object: gc never touches it
}

func thumbKey(h cas.Hash) string { return cas.DerivedKey(cas.ThumbnailPrefix, h, "150.jpg") }

// file is the path of key's file in an fsstore root.
func (s gcStore) file(key string) string {
	if hex, ok := strings.CutPrefix(key, cas.KeyPrefix); ok {
		return filepath.Join(s.dir, "cas", hex[:2], hex)
	}
	return filepath.Join(s.dir, filepath.FromSlash(key))
}

func (s gcStore) exists(t *testing.T, key string) bool {
	t.Helper()
	_, err := os.Stat(s.file(key))
	if err != nil {
		require.ErrorIs(t, err, os.ErrNotExist)
		return false
	}
	return true
}

// seedGC writes the blobs, thumbnails and legacy object of a gcStore into
// a new fsstore, sets their ages, and creates table attachments in db with
// rows pointing at the referenced blobs and at the legacy key of another
// row (which gc must not mind).
func seedGC(t *testing.T, db *sql.DB) gcStore {
	t.Helper()
	ctx := t.Context()
	s := gcStore{dir: filepath.Join(t.TempDir(), "store"), legacy: "uploads/6b1a0f5e-0d0e-4c4e-9a57-000000000009"}
	b, err := fsstore.New(s.dir, fsstore.WithoutSync())
	require.NoError(t, err)
	store := cas.New(b)
	putBlob := func(seed uint64, n int) cas.Hash {
		res, err := store.Put(ctx, bytes.NewReader(testutil.Bytes(seed, n)))
		require.NoError(t, err)
		return res.Hash
	}
	s.referenced, s.orphan, s.youngOrphan = putBlob(1, 1000), putBlob(2, 3000), putBlob(3, 500)
	s.touched, s.youngReferenced = putBlob(4, 700), putBlob(5, 900)
	s.orphanSize, s.youngSize = 3000, 500
	gone := cas.SumBytes([]byte("a blob deleted long ago"))
	raw := cas.Checked(b)
	for _, k := range []string{thumbKey(s.referenced), thumbKey(s.orphan), thumbKey(gone), s.legacy} {
		require.NoError(t, raw.Put(ctx, k, strings.NewReader("jpeg"), 4, cas.PutOptions{}))
	}
	age := func(key string, d time.Duration) {
		at := time.Now().Add(-d)
		require.NoError(t, os.Chtimes(s.file(key), at, at))
	}
	for _, k := range []string{s.referenced.Key(), s.orphan.Key(), thumbKey(s.referenced), thumbKey(s.orphan), thumbKey(gone), s.legacy} {
		age(k, 48*time.Hour)
	}
	for _, h := range []cas.Hash{s.youngOrphan, s.touched, s.youngReferenced} {
		age(h.Key(), 2*time.Hour)
	}

	_, err = db.ExecContext(ctx, `CREATE TABLE attachments (id INTEGER PRIMARY KEY, storage_key TEXT)`)
	require.NoError(t, err)
	for i, k := range []string{s.referenced.Key(), s.youngReferenced.Key(), "uploads/still-waiting"} {
		_, err := db.ExecContext(ctx, fmt.Sprintf(`INSERT INTO attachments (id, storage_key) VALUES (%d, '%s')`, i+1, k))
		require.NoError(t, err)
	}
	return s
}

// gcScenario runs gc through the binary against the database dbArg names
// (db is the same database; placeholders says how to build the test's
// own Migrator on it, the application's writer).
func gcScenario(t *testing.T, db *sql.DB, dbArg string, opts ...sqlmigrator.Option) {
	c := newCLI(t)
	s := seedGC(t, db)
	args := func(extra ...string) []string {
		return append([]string{"gc", "-dir", s.dir, "-db", dbArg, "-table", "attachments", "-key-column", "storage_key"}, extra...)
	}
	decode := func(r result) gcJSON {
		t.Helper()
		var j gcJSON
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &j), r.stdout)
		return j
	}
	all := []string{s.referenced.Key(), s.orphan.Key(), s.youngOrphan.Key(), s.touched.Key(), s.youngReferenced.Key(),
		thumbKey(s.referenced), thumbKey(s.orphan), s.legacy}
	gone := thumbKey(cas.SumBytes([]byte("a blob deleted long ago")))

	// 1. A dry run with the default day of grace lists the old orphan,
	// its thumbnail and the thumbnail without a blob; deletes nothing.
	r := c.ok(args("-dry-run")...)
	require.ElementsMatch(t, []string{
		"would delete " + s.orphan.Key(),
		"would delete " + thumbKey(s.orphan),
		"would delete " + gone,
	}, lines(r.stdout)[:3])
	require.Len(t, lines(r.stdout), 4)
	require.Contains(t, r.stdout, "dry run: would delete 1 of 5 blobs (2.9 KiB) and 2 derived objects; kept 4 (2 referenced, 2 younger than 24h0m0s")
	require.Contains(t, r.stderr, "casa gc (dry run): 5 blobs, 2.9 KiB deletable in", "plain progress lines when stderr is no terminal")
	for _, k := range append(all, gone) {
		require.True(t, s.exists(t, k), "a dry run deletes nothing: %s", k)
	}
	j := decode(c.ok(args("-dry-run", "-json")...))
	require.Equal(t, gcJSON{DryRun: true, MinAge: "24h0m0s", Scanned: 5, WouldDelete: 1, Kept: 4, Referenced: 2, Young: 2,
		Bytes: s.orphanSize, DerivedScanned: 3, DerivedDeleted: 2, Keys: j.Keys}, j)
	require.ElementsMatch(t, []string{s.orphan.Key(), thumbKey(s.orphan), gone}, j.Keys)

	// 2. The real run, default grace: exactly those go.
	j = decode(c.ok(args("-json")...))
	require.Equal(t, 1, j.Deleted)
	require.Equal(t, 2, j.DerivedDeleted)
	require.Equal(t, s.orphanSize, j.Bytes)
	require.False(t, s.exists(t, s.orphan.Key()))
	require.False(t, s.exists(t, thumbKey(s.orphan)))
	require.False(t, s.exists(t, gone))
	for _, k := range all {
		if k != s.orphan.Key() && k != thumbKey(s.orphan) {
			require.True(t, s.exists(t, k), "kept: %s", k)
		}
	}

	// 3. A writer of the same database relies on one young orphan (its
	// Store touches through migrate.PutHook, as the application's do):
	// with -min-age 1h gc deletes the other young orphan, keeps that one.
	m, err := sqlmigrator.New(db, sqlmigrator.Table{Name: "attachments", IDColumn: "id", KeyColumn: "storage_key"}, opts...)
	require.NoError(t, err)
	require.NoError(t, m.Touch(t.Context(), s.touched.Key()))
	r = c.ok(args("-min-age", "1h")...)
	require.Equal(t, []string{"deleted " + s.youngOrphan.Key()}, lines(r.stdout)[:1])
	require.Contains(t, r.stdout, "deleted 1 of 4 blobs (500 B) and 0 derived objects; kept 3 (2 referenced, 0 younger than 1h0m0s, 1 touched meanwhile, 0 failed)")
	require.False(t, s.exists(t, s.youngOrphan.Key()))
	require.True(t, s.exists(t, s.touched.Key()), "touched through the guard: kept")
	require.True(t, s.exists(t, s.legacy), "gc never deletes a legacy object")
	c.ok("verify", "-dir", s.dir) // what is left is intact

	// 4. Nothing left to do: a second run deletes nothing.
	j = decode(c.ok(args("-min-age", "1h", "-json")...))
	require.Zero(t, j.Deleted)
	require.Empty(t, j.Keys)
}

func TestGCSQLite(t *testing.T) {
	t.Parallel()
	db, path := openSQLite(t)
	gcScenario(t, db, path)
	var n int
	require.NoError(t, db.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM attachments_casa_gc`).Scan(&n),
		"the guard's table is beside the table")
}

func TestGCPostgres(t *testing.T) {
	t.Parallel()
	db := testutil.NewPostgres(t)
	gcScenario(t, db.DB, db.DSN, sqlmigrator.WithDollarPlaceholders()) // search_path: the test's own schema
}

// TestGCBadInput: bad flags are one line and exit 2, before anything is
// opened or deleted.
func TestGCBadInput(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	dir := filepath.Join(t.TempDir(), "store")
	dbFile := writeFile(t, t.TempDir(), "app.db", nil)
	base := []string{"gc", "-dir", dir, "-db", dbFile, "-table", "attachments", "-key-column", "storage_key"}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{append(base, "-min-age", "0"), "-min-age must be positive"},
		{append(base, "-min-age", "-1h"), "-min-age must be positive"},
		{append(base, "-min-age", "soon"), "invalid value"},
		{append(base, "extra"), "gc takes no arguments"},
		{[]string{"gc", "-dir", dir, "-db", dbFile}, "give -table and -key-column"},
		{[]string{"gc", "-dir", dir, "-db", "postgres://u:secret@[::1", "-table", "t", "-key-column", "k"}, "-db"},
		{[]string{"gc", "-dir", dir, "-db", filepath.Join(dir, "missing.db"), "-table", "t", "-key-column", "k"}, "no such SQLite database file"},
	} {
		r := c.run(tt.args...)
		requireOneLineError(t, r, 2, tt.want)
		require.NotContains(t, r.stderr, "secret")
	}
	_, err := os.Stat(dir)
	require.ErrorIs(t, err, os.ErrNotExist, "no store was created")

	r := c.ok("help", "gc")
	require.Contains(t, r.stdout, "Usage: casa gc [flags]")
	require.Contains(t, r.stdout, "_casa_gc")
	require.Contains(t, r.stdout, "-min-age")
	require.Contains(t, c.ok("help").stdout, "gc ")
	require.Contains(t, c.ok("help", "put").stdout, "does not touch")
}
