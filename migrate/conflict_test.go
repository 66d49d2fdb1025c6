package migrate_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/migrate"
)

// TestRunConflictsAreNotFailures: records whose commit finds them changed
// by another writer (another replica migrated r0001 and r0004 first, the
// application deleted r0006) are counted in Conflicts, not in Failed or
// Failures, nor logged at Warn; and since none of them is still pending,
// Report.Err and the Status are nil. A real failure (r0003's legacy
// object is gone) still fails the run. Before the change the three
// conflicts counted as Failed and made Err fail.
func TestRunConflictsAreNotFailures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, e := memEnv()
	m, want := seed(t, e, 8)
	// The other writer acts just before this run commits the record.
	m.beforeCommit = func(rec migrate.Record) error {
		switch rec.ID {
		case "r0001", "r0004": // another replica migrated it first
			m.set(rec.ID, cas.SumBytes(want[rec.ID]).Key())
		case "r0006": // the application cleared it
			m.set(rec.ID, "")
		}
		return nil
	}
	mt := newMeter(t)
	var logs bytes.Buffer
	st := new(migrate.Status)
	var last migrate.Progress
	rep, err := migrate.Run(ctx, e.store, m, e.with(migrate.Options{
		Concurrency:   2,
		MeterProvider: mt.mp,
		Status:        st,
		Logger:        slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Progress:      func(p migrate.Progress) { last = p },
	}))
	require.NoError(t, err)
	require.Equal(t, 8, rep.Seen)
	require.Equal(t, 5, rep.Migrated)
	require.Equal(t, 3, rep.Conflicts)
	require.Zero(t, rep.ConflictsPending)
	require.Zero(t, rep.Failed)
	require.Empty(t, rep.Failures)
	require.NoError(t, rep.Err(), "conflicts alone are no failure")
	require.NotContains(t, logs.String(), "level=WARN")
	require.Contains(t, logs.String(), "conflicts=3")

	require.Equal(t, migrate.Progress{Done: 8, Migrated: 5, Conflicts: 3, Total: 8, Bytes: last.Bytes, Elapsed: last.Elapsed}, last)
	require.Equal(t, 3, st.Progress().Conflicts)
	finished, stErr := st.Finished()
	require.True(t, finished)
	require.NoError(t, stErr)

	got := mt.values(t, attribute.Bool("dry_run", false))
	require.Equal(t, int64(3), got[migrate.MetricConflicts])
	require.Zero(t, got[migrate.MetricFailed])
	require.Equal(t, int64(5), got[migrate.MetricMigrated])

	// A failure beside conflicts still fails the run, and is the only
	// one listed.
	m2, want2 := seed(t, e, 4)
	require.NoError(t, e.source.Delete(ctx, legacyKey(3)))
	m2.beforeCommit = func(rec migrate.Record) error {
		if rec.ID == "r0001" {
			m2.set(rec.ID, cas.SumBytes(want2[rec.ID]).Key())
		}
		return nil
	}
	rep, err = migrate.Run(ctx, e.store, m2, e.with(migrate.Options{}))
	require.NoError(t, err)
	require.Equal(t, 1, rep.Conflicts)
	require.Equal(t, 1, rep.Failed)
	require.Len(t, rep.Failures, 1)
	require.Equal(t, "r0003", rep.Failures[0].Record.ID)
	require.ErrorIs(t, rep.Err(), migrate.ErrIncomplete)
	require.False(t, errors.Is(rep.Err(), migrate.ErrConflict), "the error is the failure's: %v", rep.Err())
}

// TestRunConflictStillPendingIsIncomplete: a conflicting record that is
// still on a legacy key after the run (the application repointed it at
// another legacy object) is not a failure, but the run did not finish
// it: Err wraps ErrIncomplete and ErrConflict, the Status reports it, and
// a rerun migrates it.
func TestRunConflictStillPendingIsIncomplete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, e := memEnv()
	m, want := seed(t, e, 3)
	put(t, b, "uploads/replaced", []byte("a newer upload"))
	want["r0002"] = []byte("a newer upload")
	var once sync.Once
	m.beforeCommit = func(rec migrate.Record) error {
		if rec.ID == "r0002" {
			once.Do(func() { m.set(rec.ID, "uploads/replaced") })
		}
		return nil
	}
	st := new(migrate.Status)
	rep, err := migrate.Run(ctx, e.store, m, e.with(migrate.Options{Status: st}))
	require.NoError(t, err)
	require.Equal(t, 2, rep.Migrated)
	require.Equal(t, 1, rep.Conflicts)
	require.Equal(t, 1, rep.ConflictsPending)
	require.Zero(t, rep.Failed)
	require.Empty(t, rep.Failures)
	require.ErrorIs(t, rep.Err(), migrate.ErrIncomplete)
	require.ErrorIs(t, rep.Err(), migrate.ErrConflict)
	_, stErr := st.Finished()
	require.ErrorIs(t, stErr, migrate.ErrConflict)
	require.Equal(t, "uploads/replaced", m.key("r0002"), "a conflict never overwrites the newer key")

	rep, err = migrate.Run(ctx, e.store, m, e.with(migrate.Options{}))
	require.NoError(t, err)
	require.NoError(t, rep.Err())
	require.Equal(t, 1, rep.Migrated)
	requireIntact(t, m, b, b, want)
}

// TestRunDryRunHasNoConflicts: a dry run commits nothing, so it never
// re-checks or counts conflicts.
func TestRunDryRunHasNoConflicts(t *testing.T) {
	t.Parallel()
	_, e := memEnv()
	m, _ := seed(t, e, 3)
	m.beforeCommit = func(migrate.Record) error { return migrate.ErrConflict }
	rep, err := migrate.Run(context.Background(), e.store, m, e.with(migrate.Options{DryRun: true}))
	require.NoError(t, err)
	require.Equal(t, 3, rep.Migrated)
	require.Zero(t, rep.Conflicts)
	require.NoError(t, rep.Err())
}
