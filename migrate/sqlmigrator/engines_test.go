package sqlmigrator_test

// The tests in this file run on real PostgreSQL and MySQL/MariaDB servers
// (located by testutil.NewPostgres and NewMySQL: CASA_TEST_POSTGRES_DSN and
// CASA_TEST_MYSQL_DSN, set by .ci/start-servers.sh) as well as on SQLite.
// Without a server its cases skip with a message; under CI=true they fail.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/migrate"
	"github.com/casa-go/casa/migrate/sqlmigrator"
)

// engine is one database engine the tests run on.
type engine struct {
	name string
	open func(t testing.TB) *testutil.DB
	opts []sqlmigrator.Option // what the engine's driver needs
	// Column types.
	intID, textID, uuidID, keyType string
	// reservedKey is a key column name that is a reserved word there.
	reservedKey string
	// server reports whether the engine is a separate server process
	// (row locks, transactions that wait for each other, schemas).
	server bool
}

var engines = []engine{
	{
		name: "sqlite",
		open: func(t testing.TB) *testutil.DB {
			return &testutil.DB{DB: openDB(t), Driver: "sqlite", Schema: "main"}
		},
		intID: "INTEGER PRIMARY KEY", textID: "TEXT PRIMARY KEY", keyType: "TEXT",
		reservedKey: "order",
	},
	{
		name: "postgres", open: testutil.NewPostgres, opts: []sqlmigrator.Option{sqlmigrator.WithDollarPlaceholders()},
		intID: "BIGINT PRIMARY KEY", textID: "TEXT PRIMARY KEY", uuidID: "UUID PRIMARY KEY", keyType: "TEXT",
		reservedKey: "user", // unquoted, PostgreSQL reads CURRENT_USER
		server:      true,
	},
	{
		name: "mysql", open: testutil.NewMySQL,
		intID: "BIGINT PRIMARY KEY", textID: "VARCHAR(191) PRIMARY KEY", keyType: "VARCHAR(255)",
		reservedKey: "key",
		server:      true,
	},
}

// q rewrites a test's ? placeholders for the engine's driver.
func (e engine) q(query string) string {
	if e.name != "postgres" {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (e engine) exec(t testing.TB, db *testutil.DB, query string, args ...any) {
	t.Helper()
	_, err := db.ExecContext(context.Background(), e.q(query), args...)
	require.NoError(t, err, query)
}

func (e engine) migrator(t testing.TB, db *testutil.DB, tbl sqlmigrator.Table, opts ...sqlmigrator.Option) *sqlmigrator.Migrator {
	t.Helper()
	m, err := sqlmigrator.New(db.DB, tbl, append(slices.Clone(e.opts), opts...)...)
	require.NoError(t, err)
	return m
}

// forEngines runs f once per engine, in parallel subtests.
func forEngines(t *testing.T, f func(t *testing.T, e engine)) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			f(t, e)
		})
	}
}

// createTable creates table name (id <intID>, k <keyType>) in db, the
// shape most engine tests use, and returns it as a Migrator's Table.
func (e engine) createTable(t testing.TB, db *testutil.DB, name string) sqlmigrator.Table {
	t.Helper()
	e.exec(t, db, "CREATE TABLE "+name+" (id "+e.intID+", k "+e.keyType+")")
	return sqlmigrator.Table{Name: name, IDColumn: "id", KeyColumn: "k"}
}

// openTable opens a fresh database of the engine with createTable's
// table name in it.
func (e engine) openTable(t testing.TB, name string) (*testutil.DB, sqlmigrator.Table) {
	t.Helper()
	db := e.open(t)
	return db, e.createTable(t, db, name)
}

// idKinds returns the ID column types to test on e, by the name of the
// kind of IDs recordIDs makes for them.
func idKinds(e engine) map[string]string {
	kinds := map[string]string{"int": e.intID, "text": e.textID}
	if e.uuidID != "" {
		kinds["uuid"] = e.uuidID
	}
	return kinds
}

