package sqlmigrator_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/migrate"
	"github.com/casa-go/casa/migrate/sqlmigrator"
)

// journalFixture is a SQLite table of n rows on legacy keys, whose
// objects are in a memstore.
type journalFixture struct {
	db     *sql.DB
	m      *sqlmigrator.Migrator
	b      *memstore.Backend
	store  *cas.Store
	before map[int64]string
}

func newJournalFixture(t *testing.T, n int, opts ...sqlmigrator.Option) journalFixture {
	t.Helper()
	db := openDB(t)
	exec(t, db, `CREATE TABLE parts (id INTEGER PRIMARY KEY, name TEXT, datasheet_key TEXT)`)
	b := memstore.New()
	f := journalFixture{db: db, b: b, store: cas.New(b), before: map[int64]string{}}
	for i := range n {
		key := fmt.Sprintf("uploads/%04d", i)
		exec(t, db, `INSERT INTO parts (id, name, datasheet_key) VALUES (?, ?, ?)`, i+1, "p", key)
		data := fmt.Sprintf("datasheet %d", i)
		require.NoError(t, b.Put(context.Background(), key, strings.NewReader(data), int64(len(data)), cas.PutOptions{}))
		f.before[int64(i+1)] = key
	}
	m, err := sqlmigrator.New(db, sqlmigrator.Table{Name: "parts", IDColumn: "id", KeyColumn: "datasheet_key"}, opts...)
	require.NoError(t, err)
	f.m = m
	return f
}

// keys returns every row's key.
func (f journalFixture) keys(t *testing.T) map[int64]string {
	t.Helper()
	rows, err := f.db.Query(`SELECT id, datasheet_key FROM parts`)
	require.NoError(t, err)
	defer rows.Close()
	out := map[int64]string{}
	for rows.Next() {
		var (
			id  int64
			key string
		)
		require.NoError(t, rows.Scan(&id, &key))
		out[id] = key
	}
	require.NoError(t, rows.Err())
	return out
}

func (f journalFixture) run(t *testing.T) migrate.Report {
	t.Helper()
	rep, err := migrate.Run(context.Background(), f.store, f.m, migrate.Options{})
	require.NoError(t, err)
	require.NoError(t, rep.Err())
	return rep
}

func TestJournalRecordsEveryCommitInTheCommitsTransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newJournalFixture(t, 7, sqlmigrator.WithPageSize(3))
	require.Equal(t, "parts_casa_journal", f.m.JournalTable())
	f.run(t)
	after := f.keys(t)

	var n int
	for e, err := range f.m.Journal(ctx) {
		require.NoError(t, err)
		var id int64
		_, err := fmt.Sscan(e.ID, &id)
		require.NoError(t, err)
		require.Equal(t, f.before[id], e.OldKey)
		require.Equal(t, after[id], e.NewKey)
		require.False(t, e.Time.IsZero())
		require.True(t, e.Reverted.IsZero())
		n++
	}
	require.Equal(t, 7, n, "one entry per commit, across journal pages")

	// A commit that conflicts journals nothing.
	err := f.m.Commit(ctx, migrate.Record{ID: "1", Key: "uploads/0000"}, casKey("x"))
	require.ErrorIs(t, err, migrate.ErrConflict)
	var count int
	require.NoError(t, f.db.QueryRow(`SELECT COUNT(*) FROM parts_casa_journal`).Scan(&count))
	require.Equal(t, 7, count)
}

func TestJournalFailureRollsBackTheCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newJournalFixture(t, 1)
	// A journal table of the wrong shape makes the journal insert fail:
	// the row must keep its legacy key.
	exec(t, f.db, `CREATE TABLE parts_casa_journal (x TEXT)`)
	err := f.m.Commit(ctx, migrate.Record{ID: "1", Key: "uploads/0000"}, casKey("datasheet 0"))
	require.Error(t, err)
	require.Equal(t, "uploads/0000", f.keys(t)[1], "no commit without its journal entry")
}

func TestRevertOnSQLite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newJournalFixture(t, 12, sqlmigrator.WithPageSize(5), sqlmigrator.WithJournalTable("parts_history"))
	f.run(t)
	after := f.keys(t)

	rep, err := migrate.Revert(ctx, f.store, f.m, migrate.RevertOptions{})
	require.NoError(t, err)
	require.Equal(t, 12, rep.Reverted)
	require.Zero(t, rep.Failed)
	require.Equal(t, f.before, f.keys(t), "every row is back on its key from before")

	run := f.run(t)
	require.Equal(t, 12, run.Deduplicated)
	require.Equal(t, after, f.keys(t), "migrating again gives the same CAS keys")

	var n int
	require.NoError(t, f.db.QueryRow(`SELECT COUNT(*) FROM parts_history WHERE reverted_ns IS NOT NULL`).Scan(&n))
	require.Equal(t, 12, n, "the first commits are marked reverted, not forgotten")
}

