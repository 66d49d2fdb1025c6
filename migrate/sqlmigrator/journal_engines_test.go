package sqlmigrator_test

// The journal, Revert and Finalize on every engine of engines_test.go:
// SQLite always, PostgreSQL and MySQL/MariaDB when their servers are set
// (testutil.NewPostgres, NewMySQL; under CI=true a missing server fails).

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/migrate"
	"github.com/casa-go/casa/migrate/sqlmigrator"
)

// quote quotes an identifier the way the engine's own SQL does.
func (e engine) quote(s string) string {
	if e.name == "postgres" {
		return `"` + s + `"`
	}
	return "`" + s + "`"
}

// jtable is a table of one engine, seeded with rows on legacy keys whose
// objects are in a memstore, and a Migrator over it.
type jtable struct {
	e      engine
	db     *testutil.DB
	name   string // as given to the Migrator (maybe schema-qualified)
	sql    string // as the test's own SQL names it
	keyCol string // the key column, quoted
	m      *sqlmigrator.Migrator
	b      *memstore.Backend
	store  *cas.Store
	ids    []string
	before map[string]sql.NullString // id -> key before any migration
}

// seedJournalTable creates table (id idType, key column keyCol) in db and
// fills it: most rows on legacy keys with objects (some sharing bytes),
// and rows with a NULL, an empty and a CAS key, which Run and Revert must
// leave alone. kind picks the IDs: "int", "text" (hostile ones included)
// or "uuid".
func seedJournalTable(t *testing.T, e engine, db *testutil.DB, table, kind, idType, keyCol string, n int, opts ...sqlmigrator.Option) *jtable {
	t.Helper()
	ctx := t.Context()
	jt := &jtable{e: e, db: db, name: table, sql: table, keyCol: e.quote(keyCol), b: memstore.New(), before: map[string]sql.NullString{}}
	jt.store = cas.New(jt.b)
	e.exec(t, db, fmt.Sprintf("CREATE TABLE %s (id %s, name VARCHAR(50), %s %s)", table, idType, jt.keyCol, e.keyType))
	jt.ids = recordIDs(kind, n, "part-%02d")
	if kind == "text" {
		copy(jt.ids, []string{"'; DROP TABLE " + table + "; --", `" OR 1=1 --`, "ünïcødé", "a b", "Z", "10", "9"})
	}
	for i, id := range jt.ids {
		var key sql.NullString
		switch i % 10 {
		case 3: // NULL
		case 5:
			key = sql.NullString{Valid: true} // empty
		case 7:
			key = sql.NullString{String: casKey(id), Valid: true} // migrated already
		default:
			k := fmt.Sprintf("uploads/%s/%d", kind, i)
			p := fmt.Sprintf("datasheet %d", i%6) // some duplicates
			require.NoError(t, jt.b.Put(ctx, k, strings.NewReader(p), int64(len(p)), cas.PutOptions{}))
			key = sql.NullString{String: k, Valid: true}
		}
		e.exec(t, db, "INSERT INTO "+table+" VALUES (?, ?, ?)", id, "part", key)
		jt.before[id] = key
	}
	jt.m = e.migrator(t, db, sqlmigrator.Table{Name: table, IDColumn: "id", KeyColumn: keyCol}, opts...)
	return jt
}

// legacy counts the rows seeded on legacy keys.
func (jt *jtable) legacy() int {
	n := 0
	for _, k := range jt.before {
		if k.String != "" && !cas.IsKey(k.String) {
			n++
		}
	}
	return n
}

// keys returns every row's key.
func (jt *jtable) keys(t *testing.T) map[string]sql.NullString {
	t.Helper()
	rs, err := jt.db.QueryContext(t.Context(), "SELECT id, "+jt.keyCol+" FROM "+jt.sql)
	require.NoError(t, err)
	defer rs.Close()
	out := map[string]sql.NullString{}
	for rs.Next() {
		var (
			id  string
			key sql.NullString
		)
		require.NoError(t, rs.Scan(&id, &key))
		out[id] = key
	}
	require.NoError(t, rs.Err())
	return out
}

