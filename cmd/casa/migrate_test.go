package main_test

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, to seed the test database

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/fsstore"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/internal/testutil/s3test"
)

// legacyRow is a seeded row and the bytes its legacy object holds.
type legacyRow struct {
	id   int
	key  string
	body []byte
}

// seedLegacy writes the rows' legacy objects into a new fsstore at dir
// and inserts the rows (plus one without an object) into table attachments
// of db, whose columns are id and storage_key.
func seedLegacy(t *testing.T, db *sql.DB, dir string) []legacyRow {
	t.Helper()
	shared := testutil.Bytes(10, 5000)
	rows := []legacyRow{
		{1, "legacy/6b1a0f5e-0d0e-4c4e-9a57-000000000001", testutil.Bytes(11, 2000)},
		{2, "legacy/6b1a0f5e-0d0e-4c4e-9a57-000000000002", shared},
		{3, "6b1a0f5e-0d0e-4c4e-9a57-000000000003", testutil.Bytes(13, 70000)},
		{4, "legacy/6b1a0f5e-0d0e-4c4e-9a57-000000000004", shared}, // same bytes as 2: deduplicated
	}
	b, err := fsstore.New(dir, fsstore.WithoutSync())
	require.NoError(t, err)
	src := cas.Checked(b)
	for _, r := range rows {
		require.NoError(t, src.Put(t.Context(), r.key, bytes.NewReader(r.body), int64(len(r.body)), cas.PutOptions{}))
	}
	_, err = db.ExecContext(t.Context(), `CREATE TABLE attachments (id INTEGER PRIMARY KEY, storage_key TEXT)`)
	require.NoError(t, err)
	for _, r := range rows {
		_, err := db.ExecContext(t.Context(), fmt.Sprintf(`INSERT INTO attachments (id, storage_key) VALUES (%d, '%s')`, r.id, r.key))
		require.NoError(t, err)
	}
	_, err = db.ExecContext(t.Context(), `INSERT INTO attachments (id, storage_key) VALUES (5, NULL)`)
	require.NoError(t, err)
	return rows
}

// keysInDB returns the storage_key of every row, by id.
func keysInDB(t *testing.T, db *sql.DB) map[int]string {
	t.Helper()
	rs, err := db.QueryContext(t.Context(), `SELECT id, storage_key FROM attachments ORDER BY id`)
	require.NoError(t, err)
	defer rs.Close()
	out := map[int]string{}
	for rs.Next() {
		var id int
		var key sql.NullString
		require.NoError(t, rs.Scan(&id, &key))
		out[id] = key.String
	}
	require.NoError(t, rs.Err())
	return out
}

type migrateJSON struct {
	DryRun       bool `json:"dry_run"`
	Seen         int
	Migrated     int
	Deduplicated int
	Failed       int
	Bytes        int64
	Final        bool
	Failures     []struct{ ID, Key, Error string }
}

type cleanupJSON struct {
	DryRun     bool   `json:"dry_run"`
	MinAge     string `json:"min_age"`
	Scanned    int
	Deleted    int
	Kept       int
	Revertible int
	Keys       []string
	Notes      []string
}