// recordIDs returns n IDs of a kind of idKinds: 1..n, random UUIDs, or
// text made with textFormat from 1..n.
func recordIDs(kind string, n int, textFormat string) []string {
	ids := make([]string, 0, n)
	for i := 1; i <= n; i++ {
		switch kind {
		case "int":
			ids = append(ids, strconv.Itoa(i))
		case "uuid":
			ids = append(ids, randomUUID())
		default:
			ids = append(ids, fmt.Sprintf(textFormat, i))
		}
	}
	return ids
}

// requireWaits runs op while another session holds what op needs: op
// must still be running after 300ms; then release lets it go on, and
// requireWaits returns op's error, failing t if op has not returned 20s
// later. name is op's, for the failure messages.
func requireWaits(t *testing.T, name string, op func() error, release func()) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- op() }()
	select {
	case err := <-done:
		t.Fatalf("%s returned while another session held what it needs: %v", name, err)
	case <-time.After(300 * time.Millisecond):
	}
	release()
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatalf("%s still blocked after the other session finished", name)
	}
	return nil
}

// requireWaitsForWriter runs op while a writer's open transaction has set
// row id of table parts to the key "uploads/writer": op must wait for it
// (requireWaits); the writer then commits, or rolls back if commit is
// false, and op's error is returned.
func requireWaitsForWriter(t *testing.T, e engine, db *testutil.DB, id any, commit bool, name string, op func() error) error {
	t.Helper()
	ctx := t.Context()
	tx, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer tx.Rollback() //nolint:errcheck
	_, err = tx.ExecContext(ctx, e.q("UPDATE parts SET k = ? WHERE id = ?"), "uploads/writer", id)
	require.NoError(t, err)
	return requireWaits(t, name, op, func() {
		if commit {
			require.NoError(t, tx.Commit())
		} else {
			require.NoError(t, tx.Rollback())
		}
	})
}