func (jt *jtable) key(t *testing.T, id string) sql.NullString {
	t.Helper()
	var k sql.NullString
	require.NoError(t, jt.db.QueryRowContext(t.Context(), jt.e.q("SELECT "+jt.keyCol+" FROM "+jt.sql+" WHERE id = ?"), id).Scan(&k))
	return k
}

func (jt *jtable) set(t *testing.T, id, key string) {
	t.Helper()
	jt.e.exec(t, jt.db, "UPDATE "+jt.sql+" SET "+jt.keyCol+" = ? WHERE id = ?", key, id)
}

func (jt *jtable) run(t *testing.T) migrate.Report {
	t.Helper()
	rep, err := migrate.Run(t.Context(), jt.store, jt.m, migrate.Options{Concurrency: 3})
	require.NoError(t, err)
	require.NoError(t, rep.Err())
	return rep
}

func (jt *jtable) journal(t *testing.T) []migrate.JournalEntry {
	t.Helper()
	var out []migrate.JournalEntry
	for e, err := range jt.m.Journal(t.Context()) {
		require.NoError(t, err)
		out = append(out, e)
	}
	return out
}

// journalRow is one row of a journal table as stored.
type journalRow struct {
	kind, id, oldKey, newKey string
	at                       int64
	reverted                 sql.NullInt64
}

// journalRows reads the journal table named (in the test's SQL) j.
func journalRows(t *testing.T, db *testutil.DB, j string) []journalRow {
	t.Helper()
	rs, err := db.QueryContext(t.Context(), "SELECT kind, record_id, old_key, new_key, at_ns, reverted_ns FROM "+j)
	require.NoError(t, err)
	defer rs.Close()
	var out []journalRow
	for rs.Next() {
		var r journalRow
		require.NoError(t, rs.Scan(&r.kind, &r.id, &r.oldKey, &r.newKey, &r.at, &r.reverted))
		out = append(out, r)
	}
	require.NoError(t, rs.Err())
	return out
}

