package sqlmigrator_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/migrate/sqlmigrator"
)

// collationKeys are keys whose order differs between collations: case,
// '_' against '-' and letters, accents and other non-ASCII, digits. A
// case-insensitive or linguistic collation (MySQL's utf8mb4_general_ci,
// PostgreSQL's en_US.UTF-8) orders them differently from Go's byte order.
func collationKeys() []string {
	return []string{
		"Zeta", "alpha", "Alpha", "ALPHA", "a_b", "a-b", "aB", "ab", "a.b", "a b", "a/b",
		"é", "e", "E", "f", "ü", "u", "z", "日本", "ß", "ss", "10", "9", "_x", "-x", "~x",
		cas.SumBytes([]byte("one")).Key(), cas.SumBytes([]byte("two")).Key(),
		"uploads/A.pdf", "uploads/a.pdf", "uploads/a_1.pdf", "uploads/a-1.pdf",
	}
}

// referencedSorted collects m.ReferencedSorted(from).
func referencedSorted(t *testing.T, m *sqlmigrator.Migrator, from string) []string {
	t.Helper()
	var out []string
	for k, err := range m.ReferencedSorted(t.Context(), from) {
		require.NoError(t, err)
		out = append(out, k)
	}
	return out
}

// TestEnginesReferencedSortedByteOrder: on every engine ReferencedSorted
// yields the keys in Go's byte order (strings.Compare), across pages, from
// a bound, whatever the column's collation; empty and NULL keys are left
// out.
func TestEnginesReferencedSortedByteOrder(t *testing.T) {
	t.Parallel()
	forEngines(t, func(t *testing.T, e engine) {
		db, tbl := e.openTable(t, "files")
		keys := collationKeys()
		id := 0
		for _, k := range append(slices.Clone(keys), keys[:5]...) { // some twice
			id++
			e.exec(t, db, "INSERT INTO files VALUES (?, ?)", id, k)
		}
		e.exec(t, db, "INSERT INTO files VALUES (?, ?)", id+1, "")
		e.exec(t, db, "INSERT INTO files VALUES (?, NULL)", id+2)
		want := slices.Sorted(slices.Values(keys))

		for _, page := range []int{1, 3, 500} {
			m := e.migrator(t, db, tbl, sqlmigrator.WithPageSize(page))
			got := referencedSorted(t, m, "")
			require.True(t, slices.IsSorted(got), "page %d: not in byte order: %q", page, got)
			require.Equal(t, want, slices.Compact(got), "page %d", page)

			for _, from := range []string{"a_", "cas/", "uploads/a", "\U0010ffff"} {
				got = referencedSorted(t, m, from)
				var wantFrom []string
				for _, k := range want {
					if k >= from {
						wantFrom = append(wantFrom, k)
					}
				}
				require.Equal(t, wantFrom, slices.Compact(got), "page %d from %q", page, from)
			}
		}
	})
}

// TestEnginesGuard: Touch protects a key from CollectKey for as long as
// since is not after the touch; a referenced key is never collected; a
// failing delete is reported and keeps the key; Prune forgets old touches.
func TestEnginesGuard(t *testing.T) {
	t.Parallel()
	forEngines(t, func(t *testing.T, e engine) {
		ctx := t.Context()
		db, tbl := e.openTable(t, "files")
		m := e.migrator(t, db, tbl)
		touchedKey := cas.SumBytes([]byte("touched")).Key()
		refKey := cas.SumBytes([]byte("referenced")).Key()
		freeKey := cas.SumBytes([]byte("free")).Key()
		e.exec(t, db, "INSERT INTO files VALUES (?, ?)", 1, refKey)

		before := time.Now()
		require.NoError(t, m.Touch(ctx, touchedKey))
		require.NoError(t, m.Touch(ctx, touchedKey), "a second touch updates the row")
		var deleted []string
		del := func(k string) func(context.Context) error {
			return func(context.Context) error { deleted = append(deleted, k); return nil }
		}
		ok, err := m.CollectKey(ctx, touchedKey, before, del(touchedKey))
		require.NoError(t, err)
		require.False(t, ok, "touched after since: kept")
		ok, err = m.CollectKey(ctx, refKey, time.Now(), del(refKey))
		require.NoError(t, err)
		require.False(t, ok, "referenced: kept")
		boom := errors.New("delete failed")
		ok, err = m.CollectKey(ctx, freeKey, time.Now(), func(context.Context) error { return boom })
		require.ErrorIs(t, err, boom)
		require.False(t, ok)
		require.Empty(t, deleted)

		ok, err = m.CollectKey(ctx, freeKey, time.Now(), del(freeKey))
		require.NoError(t, err)
		require.True(t, ok)
		ok, err = m.CollectKey(ctx, touchedKey, time.Now().Add(time.Second), del(touchedKey))
		require.NoError(t, err)
		require.True(t, ok, "a touch older than since no longer protects")
		require.Equal(t, []string{freeKey, touchedKey}, deleted)

		require.NoError(t, m.Touch(ctx, touchedKey))
		require.NoError(t, m.Prune(ctx, time.Now().Add(time.Hour)))
		var n int
		require.NoError(t, db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+m.GCTable()).Scan(&n))
		require.Zero(t, n, "Prune forgets touches older than its bound, and CollectKey leaves no row")
	})
}

