package migrate_test

import (
	"bytes"
	"context"
	"errors"
	"iter"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/internal/testutil/faulty"
	"github.com/casa-go/casa/migrate"
)

// cleanupFixture is a migrated bucket: n migrated records whose legacy
// objects are now unreferenced, plus objects Cleanup must keep.
type cleanupFixture struct {
	m         *memMigrator
	want      map[string][]byte
	legacy    []string // the migrated records' legacy keys: to delete
	stray     string   // a legacy object no record ever pointed at: to delete
	keep      []string // keys Cleanup must never delete
	casOrphan string
}

func newCleanupFixture(t *testing.T, e env, n int) cleanupFixture {
	t.Helper()
	ctx := context.Background()
	m, want := seed(t, e, n)
	f := cleanupFixture{m: m, want: want, stray: "uploads/stray"}
	for i := range n {
		f.legacy = append(f.legacy, legacyKey(i))
	}
	put(t, e.source, f.stray, []byte("nobody points here"))

	rep, err := migrate.Run(ctx, e.store, m, e.with(migrate.Options{}))
	require.NoError(t, err)
	require.NoError(t, rep.Err())

	orphan, err := e.store.Put(ctx, bytes.NewReader([]byte("a CAS object no record points at")))
	require.NoError(t, err)
	f.casOrphan = orphan.Hash.Key()
	put(t, e.source, "thumbnails/"+orphan.Hash.String()+"_200.jpg", []byte("derived"))
	put(t, e.source, "other-app/data", []byte("outside the prefix"))
	f.keep = []string{f.casOrphan, "thumbnails/" + orphan.Hash.String() + "_200.jpg", "other-app/data"}
	for _, key := range m.snapshot() {
		f.keep = append(f.keep, key)
	}
	return f
}

// allKeys lists both backends of e.
func allKeys(t *testing.T, e env) []string {
	t.Helper()
	out := keys(t, e.source, "")
	if e.storeBackend() != e.source {
		out = append(out, keys(t, e.storeBackend(), "")...)
	}
	slices.Sort(out)
	return out
}

func TestCleanupDeletesExactlyUnreferencedLegacyObjects(t *testing.T) {
	t.Parallel()
	for _, e := range envs(t) {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := newCleanupFixture(t, e, 6)
			before := allKeys(t, e)

			for prefix, extra := range map[string][]string{"uploads/": nil, "": {"other-app/data"}} {
				rep, deleted, err := cleanup(ctx, e.store, f.m, migrate.CleanupOptions{Source: e.source, Prefix: prefix, DryRun: true})
				require.NoError(t, err)
				wantKeys := append(slices.Clone(f.legacy), f.stray)
				wantKeys = append(wantKeys, extra...)
				slices.Sort(wantKeys)
				require.Equal(t, wantKeys, deleted, "DryRun with prefix %q lists what would go", prefix)
				require.Zero(t, rep.Deleted)
				require.Equal(t, len(wantKeys), rep.WouldDelete)
				require.Equal(t, rep.Scanned, rep.Kept+rep.WouldDelete)
				require.Equal(t, before, allKeys(t, e), "DryRun deletes nothing")
			}

			rep, deleted, err := cleanup(ctx, e.store, f.m, migrate.CleanupOptions{Source: e.source, Prefix: "uploads/"})
			require.NoError(t, err)
			wantKeys := append(slices.Clone(f.legacy), f.stray)
			slices.Sort(wantKeys)
			require.Equal(t, wantKeys, deleted)
			require.Equal(t, len(wantKeys), rep.Deleted)
			require.Equal(t, len(wantKeys), rep.Scanned, "only keys under the prefix are scanned")
			require.Zero(t, rep.Kept)

			var wantLeft []string
			for _, k := range before {
				if !slices.Contains(wantKeys, k) {
					wantLeft = append(wantLeft, k)
				}
			}
			require.Equal(t, wantLeft, allKeys(t, e), "exactly the unreferenced legacy objects are gone")
			for _, k := range f.keep {
				require.Contains(t, allKeys(t, e), k)
			}
			requireIntact(t, f.m, e.storeBackend(), e.source, f.want)

			// With other-app/data referenced, an unprefixed pass keeps
			// everything left: CAS objects (orphans too), derived data.
			f.m.extra = []string{"other-app/data"}
			rep, deleted, err = cleanup(ctx, e.store, f.m, migrate.CleanupOptions{Source: e.source})
			require.NoError(t, err)
			require.Zero(t, rep.Deleted)
			require.Empty(t, deleted)
			require.Equal(t, rep.Scanned, rep.Kept)
			require.Equal(t, wantLeft, allKeys(t, e))
		})
	}
}