// TestEnginesJournalRevertAndFinalize runs a whole migration's life on
// every engine and ID type: Run journals one row per commit (record ID,
// old key, new key, time of the commit); Revert puts every row back on its
// key from before (rows without a legacy key untouched) and marks the
// entries; a second Run gives the same CAS keys, deduplicated; Finalize
// makes Revert ErrFinal and lets Cleanup delete the legacy objects, which
// it kept before.
func TestEnginesJournalRevertAndFinalize(t *testing.T) {
	t.Parallel()
	forEngines(t, func(t *testing.T, e engine) {
		db := e.open(t)
		for kind, idType := range idKinds(e) {
			t.Run(kind, func(t *testing.T) {
				ctx := t.Context()
				jt := seedJournalTable(t, e, db, "parts_"+kind, kind, idType, "datasheet_key", 33, sqlmigrator.WithPageSize(4))
				require.Equal(t, "parts_"+kind+"_casa_journal", jt.m.JournalTable())
				final, err := jt.m.Final(ctx)
				require.NoError(t, err)
				require.False(t, final, "a fresh journal is not final")

				start := time.Now()
				rep := jt.run(t)
				end := time.Now()
				require.Equal(t, jt.legacy(), rep.Migrated)
				after := jt.keys(t)

				entries := jt.journal(t)
				require.Len(t, entries, jt.legacy(), "one entry per commit, across journal pages of 4")
				seen := map[string]bool{}
				for i, en := range entries {
					require.False(t, seen[en.ID], "%q journaled twice", en.ID)
					seen[en.ID] = true
					require.Equal(t, jt.before[en.ID].String, en.OldKey, "record %q", en.ID)
					require.Equal(t, after[en.ID].String, en.NewKey, "record %q", en.ID)
					require.True(t, cas.IsKey(en.NewKey))
					require.False(t, en.Time.Before(start) || en.Time.After(end), "time %v not in [%v, %v]", en.Time, start, end)
					require.True(t, en.Reverted.IsZero())
					if i > 0 {
						require.False(t, en.Time.Before(entries[i-1].Time), "oldest first")
					}
				}
				rows := journalRows(t, db, jt.m.JournalTable())
				require.Len(t, rows, len(entries))
				for _, r := range rows {
					require.Equal(t, "commit", r.kind)
					require.False(t, r.reverted.Valid)
					require.Equal(t, jt.before[r.id].String, r.oldKey)
				}

				// A commit that conflicts journals nothing.
				id := entries[0].ID
				err = jt.m.Commit(ctx, migrate.Record{ID: id, Key: entries[0].OldKey}, casKey("x"))
				require.ErrorIs(t, err, migrate.ErrConflict)
				require.Len(t, journalRows(t, db, jt.m.JournalTable()), len(entries))

				// Cleanup keeps what the journal can revert to.
				crep, err := migrate.Cleanup(ctx, jt.store, jt.m, migrate.CleanupOptions{Prefix: "uploads/"})
				require.NoError(t, err)
				require.Zero(t, crep.Deleted)
				require.Equal(t, jt.legacy(), crep.Revertible)

				rrep, err := migrate.Revert(ctx, jt.store, jt.m, migrate.RevertOptions{})
				require.NoError(t, err)
				require.Equal(t, jt.legacy(), rrep.Reverted)
				require.Zero(t, rrep.Failed, "%v", rrep.Failures)
				require.Empty(t, rrep.Skipped)
				require.Equal(t, jt.before, jt.keys(t), "every row is back on its key from before")
				for _, en := range jt.journal(t) {
					require.False(t, en.Reverted.IsZero(), "%q marked reverted", en.ID)
					require.False(t, en.Reverted.Before(en.Time))
				}
				rrep, err = migrate.Revert(ctx, jt.store, jt.m, migrate.RevertOptions{})
				require.NoError(t, err)
				require.Zero(t, rrep.Reverted+rrep.Failed+len(rrep.Skipped), "a second Revert finds nothing standing")

				rep = jt.run(t)
				require.Equal(t, jt.legacy(), rep.Migrated)
				require.Equal(t, jt.legacy(), rep.Deduplicated, "the CAS objects stayed")
				require.Equal(t, after, jt.keys(t), "migrating again gives the same CAS keys")
				require.Len(t, jt.journal(t), 2*jt.legacy(), "reverted entries are kept, new commits added")

				require.NoError(t, migrate.Finalize(ctx, jt.m))
				require.NoError(t, migrate.Finalize(ctx, jt.m), "finalizing twice is harmless")
				final, err = jt.m.Final(ctx)
				require.NoError(t, err)
				require.True(t, final)
				_, err = migrate.Revert(ctx, jt.store, jt.m, migrate.RevertOptions{})
				require.ErrorIs(t, err, migrate.ErrFinal)
				require.Equal(t, after, jt.keys(t), "a refused Revert changes nothing")
				// Another Migrator (a restarted replica) reads the same journal.
				final, err = e.migrator(t, db, jt.m.Table()).Final(ctx)
				require.NoError(t, err)
				require.True(t, final)

				crep, err = migrate.Cleanup(ctx, jt.store, jt.m, migrate.CleanupOptions{Prefix: "uploads/"})
				require.NoError(t, err)
				require.Equal(t, jt.legacy(), crep.Deleted)
				require.Zero(t, crep.Revertible)
			})
		}
	})
}

