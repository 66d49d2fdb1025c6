package sqlmigrator_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/cas/s3store"
	"github.com/casa-go/casa/internal/testutil/s3test"
	"github.com/casa-go/casa/migrate"
	"github.com/casa-go/casa/migrate/sqlmigrator"
)

// openDB opens a fresh SQLite database file that several connections can
// write to (WAL, busy timeout).
func openDB(t testing.TB) *sql.DB {
	t.Helper()
	dsn := "file:" + filepath.Join(t.TempDir(), "test.db") + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)"
	db, err := sql.Open("sqlite", dsn)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(4)
	return db
}

func exec(t testing.TB, db *sql.DB, q string, args ...any) {
	t.Helper()
	_, err := db.Exec(q, args...)
	require.NoError(t, err, q)
}

// keyOf returns the key column of one row.
func keyOf(t testing.TB, db *sql.DB, q string, id any) sql.NullString {
	t.Helper()
	var k sql.NullString
	require.NoError(t, db.QueryRow(q, id).Scan(&k))
	return k
}

func collect(t testing.TB, m *sqlmigrator.Migrator) []migrate.Record {
	t.Helper()
	var out []migrate.Record
	for rec, err := range m.Pending(context.Background()) {
		require.NoError(t, err)
		out = append(out, rec)
	}
	return out
}

func casKey(s string) string { return cas.SumBytes([]byte(s)).Key() }

func TestNewValidatesIdentifiers(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	valid := sqlmigrator.Table{Name: "parts", IDColumn: "id", KeyColumn: "datasheet_key"}
	_, err := sqlmigrator.New(db, valid)
	require.NoError(t, err)

	hostile := []string{
		"", " ", "parts; DROP TABLE parts", "parts--", "pa rts", `"parts"`, "`parts`", "[parts]",
		"parts'", "1parts", "parts)", "parts/*", "pärts", "parts\x00", "parts\n", "a..b", ".parts",
		"parts.", "a.b.c.d", strings.Repeat("a", 64), "id=id", "*", "$1", "?", "parts\u200b",
	}
	for _, bad := range hostile {
		for _, tbl := range []sqlmigrator.Table{
			{Name: bad, IDColumn: "id", KeyColumn: "k"},
			{Name: "parts", IDColumn: bad, KeyColumn: "k"},
			{Name: "parts", IDColumn: "id", KeyColumn: bad},
		} {
			m, err := sqlmigrator.New(db, tbl)
			require.ErrorIs(t, err, sqlmigrator.ErrInvalidIdentifier, "%+v", tbl)
			require.Nil(t, m)
		}
	}
	// Dotted names are only for tables.
	for _, tbl := range []sqlmigrator.Table{
		{Name: "parts", IDColumn: "p.id", KeyColumn: "k"},
		{Name: "parts", IDColumn: "id", KeyColumn: "p.k"},
		{Name: "parts", IDColumn: "k", KeyColumn: "K"},
	} {
		_, err := sqlmigrator.New(db, tbl)
		require.ErrorIs(t, err, sqlmigrator.ErrInvalidIdentifier, "%+v", tbl)
	}
	for _, name := range []string{"main.parts", "_p", "P_1", "db.main.parts", strings.Repeat("a", 63)} {
		_, err := sqlmigrator.New(db, sqlmigrator.Table{Name: name, IDColumn: "id", KeyColumn: "k"})
		require.NoError(t, err, name)
	}
	_, err = sqlmigrator.New(nil, valid)
	require.Error(t, err)
}

func TestPendingIntegerIDs(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	exec(t, db, `CREATE TABLE parts (id INTEGER PRIMARY KEY, name TEXT, datasheet_key TEXT)`)
	var want []migrate.Record
	for i := 1; i <= 40; i++ {
		key := fmt.Sprintf("uploads/%d", i)
		switch {
		case i%5 == 0:
			key = casKey(fmt.Sprint(i)) // migrated already
		case i%7 == 0:
			key = "" // no datasheet
		case i == 11:
			key = "cas/notahash" // a legacy key by design
		case i == 13:
			key = "cas/" + strings.ToUpper(casKey("x")[4:]) // uppercase hex: legacy too
		}
		if i == 17 {
			exec(t, db, `INSERT INTO parts (id, name, datasheet_key) VALUES (?, ?, NULL)`, i, "p")
			continue
		}
		exec(t, db, `INSERT INTO parts (id, name, datasheet_key) VALUES (?, ?, ?)`, i, "p", key)
		if key != "" && !cas.IsKey(key) {
			want = append(want, migrate.Record{ID: fmt.Sprint(i), Key: key})
		}
	}
	for _, pageSize := range []int{1, 3, 4, 10, 500} {
		m, err := sqlmigrator.New(db, sqlmigrator.Table{Name: "parts", IDColumn: "id", KeyColumn: "datasheet_key"},
			sqlmigrator.WithPageSize(pageSize))
		require.NoError(t, err)
		require.Equal(t, want, collect(t, m), "page size %d: numeric ID order, every legacy row once", pageSize)
	}
}