// TestEnginesTouchWaitsForCollectKey: a Touch that starts while CollectKey
// holds the key (here: inside its delete) returns only after the delete,
// on every engine, so a writer that touches and then looks for the blob
// finds it gone and writes it again.
func TestEnginesTouchWaitsForCollectKey(t *testing.T) {
	t.Parallel()
	forEngines(t, func(t *testing.T, e engine) {
		ctx := t.Context()
		db, tbl := e.openTable(t, "files")
		m := e.migrator(t, db, tbl)
		key := cas.SumBytes([]byte("contended")).Key()
		require.NoError(t, m.Prune(ctx, time.Now())) // creates the table outside the race

		var deleteDone, touchDone atomic.Int64
		touched := make(chan error, 1)
		ok, err := m.CollectKey(ctx, key, time.Now(), func(context.Context) error {
			go func() {
				err := m.Touch(ctx, key)
				touchDone.Store(time.Now().UnixNano())
				touched <- err
			}()
			time.Sleep(300 * time.Millisecond)
			require.Zero(t, touchDone.Load(), "Touch returned while CollectKey held the key")
			deleteDone.Store(time.Now().UnixNano())
			return nil
		})
		require.NoError(t, err)
		require.True(t, ok)
		require.NoError(t, <-touched)
		require.Greater(t, touchDone.Load(), deleteDone.Load(), "Touch finished after the delete")
		ok, err = m.CollectKey(ctx, key, time.Now().Add(-time.Minute), func(context.Context) error {
			return errors.New("must not delete")
		})
		require.NoError(t, err)
		require.False(t, ok, "the touch that waited is recorded")
	})
}

func TestGCTableName(t *testing.T) {
	t.Parallel()
	m, err := sqlmigrator.New(openDB(t), sqlmigrator.Table{Name: "app.attachments", IDColumn: "id", KeyColumn: "k"})
	require.NoError(t, err)
	require.Equal(t, "app.attachments"+sqlmigrator.GCSuffix, m.GCTable())
	long := strings.Repeat("t", 60)
	m, err = sqlmigrator.New(openDB(t), sqlmigrator.Table{Name: long, IDColumn: "id", KeyColumn: "k"})
	require.NoError(t, err)
	require.LessOrEqual(t, len(m.GCTable()), sqlmigrator.MaxIdentifierLength)
}

// TestMySQLReferencedSortedLatin1: on a latin1 column (MySQL's cp1252, the
// default of older servers, common in legacy tables) ReferencedSorted still
// yields Go's byte order of the keys as UTF-8. Ordering by the column's own
// bytes put "a’" (0x92) before "aé" (0xE9), while the listing of a Backend
// has "aé" (C3 A9) first: Cleanup's merge would then judge "aé"
// unreferenced before it met it, and delete a referenced legacy object;
// and keyset pages bounded by a UTF-8 parameter never advanced (the
// iteration did not end).
func TestMySQLReferencedSortedLatin1(t *testing.T) {
	t.Parallel()
	forEngines(t, func(t *testing.T, e engine) {
		if e.name != "mysql" {
			return // a latin1 column is MySQL's
		}
		db := e.open(t)
		e.exec(t, db, "CREATE TABLE files (id "+e.intID+", k VARCHAR(255) CHARACTER SET latin1)")
		keys := []string{"uploads/a’.pdf", "uploads/aé.pdf", "uploads/a€.pdf", "uploads/az.pdf", "uploads/aŒ.pdf", "uploads/a.pdf"}
		for i, k := range keys {
			e.exec(t, db, "INSERT INTO files VALUES (?, ?)", i+1, k)
		}
		want := slices.Sorted(slices.Values(keys))
		for _, page := range []int{1, 2, 500} {
			m := e.migrator(t, db, sqlmigrator.Table{Name: "files", IDColumn: "id", KeyColumn: "k"}, sqlmigrator.WithPageSize(page))
			require.Equal(t, want, referencedSorted(t, m, "uploads/"), "page %d", page)
		}
	})
}
