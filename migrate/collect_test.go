package migrate_test

import (
	"context"
	"database/sql"
	"errors"
	"iter"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/internal/testutil/backendtest"
	"github.com/casa-go/casa/migrate"
	"github.com/casa-go/casa/migrate/sqlmigrator"
)

// sqliteMigrator returns a sqlmigrator over a fresh SQLite table
// attachments(id, storage_key) holding keys.
func sqliteMigrator(t testing.TB, keys ...string) (*sqlmigrator.Migrator, *sql.DB) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "app.db")+"?_pragma=busy_timeout(20000)&_pragma=journal_mode(WAL)")
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(4)
	_, err = db.Exec("CREATE TABLE attachments (id INTEGER PRIMARY KEY, storage_key TEXT)")
	require.NoError(t, err)
	for i, k := range keys {
		_, err = db.Exec("INSERT INTO attachments VALUES (?, ?)", i+1, k)
		require.NoError(t, err)
	}
	m, err := sqlmigrator.New(db, sqlmigrator.Table{Name: "attachments", IDColumn: "id", KeyColumn: "storage_key"}, sqlmigrator.WithPageSize(2))
	require.NoError(t, err)
	return m, db
}

// unsorted hides a Migrator's ReferencedSorted, so that Collect and
// Cleanup sort Referenced on disk.
type unsorted struct {
	migrate.Migrator
	migrate.Guard
}

// gcFixture is a Backend holding referenced and orphan blobs, derived
// objects of each kind, and a legacy key.
type gcFixture struct {
	referenced, orphan cas.Hash
	gone               cas.Hash // derived objects only; the blob is absent
	orphanSize         int64
	keep, remove       []string // keys expected to stay and to go
}

func newGCFixture(t *testing.T, b cas.Backend) gcFixture {
	t.Helper()
	putBlob := func(data []byte) cas.Hash {
		h := cas.SumBytes(data)
		put(t, b, h.Key(), data)
		return h
	}
	f := gcFixture{
		referenced: putBlob([]byte("referenced")),
		orphan:     putBlob(testutil.Bytes(7, 1234)),
		gone:       cas.SumBytes([]byte("gone")),
		orphanSize: 1234,
	}
	thumb := func(h cas.Hash) string { return cas.DerivedKey(cas.ThumbnailPrefix, h, "150.jpg") }
	for _, k := range []string{thumb(f.referenced), thumb(f.orphan), thumb(f.gone), cas.ThumbnailPrefix + "junk", "uploads/legacy.pdf"} {
		put(t, b, k, []byte("x"))
	}
	f.keep = []string{f.referenced.Key(), thumb(f.referenced), cas.ThumbnailPrefix + "junk", "uploads/legacy.pdf"}
	f.remove = []string{f.orphan.Key(), thumb(f.orphan), thumb(f.gone)}
	return f
}

// TestCollectDeletesUnreferencedBlobsWithTheirDerivedObjects, on every
// Backend and with and without a SortedReferencer (the on-disk sort, in
// runs small enough to spill): the orphan blob goes with its thumbnail, a
// thumbnail whose blob is gone goes, the referenced blob, its thumbnail, a
// derived key Collect does not understand and legacy keys stay; DryRun
// reports the same and deletes nothing.
func TestCollectDeletesUnreferencedBlobsWithTheirDerivedObjects(t *testing.T) {
	t.Parallel()
	for _, c := range backendtest.All() {
		for _, sorted := range []bool{true, false} {
			name := c.Name + map[bool]string{true: "/sorted", false: "/on-disk sort"}[sorted]
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				ctx := t.Context()
				b := c.New(t)
				f := newGCFixture(t, b)
				m, _ := sqliteMigrator(t, f.referenced.Key(), "uploads/other", cas.SumBytes([]byte("missing")).Key())
				var mig migrate.Migrator = m
				if !sorted {
					mig = unsorted{m, m}
				}
				store := cas.New(b)
				opts := migrate.CollectOptions{MinAge: time.Nanosecond, SortMemory: 1, TempDir: t.TempDir()}
				time.Sleep(time.Millisecond) // past the tiny grace period

				before := keys(t, b, "")
				var would []string
				dry := opts
				dry.DryRun = true
				dry.OnDelete = func(k string) { would = append(would, k) }
				rep, err := migrate.Collect(ctx, store, mig, dry)
				require.NoError(t, err)
				require.Equal(t, before, keys(t, b, ""), "DryRun deletes nothing")
				require.ElementsMatch(t, f.remove, would)
				require.Equal(t, 1, rep.WouldDelete)
				require.Zero(t, rep.Deleted)
				require.Equal(t, 2, rep.DerivedDeleted)
				require.Equal(t, f.orphanSize, rep.Bytes)

				var deleted []string
				opts.OnDelete = func(k string) { deleted = append(deleted, k) }
				rep, err = migrate.Collect(ctx, store, mig, opts)
				require.NoError(t, err)
				require.ElementsMatch(t, f.remove, deleted)
				require.Equal(t, migrate.CollectReport{Scanned: 2, Deleted: 1, Kept: 1, Referenced: 1, Bytes: f.orphanSize,
					DerivedScanned: 4, DerivedDeleted: 2, Elapsed: rep.Elapsed}, rep)
				require.Equal(t, slices.Sorted(slices.Values(f.keep)), keys(t, b, ""))
				if !sorted {
					tmp, err := filepath.Glob(filepath.Join(opts.TempDir, "*"))
					require.NoError(t, err)
					require.Empty(t, tmp, "the on-disk sort removes its files")
				}
			})
		}
	}
}