func TestCleanupRefusesWhilePending(t *testing.T) {
	t.Parallel()
	for _, e := range envs(t) {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := newCleanupFixture(t, e, 3)
			// A record that fails to migrate: its object is missing from the
			// store side and it stays on its legacy key.
			put(t, e.source, "uploads/failing", []byte("its record's commit fails"))
			f.m.set("failing", "uploads/failing")
			f.m.beforeCommit = func(rec migrate.Record) error {
				if rec.ID == "failing" {
					return errors.New("constraint violation")
				}
				return nil
			}
			rep, err := migrate.Run(ctx, e.store, f.m, e.with(migrate.Options{}))
			require.NoError(t, err)
			require.Equal(t, 1, rep.Failed)
			before := allKeys(t, e)

			for _, dry := range []bool{false, true} {
				crep, deleted, err := cleanup(ctx, e.store, f.m, migrate.CleanupOptions{Source: e.source, DryRun: dry})
				require.ErrorIs(t, err, migrate.ErrIncomplete)
				require.Contains(t, err.Error(), "uploads/failing")
				require.Zero(t, crep.Deleted)
				require.Empty(t, deleted)
				require.Equal(t, before, allKeys(t, e), "nothing is deleted while a record is pending")
			}
			require.Equal(t, []byte("its record's commit fails"), read(t, e.source, "uploads/failing"))
		})
	}
}

// hiddenPending hides some records from Pending while Referenced still
// yields their keys: a second table, or a record repointed at a legacy key
// between Cleanup's pending check and its sweep.
type hiddenPending struct {
	*memMigrator
	hide string
}

func (h hiddenPending) Pending(ctx context.Context) iter.Seq2[migrate.Record, error] {
	return func(yield func(migrate.Record, error) bool) {
		for rec, err := range h.memMigrator.Pending(ctx) {
			if rec.ID == h.hide {
				continue
			}
			if !yield(rec, err) {
				return
			}
		}
	}
}

func TestCleanupKeepsReferencedLegacyObjects(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, e := memEnv()
	f := newCleanupFixture(t, e, 3)
	put(t, b, "uploads/failed-record", []byte("still referenced"))
	f.m.set("failed", "uploads/failed-record")
	put(t, b, "uploads/other-table", []byte("referenced from elsewhere"))
	f.m.extra = []string{"uploads/other-table"}

	rep, deleted, err := cleanup(ctx, e.store, hiddenPending{f.m, "failed"}, migrate.CleanupOptions{Prefix: "uploads/"})
	require.NoError(t, err)
	wantKeys := append(slices.Clone(f.legacy), f.stray)
	slices.Sort(wantKeys)
	require.Equal(t, wantKeys, deleted)
	require.Equal(t, 2, rep.Kept)
	require.Equal(t, []byte("still referenced"), read(t, b, "uploads/failed-record"))
	require.Equal(t, []byte("referenced from elsewhere"), read(t, b, "uploads/other-table"))
}

func TestCleanupMinAge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, e := memEnv()
	f := newCleanupFixture(t, e, 4)
	old := time.Now().Add(-2 * time.Hour)
	for _, k := range append(slices.Clone(f.legacy[:2]), f.stray) {
		require.True(t, b.SetModTime(k, old))
	}
	// Legacy objects 2 and 3 were "just uploaded".

	rep, deleted, err := cleanup(ctx, e.store, f.m, migrate.CleanupOptions{Prefix: "uploads/", MinAge: time.Hour})
	require.NoError(t, err)
	require.Equal(t, []string{f.legacy[0], f.legacy[1], f.stray}, deleted)
	require.Equal(t, 2, rep.Kept, "objects younger than MinAge are kept")
	require.Equal(t, []string{f.legacy[2], f.legacy[3]}, keys(t, b, "uploads/"))

	// Once the grace period is over they go too.
	_, deleted, err = cleanup(ctx, e.store, f.m, migrate.CleanupOptions{Prefix: "uploads/"})
	require.NoError(t, err)
	require.Equal(t, []string{f.legacy[2], f.legacy[3]}, deleted)
	require.Empty(t, keys(t, b, "uploads/"))
}

// noModTime hides ModTime from List, like a backend that cannot report it.
type noModTime struct{ cas.Backend }