func TestPendingProgressesPastPagesOfCASRows(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	exec(t, db, `CREATE TABLE docs (id INTEGER PRIMARY KEY, k TEXT)`)
	for i := 1; i <= 100; i++ {
		key := casKey(fmt.Sprint(i))
		if i == 50 || i == 100 {
			key = fmt.Sprintf("legacy/%d", i)
		}
		exec(t, db, `INSERT INTO docs VALUES (?, ?)`, i, key)
	}
	m, err := sqlmigrator.New(db, sqlmigrator.Table{Name: "docs", IDColumn: "id", KeyColumn: "k"}, sqlmigrator.WithPageSize(3))
	require.NoError(t, err)
	require.Equal(t, []migrate.Record{{ID: "50", Key: "legacy/50"}, {ID: "100", Key: "legacy/100"}}, collect(t, m))
}

func TestPendingTextIDs(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	exec(t, db, `CREATE TABLE attachments (uuid TEXT PRIMARY KEY, blob_key TEXT)`)
	ids := []string{
		"b6f5c1e2-0000-4000-8000-000000000001", "10", "9", "'; DROP TABLE attachments; --",
		`" OR 1=1 --`, "ünïcødé", "a\x00b", " ", "Z",
	}
	for i, id := range ids {
		exec(t, db, `INSERT INTO attachments VALUES (?, ?)`, id, fmt.Sprintf("uploads/%d' OR '1'='1", i))
	}
	m, err := sqlmigrator.New(db, sqlmigrator.Table{Name: "attachments", IDColumn: "uuid", KeyColumn: "blob_key"}, sqlmigrator.WithPageSize(2))
	require.NoError(t, err)
	got := collect(t, m)
	require.Len(t, got, len(ids))
	gotIDs := make([]string, len(got))
	for i, r := range got {
		gotIDs[i] = r.ID
		require.Equal(t, fmt.Sprintf("uploads/%d' OR '1'='1", slices.Index(ids, r.ID)), r.Key)
	}
	sorted := slices.Clone(ids)
	slices.Sort(sorted) // SQLite's default BINARY collation is byte order
	require.Equal(t, sorted, gotIDs, "text IDs page in text order")

	// Commit works with hostile IDs and keys, and touches only its row.
	for _, r := range got {
		require.NoError(t, m.Commit(context.Background(), r, casKey(r.ID)))
	}
	require.Empty(t, collect(t, m))
	for _, id := range ids {
		require.Equal(t, casKey(id), keyOf(t, db, `SELECT blob_key FROM attachments WHERE uuid = ?`, id).String)
	}
}

func TestCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openDB(t)
	exec(t, db, `CREATE TABLE parts (id INTEGER PRIMARY KEY, k TEXT)`)
	exec(t, db, `INSERT INTO parts VALUES (1, 'uploads/1'), (2, 'uploads/2'), (3, 'uploads/3')`)
	tbl := sqlmigrator.Table{Name: "parts", IDColumn: "id", KeyColumn: "k"}
	q := `SELECT k FROM parts WHERE id = ?`

	// A fresh Migrator (no Pending yet) learns the ID type by itself.
	m, err := sqlmigrator.New(db, tbl)
	require.NoError(t, err)
	require.NoError(t, m.Commit(ctx, migrate.Record{ID: "1", Key: "uploads/1"}, casKey("1")))
	require.Equal(t, casKey("1"), keyOf(t, db, q, 1).String)

	tests := []struct {
		name     string
		rec      migrate.Record
		newKey   string
		conflict bool
	}{
		{name: "key changed meanwhile", rec: migrate.Record{ID: "1", Key: "uploads/1"}, newKey: casKey("x"), conflict: true},
		{name: "row gone", rec: migrate.Record{ID: "99", Key: "uploads/99"}, newKey: casKey("x"), conflict: true},
		{name: "wrong old key", rec: migrate.Record{ID: "2", Key: "uploads/3"}, newKey: casKey("x"), conflict: true},
		{name: "new key not CAS", rec: migrate.Record{ID: "2", Key: "uploads/2"}, newKey: "uploads/other"},
		{name: "new key empty", rec: migrate.Record{ID: "2", Key: "uploads/2"}, newKey: ""},
		{name: "old key empty", rec: migrate.Record{ID: "2", Key: ""}, newKey: casKey("x")},
		{name: "ID not an integer", rec: migrate.Record{ID: "2 OR 1=1", Key: "uploads/2"}, newKey: casKey("x")},
		{name: "ID empty", rec: migrate.Record{ID: "", Key: "uploads/2"}, newKey: casKey("x")},
	}
	for _, tt := range tests {
		err := m.Commit(ctx, tt.rec, tt.newKey)
		require.Error(t, err, tt.name)
		require.Equal(t, tt.conflict, errorsIs(err, migrate.ErrConflict), "%s: %v", tt.name, err)
	}
	require.Equal(t, "uploads/2", keyOf(t, db, q, 2).String, "failed commits change nothing")
	require.Equal(t, "uploads/3", keyOf(t, db, q, 3).String)
	require.Equal(t, casKey("1"), keyOf(t, db, q, 1).String)
}