// randomUUID returns a random version 4 UUID in its text form.
func randomUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := fmt.Sprintf("%x", b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// TestEnginesRun migrates a table with integer, text and (PostgreSQL)
// uuid IDs on every engine: every legacy row ends on the CAS key of its
// bytes, the row whose object is missing fails and keeps its key, and
// integer IDs page in numeric order (9 before 10) across small pages.
func TestEnginesRun(t *testing.T) {
	t.Parallel()
	forEngines(t, func(t *testing.T, e engine) {
		db := e.open(t)
		for kind, idType := range idKinds(e) {
			t.Run(kind, func(t *testing.T) {
				ctx := t.Context()
				table := "parts_" + kind
				e.exec(t, db, fmt.Sprintf("CREATE TABLE %s (id %s, name VARCHAR(50), datasheet_key %s)", table, idType, e.keyType))
				b := memstore.New()
				store := cas.New(b)
				const n = 45
				ids := recordIDs(kind, n, "part-%d")
				if kind == "text" { // hostile text IDs
					ids = append(ids[:n-6], "'; DROP TABLE parts_text; --", `" OR 1=1 --`, "ünïcødé", "a b", "Z", "10")
				}
				data := map[string][]byte{} // legacy key -> bytes
				var pending []string        // IDs of rows on legacy keys
				for i, id := range ids {
					var key any
					switch {
					case i%9 == 4:
						key = nil
					case i%9 == 5:
						key = ""
					case i%9 == 6:
						key = casKey(id) // migrated already
					case i == 7:
						key = "uploads/missing" // no object
						pending = append(pending, id)
					default:
						k := fmt.Sprintf("uploads/%d", i)
						p := []byte(fmt.Sprintf("datasheet %d", i%20)) // some duplicates
						require.NoError(t, b.Put(ctx, k, strings.NewReader(string(p)), int64(len(p)), cas.PutOptions{}))
						data[k] = p
						key = k
						pending = append(pending, id)
					}
					e.exec(t, db, "INSERT INTO "+table+" VALUES (?, ?, ?)", id, "part", key)
				}
				m := e.migrator(t, db, sqlmigrator.Table{Name: table, IDColumn: "id", KeyColumn: "datasheet_key"}, sqlmigrator.WithPageSize(7))
				var got []string
				for _, r := range collect(t, m) {
					got = append(got, r.ID)
				}
				require.ElementsMatch(t, pending, got, "every legacy row once")
				if kind == "int" {
					require.True(t, slices.IsSortedFunc(got, func(a, b string) int {
						x, _ := strconv.Atoi(a)
						y, _ := strconv.Atoi(b)
						return x - y
					}), "integer IDs in numeric order: %v", got)
				}

				rep, err := migrate.Run(ctx, store, m, migrate.Options{Concurrency: 4})
				require.NoError(t, err)
				require.Equal(t, len(pending), rep.Seen)
				require.Equal(t, len(pending)-1, rep.Migrated)
				require.Len(t, rep.Failures, 1)
				require.Equal(t, "uploads/missing", rep.Failures[0].Record.Key)
				require.ErrorIs(t, rep.Failures[0].Err, cas.ErrNotFound)

				rows, err := db.QueryContext(ctx, "SELECT id, datasheet_key FROM "+table+" WHERE datasheet_key IS NOT NULL AND datasheet_key <> ''")
				require.NoError(t, err)
				defer rows.Close()
				seen := 0
				for rows.Next() {
					var id, key string
					require.NoError(t, rows.Scan(&id, &key))
					seen++
					if key == "uploads/missing" {
						continue
					}
					require.True(t, cas.IsKey(key), "row %q: %q", id, key)
					if i := slices.Index(ids, id); i%9 != 6 {
						requireBytes(t, b, key, data[fmt.Sprintf("uploads/%d", i)])
					}
				}
				require.NoError(t, rows.Err())
				require.Equal(t, len(pending)+len(ids)/9, seen)
				require.Len(t, collect(t, m), 1, "only the row without an object is left")
			})
		}
	})
}

// requireBytes checks that key holds want.
func requireBytes(t testing.TB, b cas.Backend, key string, want []byte) {
	t.Helper()
	obj, err := b.Open(context.Background(), key)
	require.NoError(t, err, key)
	defer obj.Close()
	got, err := io.ReadAll(obj)
	require.NoError(t, err)
	require.Equal(t, string(want), string(got), key)
}

// TestEnginesSchemaQualified: a schema-qualified table name reaches the
// table in that schema, not the same-named table on the connection's
// search path (PostgreSQL schema, MySQL database).
func TestEnginesSchemaQualified(t *testing.T) {
	t.Parallel()
	forEngines(t, func(t *testing.T, e engine) {
		if !e.server {
			t.Skip("SQLite schemas are attached files; TestNewValidatesIdentifiers covers main.parts")
		}
		ctx := t.Context()
		target, other := e.open(t), e.open(t)
		b := memstore.New()
		for _, db := range []*testutil.DB{target, other} {
			e.createTable(t, db, "parts")
			for i := 1; i <= 5; i++ {
				key := fmt.Sprintf("uploads/%s/%d", db.Schema, i)
				require.NoError(t, b.Put(ctx, key, strings.NewReader(key), int64(len(key)), cas.PutOptions{}))
				e.exec(t, db, "INSERT INTO parts VALUES (?, ?)", i, key)
			}
		}
		name := target.Schema + ".parts"
		if e.name == "postgres" {
			name = strings.ToUpper(target.Schema) + ".Parts" // unquoted names fold to lower case
		}
		// Connected to other's schema, naming target's table.
		m := e.migrator(t, other, sqlmigrator.Table{Name: name, IDColumn: "id", KeyColumn: "k"}, sqlmigrator.WithPageSize(2))
		rep, err := migrate.Run(ctx, cas.New(b), m, migrate.Options{})
		require.NoError(t, err)
		require.NoError(t, rep.Err())
		require.Equal(t, 5, rep.Migrated)
		for i := 1; i <= 5; i++ {
			var k string
			require.NoError(t, target.QueryRowContext(ctx, e.q("SELECT k FROM parts WHERE id = ?"), i).Scan(&k))
			require.Equal(t, casKey(fmt.Sprintf("uploads/%s/%d", target.Schema, i)), k)
			require.NoError(t, other.QueryRowContext(ctx, e.q("SELECT k FROM parts WHERE id = ?"), i).Scan(&k))
			require.Equal(t, fmt.Sprintf("uploads/%s/%d", other.Schema, i), k, "the unqualified table is untouched")
		}
	})
}

// TestEnginesReservedWordColumns: a key column named with a reserved word
// (PostgreSQL user, MySQL key, SQLite order) works. Before identifiers were
// quoted PostgreSQL read CURRENT_USER for every row and MySQL failed with
// a syntax error.
func TestEnginesReservedWordColumns(t *testing.T) {
	t.Parallel()
	forEngines(t, func(t *testing.T, e engine) {
		ctx := t.Context()
		db := e.open(t)
		col := e.reservedKey
		quoted := "`" + col + "`"
		if e.name == "postgres" {
			quoted = `"` + col + `"`
		}
		e.exec(t, db, "CREATE TABLE docs (id "+e.intID+", "+quoted+" "+e.keyType+")")
		e.exec(t, db, "INSERT INTO docs VALUES (1, 'uploads/1'), (2, 'uploads/2')")
		m := e.migrator(t, db, sqlmigrator.Table{Name: "docs", IDColumn: "id", KeyColumn: col})
		require.Equal(t, []migrate.Record{{ID: "1", Key: "uploads/1"}, {ID: "2", Key: "uploads/2"}}, collect(t, m))
		require.NoError(t, m.Commit(ctx, migrate.Record{ID: "2", Key: "uploads/2"}, casKey("2")))
		var k string
		require.NoError(t, db.QueryRowContext(ctx, "SELECT "+quoted+" FROM docs WHERE id = 2").Scan(&k))
		require.Equal(t, casKey("2"), k)
	})
}

// TestEnginesWrongPlaceholderStyleFails: a Migrator built for the other
// engine's SQL fails on its first query instead of silently reading rows.
func TestEnginesWrongPlaceholderStyleFails(t *testing.T) {
	t.Parallel()
	forEngines(t, func(t *testing.T, e engine) {
		if !e.server {
			t.Skip("SQLite accepts both styles (TestDollarPlaceholders)")
		}
		db, tbl := e.openTable(t, "parts")
		e.exec(t, db, "INSERT INTO parts VALUES (1, 'uploads/1')")
		var opts []sqlmigrator.Option
		if e.name != "postgres" {
			opts = append(opts, sqlmigrator.WithDollarPlaceholders())
		}
		m, err := sqlmigrator.New(db.DB, tbl, opts...)
		require.NoError(t, err)
		n := 0
		for _, err := range m.Pending(t.Context()) {
			require.Error(t, err)
			n++
		}
		require.Equal(t, 1, n, "one error, no rows")
	})
}

// TestEnginesCommitWaitsForConcurrentTransaction: Commit's conditional
// UPDATE waits for another transaction that holds the row, then sees that
// transaction's outcome: a committed change is a conflict (the row keeps
// the writer's key), a rolled-back one is not.
func TestEnginesCommitWaitsForConcurrentTransaction(t *testing.T) {
	t.Parallel()
	forEngines(t, func(t *testing.T, e engine) {
		if !e.server {
			t.Skip("SQLite has no row locks: a second writer gets SQLITE_BUSY")
		}
		db, tbl := e.openTable(t, "parts")
		e.exec(t, db, "INSERT INTO parts VALUES (1, 'uploads/1'), (2, 'uploads/2')")
		m := e.migrator(t, db, tbl)
		for _, commit := range []bool{true, false} {
			t.Run(fmt.Sprintf("writer commits %v", commit), func(t *testing.T) {
				ctx := t.Context()
				id := 1
				if !commit {
					id = 2
				}
				old := fmt.Sprintf("uploads/%d", id)
				err := requireWaitsForWriter(t, e, db, id, commit, "Commit", func() error {
					return m.Commit(ctx, migrate.Record{ID: strconv.Itoa(id), Key: old}, casKey(old))
				})
				require.Equal(t, commit, errors.Is(err, migrate.ErrConflict), "%v", err)
				if !commit {
					require.NoError(t, err)
				}
				var k string
				require.NoError(t, db.QueryRowContext(ctx, e.q("SELECT k FROM parts WHERE id = ?"), id).Scan(&k))
				if commit {
					require.Equal(t, "uploads/writer", k, "the writer's change survives")
				} else {
					require.Equal(t, casKey(old), k)
				}
			})
		}
	})
}

// racingMigrator makes a concurrent writer change each tenth record's row
// just before Run commits it, so that conflicts happen on every run.
type racingMigrator struct {
	*sqlmigrator.Migrator
	race func(ctx context.Context, id string) error
}

func (r racingMigrator) Commit(ctx context.Context, rec migrate.Record, newKey string) error {
	if n, _ := strconv.Atoi(rec.ID); n%10 == 0 {
		if err := r.race(ctx, rec.ID); err != nil {
			return fmt.Errorf("racing writer: %w", err)
		}
	}
	return r.Migrator.Commit(ctx, rec, newKey)
}

// TestEnginesConcurrentWriter runs Run while another writer keeps
// changing the table: repointing rows at new legacy objects or new CAS
// objects, clearing keys, deleting rows and inserting rows. Every record
// Run saw ends migrated or in Conflicts (none fails), no row ever points at
// a missing object or at bytes other than its own, and a second Run after
// the writer stops finishes the migration.
func TestEnginesConcurrentWriter(t *testing.T) {
	t.Parallel()
	forEngines(t, func(t *testing.T, e engine) {
		ctx := t.Context()
		db, tbl := e.openTable(t, "parts")
		b := memstore.New()
		store := cas.New(b)
		var (
			mu    sync.Mutex
			bytes = map[string][]byte{} // every legacy key ever written -> its bytes
			seq   atomic.Int64
		)
		// newLegacy stores a new legacy object and returns its key.
		newLegacy := func(ctx context.Context) (string, error) {
			n := seq.Add(1)
			key := fmt.Sprintf("uploads/%06d", n)
			p := []byte(fmt.Sprintf("blob %d", n%50))
			mu.Lock()
			bytes[key] = p
			mu.Unlock()
			return key, b.Put(ctx, key, strings.NewReader(string(p)), int64(len(p)), cas.PutOptions{})
		}
		const rows = 300
		for i := 1; i <= rows; i++ {
			key, err := newLegacy(ctx)
			require.NoError(t, err)
			e.exec(t, db, "INSERT INTO parts VALUES (?, ?)", i, key)
		}
		update := e.q("UPDATE parts SET k = ? WHERE id = ?")
		race := func(ctx context.Context, id string) error {
			key, err := newLegacy(ctx)
			if err != nil {
				return err
			}
			_, err = db.ExecContext(ctx, update, key, id)
			return err
		}
		sm := e.migrator(t, db, tbl, sqlmigrator.WithPageSize(16))
		m := racingMigrator{Migrator: sm, race: race}

		stop := make(chan struct{})
		var writes atomic.Int64
		writerErr := make(chan error, 1)
		go func() {
			writerErr <- func() error {
				rnd := mrand.New(mrand.NewPCG(1, 2))
				next := int64(rows + 1)
				for {
					select {
					case <-stop:
						return nil
					default:
					}
					id := rnd.IntN(rows) + 1
					var err error
					switch op := rnd.IntN(10); {
					case op < 4:
						err = race(ctx, strconv.Itoa(id))
					case op < 6:
						var res cas.PutResult
						p := []byte(fmt.Sprintf("new upload %d", rnd.IntN(1000)))
						if res, err = store.Put(ctx, strings.NewReader(string(p))); err == nil {
							_, err = db.ExecContext(ctx, update, res.Hash.Key(), id)
						}
					case op < 7:
						_, err = db.ExecContext(ctx, e.q("UPDATE parts SET k = NULL WHERE id = ?"), id)
					case op < 8:
						_, err = db.ExecContext(ctx, e.q("DELETE FROM parts WHERE id = ?"), id)
					case next > rows+100:
						// At most 100 inserts: a writer that inserts rows
						// past the cursor forever keeps Run's Pending
						// going forever (by design: new rows migrate too).
						continue
					default:
						var key string
						if key, err = newLegacy(ctx); err == nil {
							_, err = db.ExecContext(ctx, e.q("INSERT INTO parts VALUES (?, ?)"), next, key)
							next++
						}
					}
					if err != nil && !isBusy(err) {
						return err
					}
					writes.Add(1)
					time.Sleep(50 * time.Microsecond) // a busy writer, not a flat-out one
				}
			}()
		}()

		runCtx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		rep, err := migrate.Run(runCtx, store, m, migrate.Options{Concurrency: 4})
		close(stop)
		require.NoError(t, <-writerErr)
		require.NoError(t, err)
		t.Logf("%s: run saw %d, migrated %d, conflicts %d (%d still pending), failed %d; writer made %d changes",
			e.name, rep.Seen, rep.Migrated, rep.Conflicts, rep.ConflictsPending, rep.Failed, writes.Load())
		require.Equal(t, rep.Seen, rep.Migrated+rep.Conflicts)
		require.GreaterOrEqual(t, rep.Conflicts, rows/10-rows/20, "the racing writer forced conflicts")
		require.Zero(t, rep.Failed, "%v", rep.Failures)
		require.Positive(t, rep.ConflictsPending, "the racing writer repoints rows at new legacy objects")
		require.ErrorIs(t, rep.Err(), migrate.ErrConflict)
		requireRowsPointAtTheirBytes(t, e, db, b, bytes)

		// The writer has stopped: a rerun (without the racing Commit)
		// finishes the migration.
		rep, err = migrate.Run(ctx, store, sm, migrate.Options{Concurrency: 4})
		require.NoError(t, err)
		require.NoError(t, rep.Err())
		require.Empty(t, collect(t, sm))
		requireRowsPointAtTheirBytes(t, e, db, b, bytes)
	})
}

// isBusy reports SQLite's "database is locked" under concurrent writers,
// which the writer goroutine tolerates (SQLite serialises writers).
func isBusy(err error) bool {
	return strings.Contains(err.Error(), "SQLITE_BUSY") || strings.Contains(err.Error(), "database is locked")
}

// requireRowsPointAtTheirBytes checks every row's key: a CAS key must hold
// bytes that hash to it, a legacy key the bytes written under it.
func requireRowsPointAtTheirBytes(t *testing.T, e engine, db *testutil.DB, b cas.Backend, legacy map[string][]byte) {
	t.Helper()
	ctx := t.Context()
	rs, err := db.QueryContext(ctx, "SELECT id, k FROM parts WHERE k IS NOT NULL")
	require.NoError(t, err)
	defer rs.Close()
	n := 0
	for rs.Next() {
		var ids, key string
		require.NoError(t, rs.Scan(&ids, &key))
		n++
		obj, err := b.Open(ctx, key)
		require.NoError(t, err, "row %s points at %q, which is missing", ids, key)
		if h, err := cas.ParseKey(key); err == nil {
			got, _, err := cas.Sum(obj)
			require.NoError(t, err)
			require.Equal(t, h, got, "row %s: %q holds other bytes", ids, key)
		} else {
			got, err := io.ReadAll(obj)
			require.NoError(t, err)
			require.Equal(t, string(legacy[key]), string(got), "row %s: %q", ids, key)
		}
		obj.Close()
	}
	require.NoError(t, rs.Err())
	require.Positive(t, n)
}