// TestCollectMinAgeAndDefaults: a blob younger than MinAge, or of unknown
// age, is kept (Young); the default grace period is a day; negative is
// an error; without a Guard only a DryRun runs.
func TestCollectMinAgeAndDefaults(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := memstore.New()
	old, young := cas.SumBytes([]byte("old")), cas.SumBytes([]byte("young"))
	put(t, b, old.Key(), []byte("old"))
	put(t, b, young.Key(), []byte("young"))
	require.True(t, b.SetModTime(old.Key(), time.Now().Add(-25*time.Hour)))
	require.True(t, b.SetModTime(young.Key(), time.Now().Add(-23*time.Hour)))
	m, _ := sqliteMigrator(t)
	store := cas.New(b)

	_, err := migrate.Collect(ctx, store, m, migrate.CollectOptions{MinAge: -time.Second})
	require.ErrorContains(t, err, "negative MinAge")
	plain := newMemMigrator(map[string]string{})
	_, err = migrate.Collect(ctx, store, plain, migrate.CollectOptions{})
	require.ErrorIs(t, err, migrate.ErrNoGuard)
	rep, err := migrate.Collect(ctx, store, plain, migrate.CollectOptions{DryRun: true})
	require.NoError(t, err, "a DryRun needs no Guard")
	require.Equal(t, 1, rep.WouldDelete)

	rep, err = migrate.Collect(ctx, store, m, migrate.CollectOptions{})
	require.NoError(t, err)
	require.Equal(t, 1, rep.Deleted, "older than the default day: %+v", rep)
	require.Equal(t, 1, rep.Young)
	require.Equal(t, []string{young.Key()}, keys(t, b, ""))

	rep, err = migrate.Collect(ctx, store, m, migrate.CollectOptions{Guard: m, MinAge: time.Hour, DryRun: false})
	require.NoError(t, err)
	require.Equal(t, 1, rep.Deleted, "an explicit Guard and a shorter grace period")

	put(t, b, young.Key(), []byte("young"))
	rep, err = migrate.Collect(ctx, store, m, migrate.CollectOptions{MinAge: time.Hour})
	require.NoError(t, err)
	require.Zero(t, rep.Deleted, "just written")
	require.Equal(t, 1, rep.Young)
	require.True(t, b.SetModTime(young.Key(), time.Time{}))
	rep, err = migrate.Collect(ctx, store, m, migrate.CollectOptions{MinAge: time.Nanosecond})
	require.NoError(t, err)
	require.Equal(t, 1, rep.Young, "unknown age is young")
}

// unordered lists a Backend's keys in reverse order.
type unordered struct{ cas.Backend }

func (u unordered) List(ctx context.Context, prefix string) iter.Seq2[cas.Info, error] {
	return func(yield func(cas.Info, error) bool) {
		var all []cas.Info
		for info, err := range u.Backend.List(ctx, prefix) {
			if err != nil {
				yield(info, err)
				return
			}
			all = append(all, info)
		}
		slices.Reverse(all)
		for _, info := range all {
			if !yield(info, nil) {
				return
			}
		}
	}
}

// TestCollectStopsOnUnorderedListing: a Backend whose listing is not in
// byte order cannot be merged: Collect stops with ErrUnordered instead of
// judging references it cannot see, and Cleanup likewise.
func TestCollectStopsOnUnorderedListing(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := memstore.New()
	var hs []cas.Hash
	for i := range 3 {
		data := testutil.Bytes(uint64(i), 10)
		hs = append(hs, cas.SumBytes(data))
		put(t, b, hs[i].Key(), data)
	}
	slices.SortFunc(hs, func(a, b cas.Hash) int { return strings.Compare(a.Key(), b.Key()) })
	m, _ := sqliteMigrator(t, hs[0].Key()) // the smallest key, listed last
	_, err := migrate.Collect(ctx, cas.New(unordered{b}), m, migrate.CollectOptions{MinAge: time.Nanosecond})
	require.ErrorIs(t, err, migrate.ErrUnordered)
	ok, err := cas.New(b).Has(ctx, hs[0])
	require.NoError(t, err)
	require.True(t, ok, "the referenced blob listed out of order survives")

	put(t, b, "uploads/a", []byte("a"))
	put(t, b, "uploads/b", []byte("b"))
	_, err = migrate.Cleanup(ctx, cas.New(b), m, migrate.CleanupOptions{Source: unordered{b}, Prefix: "uploads/"})
	require.ErrorIs(t, err, migrate.ErrUnordered)
}

// failingGuard is a Guard whose CollectKey fails.
type failingGuard struct{ migrate.Guard }

