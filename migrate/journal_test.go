package migrate_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/migrate"
)

// journalMigrator is a memMigrator that journals its commits, the way a
// database Migrator writes the journal row in the commit's transaction:
// jmu makes each commit and its entry one step.
type journalMigrator struct {
	*memMigrator
	jmu     sync.Mutex
	entries []migrate.JournalEntry
	final   bool
}

var _ migrate.Journaler = (*journalMigrator)(nil)

func newJournalMigrator(m *memMigrator) *journalMigrator { return &journalMigrator{memMigrator: m} }

func (j *journalMigrator) Commit(ctx context.Context, rec migrate.Record, newKey string) error {
	j.jmu.Lock()
	defer j.jmu.Unlock()
	if err := j.memMigrator.Commit(ctx, rec, newKey); err != nil {
		return err
	}
	j.entries = append(j.entries, migrate.JournalEntry{ID: rec.ID, OldKey: rec.Key, NewKey: newKey, Time: time.Now()})
	return nil
}

func (j *journalMigrator) Journal(ctx context.Context) iter.Seq2[migrate.JournalEntry, error] {
	return func(yield func(migrate.JournalEntry, error) bool) {
		j.jmu.Lock()
		entries := slices.Clone(j.entries)
		j.jmu.Unlock()
		for _, e := range entries {
			if !yield(e, nil) {
				return
			}
		}
	}
}

func (j *journalMigrator) Revert(ctx context.Context, e migrate.JournalEntry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	j.jmu.Lock()
	defer j.jmu.Unlock()
	j.mu.Lock()
	defer j.mu.Unlock()
	cur, ok := j.rows[e.ID]
	switch {
	case !ok:
		return fmt.Errorf("row %q: %w", e.ID, migrate.ErrNoRecord)
	case cur != e.NewKey && cur != e.OldKey:
		return fmt.Errorf("row %q holds %q: %w", e.ID, cur, migrate.ErrConflict)
	}
	j.rows[e.ID] = e.OldKey
	for i := range j.entries {
		if x := j.entries[i]; x.ID == e.ID && x.OldKey == e.OldKey && x.NewKey == e.NewKey && x.Time.Equal(e.Time) {
			j.entries[i].Reverted = time.Now()
		}
	}
	return nil
}

func (j *journalMigrator) Finalize(context.Context) error {
	j.jmu.Lock()
	defer j.jmu.Unlock()
	j.final = true
	return nil
}

func (j *journalMigrator) Final(context.Context) (bool, error) {
	j.jmu.Lock()
	defer j.jmu.Unlock()
	return j.final, nil
}

func (j *journalMigrator) standing() int {
	j.jmu.Lock()
	defer j.jmu.Unlock()
	n := 0
	for _, e := range j.entries {
		if e.Reverted.IsZero() {
			n++
		}
	}
	return n
}

// faultyJournaler wraps a real Journaler and fails a random share of
// Reverts, half of them before the revert happens and half after it (the
// answer is lost), as a flaky database connection would.
type faultyJournaler struct {
	*journalMigrator
	mu     sync.Mutex
	rng    *rand.Rand
	share  float64
	faults int
}

var errInjected = errors.New("injected fault")

func (f *faultyJournaler) roll() (fail, after bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rng.Float64() >= f.share {
		return false, false
	}
	f.faults++
	return true, f.rng.IntN(2) == 0
}

func (f *faultyJournaler) Revert(ctx context.Context, e migrate.JournalEntry) error {
	fail, after := f.roll()
	if !fail {
		return f.journalMigrator.Revert(ctx, e)
	}
	if after {
		if err := f.journalMigrator.Revert(ctx, e); err != nil {
			return err
		}
	}
	return errInjected
}

// migrated seeds n records in a memstore, migrates them with a journal,
// and returns the migrator, the original rows and the migrated rows.
func migrated(t *testing.T, n int) (env, *journalMigrator, map[string]string, map[string]string) {
	t.Helper()
	_, e := memEnv()
	mm, _ := seed(t, e, n)
	j := newJournalMigrator(mm)
	before := mm.snapshot()
	rep, err := migrate.Run(context.Background(), e.store, j, e.with(migrate.Options{}))
	require.NoError(t, err)
	require.NoError(t, rep.Err())
	require.Equal(t, n, j.standing(), "every commit is journaled")
	return e, j, before, mm.snapshot()
}