// TestEnginesJournalFailureRollsBackTheCommit: the journal row is written
// in the commit's transaction, so a journal insert that fails (here a
// CHECK on a journal table the operator made) rolls the row's update back;
// the other records migrate and are journaled.
func TestEnginesJournalFailureRollsBackTheCommit(t *testing.T) {
	t.Parallel()
	forEngines(t, func(t *testing.T, e engine) {
		ctx := t.Context()
		db := e.open(t)
		jt := seedJournalTable(t, e, db, "parts", "int", e.intID, "k", 6)
		e.exec(t, db, "CREATE TABLE parts_casa_journal (kind VARCHAR(16) NOT NULL, record_id TEXT NOT NULL, "+
			"old_key TEXT NOT NULL, new_key TEXT NOT NULL, at_ns BIGINT NOT NULL, reverted_ns BIGINT, CHECK (record_id <> '2'))")
		rep, err := migrate.Run(ctx, jt.store, jt.m, migrate.Options{})
		require.NoError(t, err)
		require.Equal(t, jt.legacy()-1, rep.Migrated)
		require.Len(t, rep.Failures, 1)
		require.Equal(t, "2", rep.Failures[0].Record.ID)
		require.ErrorContains(t, rep.Failures[0].Err, "journal")
		require.Equal(t, jt.before["2"], jt.key(t, "2"), "no commit without its journal entry")
		var ids []string
		for _, en := range jt.journal(t) {
			ids = append(ids, en.ID)
			require.Equal(t, en.NewKey, jt.key(t, en.ID).String, "a journaled commit happened")
		}
		require.ElementsMatch(t, []string{"1", "3", "5"}, ids) // 4 has a NULL key, 6 an empty one
	})
}

// TestEnginesJournalSchemaQualified: the default journal of
// "schema.table" is "schema.table_casa_journal", beside its table (two
// tables of one name in two schemas get two journals) and not on the
// connection's search path; each part is quoted, so a journal named with
// a reserved word (WithJournalTable("schema.order")) works too.
func TestEnginesJournalSchemaQualified(t *testing.T) {
	t.Parallel()
	forEngines(t, func(t *testing.T, e engine) {
		ctx := t.Context()
		target := e.open(t)
		other := target
		if e.server {
			other = e.open(t) // connected to another schema
		}
		jt := seedJournalTable(t, e, target, "parts", "int", e.intID, "k", 8)
		name := target.Schema + ".parts"
		if e.name == "postgres" {
			name = strings.ToUpper(target.Schema) + ".Parts" // unquoted names fold to lower case
		}
		for _, journal := range []string{"", target.Schema + ".order"} {
			t.Run("journal "+journal, func(t *testing.T) {
				var opts []sqlmigrator.Option
				want := name + "_casa_journal"
				if journal != "" {
					opts = append(opts, sqlmigrator.WithJournalTable(journal))
					want = journal
				}
				jt.m = e.migrator(t, other, sqlmigrator.Table{Name: name, IDColumn: "id", KeyColumn: "k"}, append(opts, sqlmigrator.WithPageSize(3))...)
				require.Equal(t, want, jt.m.JournalTable())
				jt.run(t)
				entries := jt.journal(t)
				require.Len(t, entries, jt.legacy())
				last := want[strings.LastIndexByte(want, '.')+1:]
				rows := journalRows(t, target, e.quote(strings.ToLower(last)))
				require.Len(t, rows, jt.legacy(), "the journal is in the table's schema")
				if e.server {
					var n int
					err := other.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+e.quote(strings.ToLower(last))).Scan(&n)
					require.Error(t, err, "no journal on the connection's own schema")
				}
				rrep, err := migrate.Revert(ctx, jt.store, jt.m, migrate.RevertOptions{})
				require.NoError(t, err)
				require.Equal(t, jt.legacy(), rrep.Reverted)
				require.Equal(t, jt.before, jt.keys(t))
			})
		}
	})
}