func (failingGuard) CollectKey(context.Context, string, time.Time, func(context.Context) error) (bool, error) {
	return false, errors.New("guard down")
}

// TestCollectMetricsAndFailures: deletions, kept blobs and bytes reach the
// OpenTelemetry counters (not in a DryRun), a failing Guard is counted as
// Failed and returned, and the sweep goes on.
func TestCollectMetricsAndFailures(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := memstore.New()
	f := newGCFixture(t, b)
	m, _ := sqliteMigrator(t, f.referenced.Key())
	mt := newMeter(t)
	store := cas.New(b)
	time.Sleep(time.Millisecond)

	_, err := migrate.Collect(ctx, store, m, migrate.CollectOptions{MinAge: time.Nanosecond, DryRun: true, MeterProvider: mt.mp})
	require.NoError(t, err)
	require.Empty(t, mt.values(t), "a DryRun records nothing")

	rep, err := migrate.Collect(ctx, store, m, migrate.CollectOptions{MinAge: time.Nanosecond, Guard: failingGuard{m}, MeterProvider: mt.mp})
	require.ErrorContains(t, err, "guard down")
	require.Equal(t, 1, rep.Failed)
	require.Zero(t, rep.Deleted)

	_, err = migrate.Collect(ctx, store, m, migrate.CollectOptions{MinAge: time.Nanosecond, MeterProvider: mt.mp})
	require.NoError(t, err)
	require.Equal(t, int64(1), mt.values(t, attribute.String("kind", "blob"))[migrate.MetricGCDeleted])
	require.Equal(t, int64(2), mt.values(t, attribute.String("kind", "derived"))[migrate.MetricGCDeleted])
	got := mt.values(t)
	require.Equal(t, int64(3), got[migrate.MetricGCKept], "2 kept in the failed run, 1 in the second")
	require.Equal(t, f.orphanSize, got[migrate.MetricGCBytes])
}

// TestCleanupOnDiskSortMatchesSorted: Cleanup's on-disk sort of a Migrator
// without SortedReferencer, in runs of a few keys, gives the same result
// as the sorted path on keys whose byte order differs from other
// collations.
func TestCleanupOnDiskSortMatchesSorted(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	legacy := []string{"u/Zeta", "u/alpha", "u/Alpha", "u/a_b", "u/a-b", "u/é", "u/e", "u/日本", "u/ß", "u/10", "u/9"}
	var referenced []string
	for i, k := range legacy {
		if i%2 == 0 {
			referenced = append(referenced, k)
		}
	}
	for _, sorted := range []bool{true, false} {
		b := memstore.New()
		for _, k := range legacy {
			put(t, b, k, []byte(k))
		}
		// The references come from another table: nothing is pending.
		m := newMemMigrator(map[string]string{})
		m.extra = append(slices.Clone(referenced), referenced...)
		var mig migrate.Migrator = m
		if sorted {
			mig = sortedMem{m}
		}
		_, deleted, err := cleanup(ctx, cas.New(b), mig, migrate.CleanupOptions{Prefix: "u/", SortMemory: 40, TempDir: t.TempDir()})
		require.NoError(t, err)
		var want []string
		for _, k := range legacy {
			if !slices.Contains(referenced, k) {
				want = append(want, k)
			}
		}
		require.Equal(t, slices.Sorted(slices.Values(want)), deleted, "sorted=%v", sorted)
		require.Equal(t, slices.Sorted(slices.Values(referenced)), keys(t, b, ""))
	}
}

// sortedMem gives a memMigrator a ReferencedSorted.
type sortedMem struct{ *memMigrator }

func (s sortedMem) ReferencedSorted(ctx context.Context, from string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		var all []string
		for k, err := range s.Referenced(ctx) {
			if err != nil {
				yield("", err)
				return
			}
			if k >= from {
				all = append(all, k)
			}
		}
		slices.Sort(all)
		for _, k := range all {
			if !yield(k, nil) {
				return
			}
		}
	}
}

// TestCollectProgress: Progress is called once per listed blob, with the
// report so far; the last call agrees with the returned report.
func TestCollectProgress(t *testing.T) {
	t.Parallel()
	b := memstore.New()
	f := newGCFixture(t, b)
	m, _ := sqliteMigrator(t, f.referenced.Key())
	var calls []migrate.CollectReport
	time.Sleep(time.Millisecond) // past the tiny grace period
	rep, err := migrate.Collect(t.Context(), cas.New(b), m, migrate.CollectOptions{MinAge: time.Nanosecond,
		Progress: func(p migrate.CollectReport) { calls = append(calls, p) }})
	require.NoError(t, err)
	require.Len(t, calls, rep.Scanned)
	for i, p := range calls {
		require.Equal(t, i+1, p.Scanned)
		require.Positive(t, p.Elapsed)
	}
	last := calls[len(calls)-1]
	require.Equal(t, rep.Deleted, last.Deleted)
	require.Equal(t, rep.Kept, last.Kept)
	require.Equal(t, rep.Bytes, last.Bytes)
}