func TestRevertRestoresEveryKeyAndRemigratesToSameKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e, j, before, after := migrated(t, 40)

	rep, err := migrate.Revert(ctx, e.store, j, migrate.RevertOptions{Source: e.source})
	require.NoError(t, err)
	require.Equal(t, 40, rep.Reverted)
	require.Zero(t, rep.Failed)
	require.Empty(t, rep.Skipped)
	require.Equal(t, before, j.snapshot(), "every row is back on its key from before the migration")
	require.Zero(t, j.standing())

	again, err := migrate.Revert(ctx, e.store, j, migrate.RevertOptions{Source: e.source})
	require.NoError(t, err)
	require.Zero(t, again.Reverted, "a second Revert finds nothing standing")

	run, err := migrate.Run(ctx, e.store, j, e.with(migrate.Options{}))
	require.NoError(t, err)
	require.NoError(t, run.Err())
	require.Equal(t, 40, run.Deduplicated, "the CAS objects stayed in the store")
	require.Equal(t, after, j.snapshot(), "migrating again gives the same CAS keys")
}

func TestRevertWithFaultsIsRerunnable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e, j, before, _ := migrated(t, 60)
	f := &faultyJournaler{journalMigrator: j, rng: rand.New(rand.NewPCG(1, 2)), share: 0.3}
	src := &flakyStat{Backend: e.source, rng: rand.New(rand.NewPCG(3, 4)), share: 0.2}

	// A first run interrupted part-way by cancellation.
	cctx, cancel := context.WithCancel(ctx)
	var n int
	interrupting := &cancelAfter{faultyJournaler: f, left: 10, cancel: cancel}
	rep, err := migrate.Revert(cctx, e.store, interrupting, migrate.RevertOptions{Source: src})
	require.ErrorIs(t, err, context.Canceled)
	require.Less(t, rep.Reverted, 60)

	for n = 1; n < 50; n++ {
		rep, err := migrate.Revert(ctx, e.store, f, migrate.RevertOptions{Source: src})
		require.NoError(t, err)
		require.Empty(t, rep.Skipped, "a failed Stat is a failure to retry, not a missing object")
		for _, fl := range rep.Failures {
			require.ErrorIs(t, fl, errInjected, "only injected faults fail")
		}
		if rep.Failed == 0 {
			break
		}
	}
	require.Greater(t, f.faults, 0, "journal faults were injected")
	require.Greater(t, src.faults, 0, "backend faults were injected")
	require.Less(t, n, 50, "reruns converge")
	require.Equal(t, before, j.snapshot(), "after reruns every row is back on its old key")
	require.Zero(t, j.standing())
}

// flakyStat wraps a real Backend and fails a random share of Stats.
type flakyStat struct {
	cas.Backend
	mu     sync.Mutex
	rng    *rand.Rand
	share  float64
	faults int
}

func (f *flakyStat) Stat(ctx context.Context, key string) (cas.Info, error) {
	f.mu.Lock()
	fail := f.rng.Float64() < f.share
	if fail {
		f.faults++
	}
	f.mu.Unlock()
	if fail {
		return cas.Info{}, fmt.Errorf("stat %q: %w", key, errInjected)
	}
	return f.Backend.Stat(ctx, key)
}

// cancelAfter cancels its context after left Reverts.
type cancelAfter struct {
	*faultyJournaler
	left   int
	cancel context.CancelFunc
}

func (c *cancelAfter) Revert(ctx context.Context, e migrate.JournalEntry) error {
	c.left--
	if c.left < 0 {
		c.cancel()
		return ctx.Err()
	}
	return c.faultyJournaler.Revert(ctx, e)
}

func TestRevertConflictLeavesRowAlone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e, j, before, _ := migrated(t, 3)
	other := cas.SumBytes([]byte("uploaded since")).Key()
	j.set("r0001", other)

	rep, err := migrate.Revert(ctx, e.store, j, migrate.RevertOptions{Source: e.source})
	require.NoError(t, err)
	require.Equal(t, 2, rep.Reverted)
	require.Equal(t, 1, rep.Failed)
	require.ErrorIs(t, rep.Failures[0], migrate.ErrConflict)
	require.Equal(t, "r0001", rep.Failures[0].Record.ID)
	require.Equal(t, other, j.key("r0001"), "a row changed since the commit is not touched")
	require.Equal(t, before["r0000"], j.key("r0000"))
}