func TestRevertOnSQLiteConflictAndMissingRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newJournalFixture(t, 3)
	f.run(t)
	exec(t, f.db, `UPDATE parts SET datasheet_key = ? WHERE id = 1`, casKey("changed since"))
	exec(t, f.db, `DELETE FROM parts WHERE id = 2`)

	rep, err := migrate.Revert(ctx, f.store, f.m, migrate.RevertOptions{})
	require.NoError(t, err)
	require.Equal(t, 1, rep.Reverted)
	require.Equal(t, 1, rep.Failed)
	require.ErrorIs(t, rep.Failures[0], migrate.ErrConflict)
	require.Len(t, rep.Skipped, 1)
	require.ErrorIs(t, rep.Skipped[0].Reason, migrate.ErrNoRecord)
	require.Equal(t, casKey("changed since"), f.keys(t)[1])
	require.Equal(t, f.before[3], f.keys(t)[3])
}

// faultyMigrator wraps the real Migrator and fails a share of Reverts:
// before the transaction, or after it committed (the answer is lost).
type faultyMigrator struct {
	*sqlmigrator.Migrator
	mu     sync.Mutex
	rng    *rand.Rand
	faults int
}

var errInjected = errors.New("injected fault")

func (f *faultyMigrator) Revert(ctx context.Context, e migrate.JournalEntry) error {
	f.mu.Lock()
	roll := f.rng.IntN(6)
	if roll < 2 {
		f.faults++
	}
	f.mu.Unlock()
	switch roll {
	case 0:
		return errInjected
	case 1:
		if err := f.Migrator.Revert(ctx, e); err != nil {
			return err
		}
		return errInjected
	}
	return f.Migrator.Revert(ctx, e)
}

func TestRevertOnSQLiteWithFaultsIsRerunnable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newJournalFixture(t, 30, sqlmigrator.WithPageSize(7))
	f.run(t)
	fm := &faultyMigrator{Migrator: f.m, rng: rand.New(rand.NewPCG(5, 6))}

	// The journal entry of a revert whose answer was lost is marked in
	// the same transaction, so a rerun neither reverts it again nor
	// fails on it.
	done := 0
	for range 40 {
		rep, err := migrate.Revert(ctx, f.store, fm, migrate.RevertOptions{})
		require.NoError(t, err)
		done += rep.Reverted
		if rep.Failed == 0 {
			break
		}
		for _, fl := range rep.Failures {
			require.ErrorIs(t, fl, errInjected)
		}
	}
	require.Positive(t, fm.faults)
	require.Equal(t, f.before, f.keys(t))

	// Already reverted by hand (a rerun after a crash between a custom
	// migrator's update and its mark): Revert only marks it.
	f.run(t)
	var e migrate.JournalEntry
	for x, err := range f.m.Journal(ctx) {
		require.NoError(t, err)
		if x.ID == "4" && x.Reverted.IsZero() {
			e = x
		}
	}
	exec(t, f.db, `UPDATE parts SET datasheet_key = ? WHERE id = 4`, e.OldKey)
	require.NoError(t, f.m.Revert(ctx, e))
}

func TestFinalOnSQLite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newJournalFixture(t, 3)
	final, err := f.m.Final(ctx)
	require.NoError(t, err)
	require.False(t, final, "a fresh journal is not final")
	f.run(t)

	rep, err := migrate.Cleanup(ctx, f.store, f.m, migrate.CleanupOptions{Prefix: "uploads/"})
	require.NoError(t, err)
	require.Zero(t, rep.Deleted)
	require.Equal(t, 3, rep.Revertible)

	require.NoError(t, migrate.Finalize(ctx, f.m))
	final, err = f.m.Final(ctx)
	require.NoError(t, err)
	require.True(t, final)
	_, err = migrate.Revert(ctx, f.store, f.m, migrate.RevertOptions{})
	require.ErrorIs(t, err, migrate.ErrFinal)

	rep, err = migrate.Cleanup(ctx, f.store, f.m, migrate.CleanupOptions{Prefix: "uploads/"})
	require.NoError(t, err)
	require.Equal(t, 3, rep.Deleted)
}

func TestWithJournalTableRejectsNonsense(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "j; DROP TABLE parts", "a.b.c.d", "j--", `"j"`} {
		require.Panics(t, func() { sqlmigrator.WithJournalTable(bad) }, "%q", bad)
	}
}

func TestDefaultJournalNameOfLongTableIsValidAndDistinct(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	names := map[string]bool{}
	for _, table := range []string{strings.Repeat("a", 63), strings.Repeat("a", 62) + "b", "s." + strings.Repeat("a", 63)} {
		m, err := sqlmigrator.New(db, sqlmigrator.Table{Name: table, IDColumn: "id", KeyColumn: "k"})
		require.NoError(t, err)
		j := m.JournalTable()
		last := j[strings.LastIndexByte(j, '.')+1:]
		require.LessOrEqual(t, len(last), sqlmigrator.MaxIdentifierLength, j)
		require.True(t, strings.HasSuffix(j, sqlmigrator.JournalSuffix), j)
		require.False(t, names[j], "two tables share journal %s", j)
		names[j] = true
		exec(t, db, "CREATE TABLE IF NOT EXISTS "+last+" (x TEXT)") // a valid SQLite name
	}
}