func (n noModTime) List(ctx context.Context, prefix string) iter.Seq2[cas.Info, error] {
	return func(yield func(cas.Info, error) bool) {
		for info, err := range n.Backend.List(ctx, prefix) {
			info.ModTime = time.Time{}
			if !yield(info, err) {
				return
			}
		}
	}
}

func TestCleanupUnknownAgeIsKeptUnderMinAge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := memstore.New()
	put(t, b, "uploads/x", []byte("x"))
	m := newMemMigrator(map[string]string{})
	rep, err := migrate.Cleanup(ctx, cas.New(b), m, migrate.CleanupOptions{Source: noModTime{b}, MinAge: time.Minute})
	require.NoError(t, err)
	require.Equal(t, migrate.CleanupReport{Scanned: 1, Kept: 1}, rep)
	require.Equal(t, []string{"uploads/x"}, keys(t, b, ""))
}

func TestCleanupDeleteFailure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, e := memEnv()
	f := newCleanupFixture(t, e, 3)
	src := faulty.New(b, faulty.WithFailKeys(f.legacy[1]))

	rep, deleted, err := cleanup(ctx, e.store, f.m, migrate.CleanupOptions{Source: src, Prefix: "uploads/"})
	require.ErrorIs(t, err, faulty.ErrInjected)
	require.Contains(t, err.Error(), f.legacy[1])
	require.Equal(t, []string{f.legacy[0], f.legacy[2], f.stray}, deleted, "the other deletions go on")
	require.Equal(t, 3, rep.Deleted)
	require.Equal(t, 1, rep.Kept)
	require.Equal(t, []string{f.legacy[1]}, keys(t, b, "uploads/"))
}

func TestCleanupListFailure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, e := memEnv()
	f := newCleanupFixture(t, e, 2)
	src := faulty.New(b, faulty.WithFailNth(faulty.MethodList, 1))
	before := keys(t, b, "")
	rep, err := migrate.Cleanup(ctx, e.store, f.m, migrate.CleanupOptions{Source: src})
	require.ErrorIs(t, err, faulty.ErrInjected)
	require.Zero(t, rep.Deleted)
	require.Equal(t, before, keys(t, b, ""))
}

// erringMigrator fails Pending or Referenced.
type erringMigrator struct {
	*memMigrator
	pendingErr, referencedErr error
}

func (e erringMigrator) Pending(ctx context.Context) iter.Seq2[migrate.Record, error] {
	if e.pendingErr == nil {
		return e.memMigrator.Pending(ctx)
	}
	return func(yield func(migrate.Record, error) bool) { yield(migrate.Record{}, e.pendingErr) }
}

func (e erringMigrator) Referenced(ctx context.Context) iter.Seq2[string, error] {
	if e.referencedErr == nil {
		return e.memMigrator.Referenced(ctx)
	}
	return func(yield func(string, error) bool) {
		if yield("uploads/partial", nil) {
			yield("", e.referencedErr)
		}
	}
}

func TestCleanupMigratorErrorsDeleteNothing(t *testing.T) {
	t.Parallel()
	boom := errors.New("query failed")
	for name, em := range map[string]func(*memMigrator) erringMigrator{
		"pending":    func(m *memMigrator) erringMigrator { return erringMigrator{memMigrator: m, pendingErr: boom} },
		"referenced": func(m *memMigrator) erringMigrator { return erringMigrator{memMigrator: m, referencedErr: boom} },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b, e := memEnv()
			f := newCleanupFixture(t, e, 2)
			before := keys(t, b, "")
			rep, err := migrate.Cleanup(context.Background(), e.store, em(f.m), migrate.CleanupOptions{})
			require.ErrorIs(t, err, boom)
			require.Zero(t, rep.Deleted)
			require.Equal(t, before, keys(t, b, ""))
		})
	}
}

func TestCleanupCancelled(t *testing.T) {
	t.Parallel()
	b, e := memEnv()
	f := newCleanupFixture(t, e, 2)
	before := keys(t, b, "")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep, err := migrate.Cleanup(ctx, e.store, f.m, migrate.CleanupOptions{})
	require.ErrorIs(t, err, context.Canceled)
	require.Zero(t, rep.Deleted)
	require.Equal(t, before, keys(t, b, ""))
}

func TestCleanupRejectsNil(t *testing.T) {
	t.Parallel()
	_, err := migrate.Cleanup(context.Background(), nil, newMemMigrator(nil), migrate.CleanupOptions{})
	require.Error(t, err)
	_, err = migrate.Cleanup(context.Background(), cas.New(memstore.New()), nil, migrate.CleanupOptions{})
	require.Error(t, err)
}