func TestRevertSkipsMissingRecordAndMissingLegacyObject(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e, j, before, after := migrated(t, 4)
	j.mu.Lock()
	delete(j.rows, "r0000")
	j.mu.Unlock()
	require.NoError(t, e.source.Delete(ctx, before["r0001"]))

	rep, err := migrate.Revert(ctx, e.store, j, migrate.RevertOptions{Source: e.source})
	require.NoError(t, err)
	require.Equal(t, 2, rep.Reverted)
	require.Zero(t, rep.Failed)
	require.Len(t, rep.Skipped, 2)
	byID := map[string]error{}
	for _, s := range rep.Skipped {
		byID[s.Entry.ID] = s.Reason
	}
	require.ErrorIs(t, byID["r0000"], migrate.ErrNoRecord)
	require.ErrorIs(t, byID["r0001"], cas.ErrNotFound)
	require.Equal(t, after["r0001"], j.key("r0001"), "without its legacy object a row stays on its CAS key")
	require.Equal(t, before["r0002"], j.key("r0002"))
}

func TestRevertOnlyGivenIDs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e, j, before, after := migrated(t, 4)
	rep, err := migrate.Revert(ctx, e.store, j, migrate.RevertOptions{Source: e.source, IDs: []string{"r0002", "nope"}})
	require.NoError(t, err)
	require.Equal(t, 1, rep.Reverted)
	require.Len(t, rep.Skipped, 1)
	require.Equal(t, "nope", rep.Skipped[0].Entry.ID)
	require.ErrorIs(t, rep.Skipped[0].Reason, migrate.ErrNoJournal)
	require.Equal(t, before["r0002"], j.key("r0002"))
	require.Equal(t, after["r0001"], j.key("r0001"))
}

func TestRevertTwiceCommittedRecordGoesBackToFirstKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e, j, before, _ := migrated(t, 1)
	// The application repoints the row at another legacy object, which
	// is migrated too: two standing entries for one record.
	put(t, e.source, "uploads/second", []byte("second version"))
	j.set("r0000", "uploads/second")
	_, err := migrate.Run(ctx, e.store, j, e.with(migrate.Options{}))
	require.NoError(t, err)
	rep, err := migrate.Revert(ctx, e.store, j, migrate.RevertOptions{Source: e.source})
	require.NoError(t, err)
	require.Equal(t, 1, rep.Reverted, "the newest entry is reverted")
	require.Equal(t, 1, rep.Failed, "the older entry conflicts: the row now holds the second legacy key")
	require.Equal(t, "uploads/second", j.key("r0000"))
	require.NotEqual(t, before["r0000"], j.key("r0000"))
}

func TestRevertNeedsJournal(t *testing.T) {
	t.Parallel()
	_, e := memEnv()
	_, err := migrate.Revert(context.Background(), e.store, newMemMigrator(map[string]string{}), migrate.RevertOptions{})
	require.ErrorIs(t, err, migrate.ErrNoJournal)
	require.ErrorIs(t, migrate.Finalize(context.Background(), newMemMigrator(map[string]string{})), migrate.ErrNoJournal)
}

func TestFinalizeGatesCleanupAndRevert(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e, j, before, _ := migrated(t, 5)

	// Not final: Cleanup keeps every legacy object the journal can revert to.
	rep, err := migrate.Cleanup(ctx, e.store, j, migrate.CleanupOptions{Source: e.source, Prefix: "uploads/"})
	require.NoError(t, err)
	require.Zero(t, rep.Deleted)
	require.Equal(t, 5, rep.Revertible)
	require.Equal(t, 5, rep.Kept)
	require.Len(t, rep.Notes, 1)
	require.Contains(t, rep.Notes[0], "not final")
	for _, k := range before {
		require.Equal(t, k, keys(t, e.source, k)[0], "legacy object %s kept", k)
	}

	// Finalize refuses while a record is pending.
	put(t, e.source, "uploads/late", []byte("late"))
	j.set("late", "uploads/late")
	require.ErrorIs(t, migrate.Finalize(ctx, j), migrate.ErrIncomplete)
	final, err := j.Final(ctx)
	require.NoError(t, err)
	require.False(t, final)
	_, err = migrate.Run(ctx, e.store, j, e.with(migrate.Options{}))
	require.NoError(t, err)

	require.NoError(t, migrate.Finalize(ctx, j))
	_, err = migrate.Revert(ctx, e.store, j, migrate.RevertOptions{Source: e.source})
	require.ErrorIs(t, err, migrate.ErrFinal)

	rep, err = migrate.Cleanup(ctx, e.store, j, migrate.CleanupOptions{Source: e.source, Prefix: "uploads/"})
	require.NoError(t, err)
	require.Equal(t, 6, rep.Deleted, "once final the legacy objects go")
	require.Zero(t, rep.Revertible)
	require.Empty(t, rep.Notes)
}