// TestEnginesJournalReservedWordColumn: Revert on a table whose key column
// is a reserved word (PostgreSQL user, MySQL key, SQLite order), journaled
// in a table named with that word, down each of its paths: a plain
// revert; a row already back on its old key (only the mark is missing); a
// row a writer changed (ErrConflict naming the row's real key, row
// untouched); a deleted row (ErrNoRecord). The last three read the row's
// key, which must be quoted: unquoted, PostgreSQL read CURRENT_USER (so a
// row back on its old key was a conflict with "casa"), MySQL and SQLite
// failed with a syntax error, as they did creating the journal table.
func TestEnginesJournalReservedWordColumn(t *testing.T) {
	t.Parallel()
	forEngines(t, func(t *testing.T, e engine) {
		ctx := t.Context()
		db := e.open(t)
		jt := seedJournalTable(t, e, db, "docs", "int", e.intID, e.reservedKey, 3, sqlmigrator.WithJournalTable(e.reservedKey))
		jt.run(t)
		require.Len(t, journalRows(t, db, e.quote(e.reservedKey)), 3)
		byID := map[string]migrate.JournalEntry{}
		for _, en := range jt.journal(t) {
			byID[en.ID] = en
		}
		require.Len(t, byID, 3)

		require.NoError(t, jt.m.Revert(ctx, byID["1"]))
		require.Equal(t, jt.before["1"], jt.key(t, "1"))

		jt.set(t, "2", byID["2"].OldKey) // reverted by hand
		require.NoError(t, jt.m.Revert(ctx, byID["2"]), "only the mark was missing")
		for _, en := range jt.journal(t) {
			require.Equal(t, en.ID != "3", !en.Reverted.IsZero(), "%q marked iff reverted", en.ID)
		}

		jt.run(t)
		byID = map[string]migrate.JournalEntry{}
		for _, en := range jt.journal(t) {
			if en.Reverted.IsZero() {
				byID[en.ID] = en
			}
		}
		jt.set(t, "1", "uploads/writer")
		err := jt.m.Revert(ctx, byID["1"])
		require.ErrorIs(t, err, migrate.ErrConflict)
		require.ErrorContains(t, err, `"uploads/writer"`, "the error names the row's key")
		require.Equal(t, "uploads/writer", jt.key(t, "1").String)

		e.exec(t, db, "DELETE FROM docs WHERE id = ?", 2)
		require.ErrorIs(t, jt.m.Revert(ctx, byID["2"]), migrate.ErrNoRecord)
	})
}

// TestEnginesRevertConflictWithConcurrentWriter: a writer that changes a
// row between Run and Revert makes that row's revert fail with
// ErrConflict, leaving the writer's key, while every other row is
// reverted; its journal entry stays standing. On the servers a writer
// that holds the row in an open transaction makes Revert wait and then
// see its outcome: a committed change is a conflict, a rolled-back one is
// reverted.
func TestEnginesRevertConflictWithConcurrentWriter(t *testing.T) {
	t.Parallel()
	forEngines(t, func(t *testing.T, e engine) {
		ctx := t.Context()
		db := e.open(t)
		jt := seedJournalTable(t, e, db, "parts", "int", e.intID, "k", 12)
		jt.run(t)
		newCAS, err := jt.store.Put(ctx, strings.NewReader("the writer's upload"))
		require.NoError(t, err)
		jt.set(t, "1", newCAS.Hash.Key())

		rep, err := migrate.Revert(ctx, jt.store, jt.m, migrate.RevertOptions{})
		require.NoError(t, err)
		require.Equal(t, jt.legacy()-1, rep.Reverted)
		require.Equal(t, 1, rep.Failed)
		require.Equal(t, "1", rep.Failures[0].Record.ID)
		require.ErrorIs(t, rep.Failures[0].Err, migrate.ErrConflict)
		require.Equal(t, newCAS.Hash.Key(), jt.key(t, "1").String, "the writer's change survives")
		for id, k := range jt.keys(t) {
			if id != "1" {
				require.Equal(t, jt.before[id], k, "row %s", id)
			}
		}
		standing := 0
		for _, en := range jt.journal(t) {
			if en.Reverted.IsZero() {
				standing++
				require.Equal(t, "1", en.ID)
			}
		}
		require.Equal(t, 1, standing)

		if !e.server {
			return // SQLite has no row locks: a second writer gets SQLITE_BUSY
		}
		jt.run(t)
		for _, commit := range []bool{true, false} {
			t.Run(fmt.Sprintf("writer commits %v", commit), func(t *testing.T) {
				ctx := t.Context()
				id := "2"
				if !commit {
					id = "3"
				}
				var en migrate.JournalEntry
				for _, x := range jt.journal(t) {
					if x.ID == id && x.Reverted.IsZero() {
						en = x
					}
				}
				require.NotEmpty(t, en.ID)
				err := requireWaitsForWriter(t, e, db, id, commit, "Revert", func() error { return jt.m.Revert(ctx, en) })
				require.Equal(t, commit, errors.Is(err, migrate.ErrConflict), "%v", err)
				if !commit {
					require.NoError(t, err)
				}
				if commit {
					require.Equal(t, "uploads/writer", jt.key(t, id).String)
				} else {
					require.Equal(t, en.OldKey, jt.key(t, id).String)
				}
			})
		}
	})
}