// migrationScenario runs the operator's whole migration through the
// binary: dry run, run, revert, run with -final, cleanup dry run and
// cleanup, against the database dbArg names (db is the same database, for
// the test's own queries).
func migrationScenario(t *testing.T, db *sql.DB, dbArg string) {
	c := newCLI(t)
	dir := filepath.Join(t.TempDir(), "store")
	rows := seedLegacy(t, db, dir)
	legacy := keysInDB(t, db)
	args := func(extra ...string) []string {
		return append([]string{"-dir", dir, "-db", dbArg, "-table", "attachments", "-key-column", "storage_key"}, extra...)
	}
	decode := func(r result, v any) {
		t.Helper()
		require.NoError(t, json.Unmarshal([]byte(r.stdout), v), r.stdout)
	}

	// 1. A dry run reads and hashes everything, changes nothing.
	var mj migrateJSON
	decode(c.ok(append([]string{"migrate"}, args("-dry-run", "-json")...)...), &mj)
	require.Equal(t, migrateJSON{DryRun: true, Seen: 4, Migrated: 4, Deduplicated: 1, Bytes: 2000 + 5000 + 70000 + 5000,
		Failures: mj.Failures}, mj)
	require.Empty(t, mj.Failures)
	require.Equal(t, legacy, keysInDB(t, db), "a dry run commits nothing")
	r := c.ok(append([]string{"ls"}, args()[:2]...)...)
	require.Empty(t, r.stdout, "a dry run stores no blob")

	// 2. The run: every row on its blob's key, progress on stderr.
	r = c.ok(append([]string{"migrate"}, args("-concurrency", "2")...)...)
	require.Contains(t, r.stdout, "migrated 4 of 4 rows (1 deduplicated")
	require.Contains(t, r.stderr, "casa migrate: 4/4 rows")
	got := keysInDB(t, db)
	for _, row := range rows {
		h := cas.SumBytes(row.body)
		require.Equal(t, h.Key(), got[row.id], "row %d", row.id)
		out := c.ok("get", "-dir", dir, h.String())
		require.True(t, bytes.Equal(row.body, []byte(out.stdout)), "row %d's blob holds its bytes", row.id)
	}
	require.Empty(t, got[5], "a row without an object stays so")
	// Each blob was touched through the collector's guard before its row
	// pointed at it (a gc running meanwhile keeps it): 3 distinct blobs.
	var touched int
	require.NoError(t, db.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM attachments_casa_gc`).Scan(&touched))
	require.Equal(t, 3, touched)

	// 3. Cleanup keeps young objects by default (24 h) ...
	var cj cleanupJSON
	decode(c.ok(append([]string{"cleanup"}, args("-dry-run", "-json")...)...), &cj)
	require.Equal(t, "24h0m0s", cj.MinAge)
	require.Empty(t, cj.Keys)
	// ... and, until the migration is final, what the journal can revert to.
	decode(c.ok(append([]string{"cleanup"}, args("-dry-run", "-json", "-min-age", "0")...)...), &cj)
	require.Empty(t, cj.Keys)
	require.Equal(t, 4, cj.Revertible)
	require.NotEmpty(t, cj.Notes)

	// 4. Revert: every row back on its legacy key.
	r = c.ok(append([]string{"migrate"}, args("-revert")...)...)
	require.Contains(t, r.stdout, "reverted 4 rows, 0 skipped, 0 failed")
	require.Equal(t, legacy, keysInDB(t, db))

	// 5. Migrate again and make it final.
	decode(c.ok(append([]string{"migrate"}, args("-final", "-json")...)...), &mj)
	require.True(t, mj.Final)
	require.Equal(t, 4, mj.Migrated)
	require.Equal(t, 4, mj.Deduplicated, "the blobs were kept by the revert")

	// 6. Cleanup: the dry run lists the four legacy objects, deletes none.
	r = c.ok(append([]string{"cleanup"}, args("-dry-run", "-min-age", "0")...)...)
	var want []string
	for _, row := range rows {
		want = append(want, "would delete "+row.key)
		_, err := os.Stat(filepath.Join(dir, filepath.FromSlash(row.key)))
		require.NoError(t, err, "still there after the dry run")
	}
	// 7 objects: the 4 legacy ones and 3 distinct blobs.
	require.ElementsMatch(t, append(want, "dry run: would delete 4 of 7 objects, keep 3 (min age 0s)"), lines(r.stdout))
	decode(c.ok(append([]string{"cleanup"}, args("-min-age", "0", "-json")...)...), &cj)
	require.Equal(t, 4, cj.Deleted)
	for _, row := range rows {
		_, err := os.Stat(filepath.Join(dir, filepath.FromSlash(row.key)))
		require.ErrorIs(t, err, os.ErrNotExist, "deleted: %s", row.key)
	}
	c.ok("verify", "-dir", dir) // the blobs are intact

	// 7. A final migration cannot be reverted.
	r = c.run(append([]string{"migrate"}, args("-revert")...)...)
	requireOneLineError(t, r, 1, "final")
}

func TestMigrateSQLite(t *testing.T) {
	t.Parallel()
	db, path := openSQLite(t)
	migrationScenario(t, db, path) // a plain file path
}

func TestMigrateSQLiteURL(t *testing.T) {
	t.Parallel()
	db, path := openSQLite(t)
	migrationScenario(t, db, "sqlite://"+path) // sqlite:///abs/path
}

func TestMigratePostgres(t *testing.T) {
	t.Parallel()
	db := testutil.NewPostgres(t)
	migrationScenario(t, db.DB, db.DSN) // search_path: the test's own schema
}

// TestMigrateMySQL runs the scenario on MariaDB/MySQL through a mysql://
// URL, which casa translates to go-sql-driver's DSN form.
func TestMigrateMySQL(t *testing.T) {
	t.Parallel()
	db := testutil.NewMySQL(t)
	cfg, err := mysql.ParseDSN(os.Getenv(testutil.MySQLDSNEnv))
	require.NoError(t, err)
	u := url.URL{Scheme: "mysql", User: url.UserPassword(cfg.User, cfg.Passwd), Host: cfg.Addr, Path: "/" + db.Schema}
	migrationScenario(t, db.DB, u.String())
}

// TestMigrateFailedRow: a row whose legacy object is gone fails, is
// listed, and makes the exit code 1; the other rows are migrated, and
// -final and cleanup refuse.
func TestMigrateFailedRow(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	dir := filepath.Join(t.TempDir(), "store")
	db, path := openSQLite(t)
	rows := seedLegacy(t, db, dir)
	require.NoError(t, os.Remove(filepath.Join(dir, filepath.FromSlash(rows[2].key))))
	args := []string{"-dir", dir, "-db", path, "-table", "attachments", "-key-column", "storage_key"}

	r := c.run(append([]string{"migrate", "-final"}, args...)...)
	require.Equal(t, 1, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	require.Contains(t, r.stdout, fmt.Sprintf("FAILED id=3 key=%q", rows[2].key))
	require.Contains(t, r.stdout, "migrated 3 of 4 rows")
	require.NotContains(t, r.stdout, "final")
	require.Contains(t, lines(r.stderr)[len(lines(r.stderr))-1], "not marked final")
	require.Equal(t, rows[2].key, keysInDB(t, db)[3])

	r = c.run(append([]string{"cleanup", "-min-age", "0"}, args...)...)
	requireOneLineError(t, r, 1, "refused, nothing deleted", rows[2].key)
	for _, row := range []legacyRow{rows[0], rows[1], rows[3]} {
		_, err := os.Stat(filepath.Join(dir, filepath.FromSlash(row.key)))
		require.NoError(t, err)
	}
}

// TestMigrateSourceDirIntoS3: legacy files on local disk (-source-dir)
// migrate into a store on S3; revert reads them there, and cleanup deletes
// them there.
func TestMigrateSourceDirIntoS3(t *testing.T) {
	t.Parallel()
	srv := s3test.New(t)
	c := newCLI(t, "CASA_S3_BUCKET="+srv.Bucket, "CASA_S3_ENDPOINT="+srv.URL, "CASA_S3_PATH_STYLE=true")
	legacyDir := filepath.Join(t.TempDir(), "uploads")
	db, path := openSQLite(t)
	rows := seedLegacy(t, db, legacyDir)
	legacy := keysInDB(t, db)
	args := func(extra ...string) []string {
		return append([]string{"-source-dir", legacyDir, "-db", path, "-table", "attachments", "-key-column", "storage_key"}, extra...)
	}

	c.ok(append([]string{"migrate"}, args()...)...)
	var want []string
	for _, row := range rows {
		h := cas.SumBytes(row.body)
		require.Equal(t, h.Key(), keysInDB(t, db)[row.id])
		want = append(want, h.Key())
	}
	require.ElementsMatch(t, slices.Compact(slices.Sorted(slices.Values(want))), srv.ObjectKeys(t), "the blobs are in the bucket, nothing else")

	r := c.ok(append([]string{"migrate"}, args("-revert")...)...)
	require.Contains(t, r.stdout, "reverted 4 rows")
	require.Equal(t, legacy, keysInDB(t, db))

	c.ok(append([]string{"migrate"}, args("-final")...)...)
	r = c.ok(append([]string{"cleanup"}, args("-min-age", "0")...)...)
	require.Contains(t, r.stdout, "deleted 4 of 4 objects")
	for _, row := range rows {
		_, err := os.Stat(filepath.Join(legacyDir, filepath.FromSlash(row.key)))
		require.ErrorIs(t, err, os.ErrNotExist)
	}
	c.ok("verify")

	// -source-dir obeys the store-root rule, and must exist.
	r = c.ok("migrate", "-db", path, "-table", "attachments", "-key-column", "storage_key") // nothing pending
	require.Contains(t, r.stdout, "migrated 0 of 0 rows")
	notRoot := t.TempDir()
	writeFile(t, notRoot, "app.db", nil)
	r = c.run("migrate", "-source-dir", notRoot, "-db", path, "-table", "attachments", "-key-column", "storage_key")
	requireOneLineError(t, r, 2, "-source-dir "+notRoot+" is not a casa store root")
	r = c.run("migrate", "-source-dir", filepath.Join(notRoot, "missing"), "-db", path, "-table", "attachments", "-key-column", "storage_key")
	requireOneLineError(t, r, 2, "no such directory")
}

// TestMigrateCompress: migrate -compress stores a legacy text object's
// blob zstd-compressed, under the hash of its bytes, and the row points
// at it; get returns the bytes.
func TestMigrateCompress(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	store := filepath.Join(t.TempDir(), "store")
	legacyDir := filepath.Join(t.TempDir(), "uploads")
	text := testutil.Text(5, 300<<10)
	b, err := fsstore.New(legacyDir, fsstore.WithoutSync())
	require.NoError(t, err)
	const key = "legacy/0001.csv"
	require.NoError(t, cas.Checked(b).Put(t.Context(), key, bytes.NewReader(text), int64(len(text)), cas.PutOptions{}))
	db, path := openSQLite(t)
	_, err = db.ExecContext(t.Context(), `CREATE TABLE attachments (id INTEGER PRIMARY KEY, storage_key TEXT)`)
	require.NoError(t, err)
	_, err = db.ExecContext(t.Context(), `INSERT INTO attachments (id, storage_key) VALUES (1, ?)`, key)
	require.NoError(t, err)

	c.ok("migrate", "-compress", "-dir", store, "-source-dir", legacyDir, "-db", path, "-table", "attachments", "-key-column", "storage_key")
	h := cas.SumBytes(text)
	require.Equal(t, map[int]string{1: h.Key()}, keysInDB(t, db))
	var info objectInfoJSON
	require.NoError(t, json.Unmarshal([]byte(c.ok("stat", "-json", "-dir", store, h.String()).stdout), &info))
	require.Equal(t, "zstd", info.Encoding)
	require.Less(t, info.Stored, info.Size/2)
	got := filepath.Join(c.dir, "got.csv")
	c.ok("get", "-dir", store, "-o", got, h.String())
	p, err := os.ReadFile(got)
	require.NoError(t, err)
	require.True(t, bytes.Equal(text, p))
}