func TestCommitNonUniqueIDChangesNothing(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	exec(t, db, `CREATE TABLE legacy (ref TEXT, k TEXT)`) // no primary key
	exec(t, db, `INSERT INTO legacy VALUES ('a', 'uploads/x'), ('a', 'uploads/x'), ('b', 'uploads/y')`)
	m, err := sqlmigrator.New(db, sqlmigrator.Table{Name: "legacy", IDColumn: "ref", KeyColumn: "k"})
	require.NoError(t, err)
	err = m.Commit(context.Background(), migrate.Record{ID: "a", Key: "uploads/x"}, casKey("x"))
	require.ErrorContains(t, err, "not unique")
	var n int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM legacy WHERE k = 'uploads/x'`).Scan(&n))
	require.Equal(t, 2, n, "the transaction was rolled back")
}

func TestCommitEmptyTableIsConflict(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	exec(t, db, `CREATE TABLE parts (id INTEGER PRIMARY KEY, k TEXT)`)
	m, err := sqlmigrator.New(db, sqlmigrator.Table{Name: "parts", IDColumn: "id", KeyColumn: "k"})
	require.NoError(t, err)
	err = m.Commit(context.Background(), migrate.Record{ID: "1", Key: "uploads/1"}, casKey("1"))
	require.ErrorIs(t, err, migrate.ErrConflict)
}

func TestMissingTableIsAnError(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	m, err := sqlmigrator.New(db, sqlmigrator.Table{Name: "nope", IDColumn: "id", KeyColumn: "k"})
	require.NoError(t, err, "New does no I/O")
	n := 0
	for _, err := range m.Pending(context.Background()) {
		require.ErrorContains(t, err, "no such table")
		n++
	}
	require.Equal(t, 1, n)
	for _, err := range m.Referenced(context.Background()) {
		require.Error(t, err)
	}
	err = m.Commit(context.Background(), migrate.Record{ID: "1", Key: "k"}, casKey("1"))
	require.Error(t, err)
	require.False(t, errorsIs(err, migrate.ErrConflict))
}

func TestPendingNullID(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	exec(t, db, `CREATE TABLE t (ref TEXT, k TEXT)`)
	exec(t, db, `INSERT INTO t VALUES (NULL, 'uploads/orphan'), ('a', 'uploads/a')`)
	m, err := sqlmigrator.New(db, sqlmigrator.Table{Name: "t", IDColumn: "ref", KeyColumn: "k"})
	require.NoError(t, err)
	var errs []error
	for _, err := range m.Pending(context.Background()) {
		errs = append(errs, err)
	}
	require.Len(t, errs, 1)
	require.ErrorContains(t, errs[0], "NULL ref")

	var refs []string
	for k, err := range m.Referenced(context.Background()) {
		require.NoError(t, err)
		refs = append(refs, k)
	}
	require.ElementsMatch(t, []string{"uploads/orphan", "uploads/a"}, refs, "Referenced still protects the row's object")
}

func TestReferenced(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	exec(t, db, `CREATE TABLE parts (id INTEGER PRIMARY KEY, k TEXT)`)
	var want []string
	for i := 1; i <= 20; i++ {
		var key any
		switch i % 4 {
		case 0:
			key = nil
		case 1:
			key = ""
		case 2:
			key = casKey(fmt.Sprint(i))
			want = append(want, key.(string))
		case 3:
			key = fmt.Sprintf("uploads/%d", i)
			want = append(want, key.(string))
		}
		exec(t, db, `INSERT INTO parts VALUES (?, ?)`, i, key)
	}
	m, err := sqlmigrator.New(db, sqlmigrator.Table{Name: "parts", IDColumn: "id", KeyColumn: "k"}, sqlmigrator.WithPageSize(3))
	require.NoError(t, err)
	var got []string
	for k, err := range m.Referenced(context.Background()) {
		require.NoError(t, err)
		got = append(got, k)
	}
	require.Equal(t, want, got)
}

func TestDollarPlaceholders(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openDB(t)
	exec(t, db, `CREATE TABLE parts (id INTEGER PRIMARY KEY, k TEXT)`)
	for i := 1; i <= 7; i++ {
		exec(t, db, `INSERT INTO parts VALUES (?, ?)`, i, fmt.Sprintf("uploads/%d", i))
	}
	// SQLite accepts $N parameters too, so the option is exercised for real.
	m, err := sqlmigrator.New(db, sqlmigrator.Table{Name: "parts", IDColumn: "id", KeyColumn: "k"},
		sqlmigrator.WithDollarPlaceholders(), sqlmigrator.WithPageSize(2))
	require.NoError(t, err)
	recs := collect(t, m)
	require.Len(t, recs, 7)
	require.NoError(t, m.Commit(ctx, recs[3], casKey("4")))
	require.Equal(t, casKey("4"), keyOf(t, db, `SELECT k FROM parts WHERE id = ?`, 4).String)
	require.Equal(t, "uploads/5", keyOf(t, db, `SELECT k FROM parts WHERE id = ?`, 5).String)
	require.Len(t, collect(t, m), 6)
}

func TestRunOnSQLite(t *testing.T) {
	t.Parallel()
	backends := map[string]func(t *testing.T) cas.Backend{
		"memstore": func(*testing.T) cas.Backend { return memstore.New() },
		"s3": func(t *testing.T) cas.Backend {
			srv := s3test.New(t)
			return s3store.New(srv.Client, srv.Bucket)
		},
	}
	for name, newBackend := range backends {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testRunOnSQLite(t, newBackend(t))
		})
	}
}

func testRunOnSQLite(t *testing.T, b cas.Backend) {
	ctx := context.Background()
	db := openDB(t)
	exec(t, db, `CREATE TABLE parts (id INTEGER PRIMARY KEY, name TEXT, datasheet_key TEXT)`)
	store := cas.New(b)
	const n = 150
	want := map[int64][]byte{}
	for i := int64(1); i <= n; i++ {
		data := []byte(fmt.Sprintf("datasheet %d", i%120)) // some duplicates
		key := fmt.Sprintf("uploads/%08d", i)
		require.NoError(t, b.Put(ctx, key, strings.NewReader(string(data)), int64(len(data)), cas.PutOptions{}))
		exec(t, db, `INSERT INTO parts VALUES (?, ?, ?)`, i, fmt.Sprint("part ", i), key)
		want[i] = data
	}
	exec(t, db, `INSERT INTO parts VALUES (?, ?, ?)`, n+1, "missing", "uploads/missing")
	m, err := sqlmigrator.New(db, sqlmigrator.Table{Name: "parts", IDColumn: "id", KeyColumn: "datasheet_key"}, sqlmigrator.WithPageSize(16))
	require.NoError(t, err)

	rep, err := migrate.Run(ctx, store, m, migrate.Options{Concurrency: 8})
	require.NoError(t, err)
	require.Equal(t, n+1, rep.Seen)
	require.Equal(t, n, rep.Migrated)
	require.Equal(t, 30, rep.Deduplicated)
	require.Len(t, rep.Failures, 1)
	require.Equal(t, migrate.Record{ID: fmt.Sprint(n + 1), Key: "uploads/missing"}, rep.Failures[0].Record)
	for i, data := range want {
		k := keyOf(t, db, `SELECT datasheet_key FROM parts WHERE id = ?`, i).String
		require.Equal(t, cas.SumBytes(data).Key(), k)
		obj, err := b.Open(ctx, k)
		require.NoError(t, err)
		got, _, err := cas.Sum(obj)
		require.NoError(t, err)
		require.Equal(t, cas.SumBytes(data), got)
		obj.Close()
	}

	// The failed row blocks Cleanup; fixing it (the row now points at nothing) unblocks it.
	_, err = migrate.Cleanup(ctx, store, m, migrate.CleanupOptions{Prefix: "uploads/"})
	require.ErrorIs(t, err, migrate.ErrIncomplete)
	exec(t, db, `UPDATE parts SET datasheet_key = NULL WHERE id = ?`, n+1)
	// Until the migration is final the journal keeps the legacy objects.
	crep, err := migrate.Cleanup(ctx, store, m, migrate.CleanupOptions{Prefix: "uploads/"})
	require.NoError(t, err)
	require.Zero(t, crep.Deleted)
	require.Equal(t, n, crep.Revertible)
	require.NoError(t, migrate.Finalize(ctx, m))
	crep, err = migrate.Cleanup(ctx, store, m, migrate.CleanupOptions{Prefix: "uploads/"})
	require.NoError(t, err)
	require.Equal(t, n, crep.Deleted)
	var left []string
	for info, err := range b.List(ctx, "uploads/") {
		require.NoError(t, err)
		left = append(left, info.Key)
	}
	require.Empty(t, left)
}

// identRE is what New accepts for a column name.
var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

func FuzzNew(f *testing.F) {
	for _, s := range []string{"parts", "main.parts", "id", "", "a;b", "a b", `"x"`, "1a", "a.b.c.d", "é", "a--", strings.Repeat("x", 64)} {
		f.Add(s, "id", "k")
		f.Add("t", s, "k")
		f.Add("t", "id", s)
	}
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	f.Fuzz(func(t *testing.T, name, id, key string) {
		m, err := sqlmigrator.New(db, sqlmigrator.Table{Name: name, IDColumn: id, KeyColumn: key})
		if err != nil {
			require.ErrorIs(t, err, sqlmigrator.ErrInvalidIdentifier)
			require.Nil(t, m)
			return
		}
		require.Regexp(t, identRE, id)
		require.Regexp(t, identRE, key)
		parts := strings.Split(name, ".")
		require.LessOrEqual(t, len(parts), 3)
		for _, p := range parts {
			require.Regexp(t, identRE, p)
		}
		require.Equal(t, sqlmigrator.Table{Name: name, IDColumn: id, KeyColumn: key}, m.Table())
	})
}

// FuzzPending stores hostile IDs and keys in SQLite and checks that Pending
// yields exactly the rows on legacy keys, and Commit moves exactly one row.
func FuzzPending(f *testing.F) {
	f.Add("1", "uploads/1", "2", "cas/notahash")
	f.Add("'; DROP TABLE t; --", casKey("a"), "b", "")
	f.Add("\x00", "\x00", "\xff\xfe", "cas/"+strings.Repeat("A", 64))
	f.Add("a", "k' OR '1'='1", "b", "k")
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		f.Fatal(err)
	}
	db.SetMaxOpenConns(1) // one in-memory database
	f.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE t (id TEXT PRIMARY KEY, k TEXT)`); err != nil {
		f.Fatal(err)
	}
	m, err := sqlmigrator.New(db, sqlmigrator.Table{Name: "t", IDColumn: "id", KeyColumn: "k"}, sqlmigrator.WithPageSize(1))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, id1, key1, id2, key2 string) {
		if id1 == id2 {
			return
		}
		exec(t, db, `DELETE FROM t`)
		exec(t, db, `INSERT INTO t VALUES (?, ?), (?, ?)`, id1, key1, id2, key2)
		var want []migrate.Record
		for _, r := range []migrate.Record{{ID: id1, Key: key1}, {ID: id2, Key: key2}} {
			if r.Key != "" && !cas.IsKey(r.Key) {
				want = append(want, r)
			}
		}
		got := collect(t, m)
		require.ElementsMatch(t, want, got)
		for _, r := range got {
			require.NoError(t, m.Commit(context.Background(), r, casKey(r.ID)))
			require.ErrorIs(t, m.Commit(context.Background(), r, casKey(r.ID)), migrate.ErrConflict)
		}
		require.Empty(t, collect(t, m))
	})
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }

// TestWithPageSizeRejectsNonsense: a page size below 1 panics at
// construction, naming the option.
func TestWithPageSizeRejectsNonsense(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, -1} {
		require.PanicsWithValue(t, fmt.Sprintf("sqlmigrator: WithPageSize(%d): want at least 1", n), func() { sqlmigrator.WithPageSize(n) })
	}
	require.NotPanics(t, func() { sqlmigrator.WithPageSize(1) })
}