// TestEnginesJournalCreatedByManyMigratorsAtOnce: replicas that start
// together each create the journal table on demand; every one must
// succeed, and the table must exist once. PostgreSQL's CREATE TABLE IF
// NOT EXISTS is not safe against a concurrent creation of the same table
// (a unique violation on its catalog), so this failed there before
// ensureJournal accepted a table another session had just created.
func TestEnginesJournalCreatedByManyMigratorsAtOnce(t *testing.T) {
	t.Parallel()
	forEngines(t, func(t *testing.T, e engine) {
		ctx := t.Context()
		db, tbl := e.openTable(t, "parts")
		const rounds, replicas = 6, 6
		for r := range rounds {
			journal := fmt.Sprintf("parts_journal_%d", r)
			var (
				wg   sync.WaitGroup
				errs = make(chan error, replicas)
			)
			start := make(chan struct{})
			for range replicas {
				m := e.migrator(t, db, tbl, sqlmigrator.WithJournalTable(journal))
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					_, err := m.Final(ctx)
					errs <- err
				}()
			}
			close(start)
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err, "round %d", r)
			}
			require.Empty(t, journalRows(t, db, journal))
		}
	})
}

// TestEnginesJournalInsertIsInTheCommitsTransaction: on the servers, a
// session that blocks inserts into the journal table holds Commit between
// its UPDATE and its journal INSERT; meanwhile another session still reads
// the row's old key (the update is not committed without its journal
// row), and once the journal is free both land together.
func TestEnginesJournalInsertIsInTheCommitsTransaction(t *testing.T) {
	t.Parallel()
	forEngines(t, func(t *testing.T, e engine) {
		if !e.server {
			t.Skip("SQLite locks the whole database: TestJournalFailureRollsBackTheCommit covers it")
		}
		ctx := t.Context()
		db := e.open(t)
		jt := seedJournalTable(t, e, db, "parts", "int", e.intID, "k", 2)
		_, err := jt.m.Final(ctx) // creates the journal table
		require.NoError(t, err)
		tx, err := db.BeginTx(ctx, nil)
		require.NoError(t, err)
		defer tx.Rollback() //nolint:errcheck

		// InnoDB's locking read of the whole table locks its gaps, so
		// inserts wait; PostgreSQL's SHARE mode conflicts with inserts.
		lock := "SELECT * FROM parts_casa_journal FOR UPDATE"
		if e.name == "postgres" {
			lock = "LOCK TABLE parts_casa_journal IN SHARE MODE"
		}
		_, err = tx.ExecContext(ctx, lock)
		require.NoError(t, err)

		old := jt.before["1"].String
		err = requireWaits(t, "Commit", func() error {
			return jt.m.Commit(ctx, migrate.Record{ID: "1", Key: old}, casKey("new"))
		}, func() {
			require.Equal(t, old, jt.key(t, "1").String, "the update is invisible until its journal row is written")
			require.NoError(t, tx.Rollback())
		})
		require.NoError(t, err)
		require.Equal(t, casKey("new"), jt.key(t, "1").String)
		entries := jt.journal(t)
		require.Len(t, entries, 1)
		require.Equal(t, migrate.JournalEntry{ID: "1", OldKey: old, NewKey: casKey("new"), Time: entries[0].Time}, entries[0])
	})
}
