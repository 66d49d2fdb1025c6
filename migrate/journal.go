package migrate

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"slices"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/casa-go/casa/cas"
)

// Sentinel errors of the journal; test for them with errors.Is.
var (
	// ErrNoJournal: the Migrator does not implement Journaler, so there
	// is nothing to revert or finalize.
	ErrNoJournal = errors.New("migrate: migrator keeps no journal")
	// ErrNoRecord: the journaled record no longer exists. Revert skips
	// it and reports it.
	ErrNoRecord = errors.New("migrate: record no longer exists")
	// ErrFinal: the migration was marked final, so it can no longer be
	// reverted.
	ErrFinal = errors.New("migrate: migration is final")
)

// JournalEntry is one journaled commit: record ID went from OldKey to
// NewKey at Time.
type JournalEntry struct {
	ID     string
	OldKey string
	NewKey string
	Time   time.Time
	// Reverted is when Revert restored OldKey; zero while the commit
	// stands.
	Reverted time.Time
}

// Journaler is an optional interface of a Migrator that keeps a durable
// journal of its commits, which makes a migration revertible ([Revert])
// and lets the operator declare it final ([Finalize]).
//
// A Migrator that implements Journaler must record every successful
// Commit in its journal atomically with the commit itself (sqlmigrator
// writes the journal row in the commit's transaction): a commit that
// happened is journaled, and a journal entry describes a commit that
// happened.
type Journaler interface {
	// Journal yields every journaled commit, reverted ones included,
	// oldest first.
	Journal(ctx context.Context) iter.Seq2[JournalEntry, error]
	// Revert repoints the record e.ID from e.NewKey back to e.OldKey
	// and marks e reverted, atomically. When the record already holds
	// e.OldKey it only marks e (a rerun after an interruption). When
	// the record holds another key it changes nothing and returns an
	// error wrapping ErrConflict; when the record no longer exists, an
	// error wrapping ErrNoRecord.
	Revert(ctx context.Context, e JournalEntry) error
	// Finalize durably records that the migration is final.
	Finalize(ctx context.Context) error
	// Final reports whether Finalize was ever recorded.
	Final(ctx context.Context) (bool, error)
}

// Finalize records in m's journal that the migration is final: from then
// on Revert refuses (ErrFinal) and Cleanup may delete the legacy objects
// the journal could revert to. It refuses with an error wrapping
// ErrIncomplete while any record is pending, and with ErrNoJournal when m
// is not a Journaler. Finalizing twice is harmless.
func Finalize(ctx context.Context, m Migrator) error {
	j, ok := m.(Journaler)
	if !ok {
		return fmt.Errorf("migrate: finalize: %w", ErrNoJournal)
	}
	for rec, err := range m.Pending(ctx) {
		if err != nil {
			return fmt.Errorf("migrate: finalize: pending: %w", err)
		}
		if needsMigration(rec) {
			return fmt.Errorf("migrate: finalize: %w: record %q still points at legacy key %q", ErrIncomplete, rec.ID, rec.Key)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := j.Finalize(ctx); err != nil {
		return fmt.Errorf("migrate: finalize: %w", err)
	}
	return nil
}

// RevertOptions tune Revert. The zero value is ready to use.
type RevertOptions struct {
	// Source is the Backend the legacy keys live in. The default is the
	// store's own Backend.
	Source cas.Backend
	// IDs, when set, limits Revert to these records; IDs without a
	// standing journal entry are reported in Skipped.
	IDs []string
	// Logger receives structured logs: each reverted record at Debug,
	// each skip or failure at Warn, the summary at Info. The default
	// discards.
	Logger *slog.Logger
	// MeterProvider receives the MetricReverted counter. The default
	// records nothing.
	MeterProvider metric.MeterProvider
}

// Skip is a journal entry Revert left alone, and why.
type Skip struct {
	Entry  JournalEntry
	Reason error // wraps ErrNoRecord, cas.ErrNotFound (legacy object gone) or ErrNoJournal (ID not journaled)
}

// RevertReport is the outcome of Revert.
type RevertReport struct {
	// Reverted counts the records restored to their old key (a rerun
	// counts the entries it found already restored, too).
	Reverted int
	// Skipped lists the entries that could not be reverted and never
	// will: the record is gone, or its legacy object is.
	Skipped []Skip
	// Failed counts the entries whose revert failed (ErrConflict: the
	// record changed since the commit; or an I/O error). Failures says
	// why. A rerun retries them.
	Failed   int
	Failures []Failure
	// Elapsed is how long Revert took.
	Elapsed time.Duration
}

// Revert undoes a migration: for every standing journal entry of m (or of
// the records opts.IDs names), newest first, it repoints the record back
// to its old key, provided the legacy object still exists in
// opts.Source. The CAS objects stay in the store, so migrating again
// finds them and deduplicates.
//
// Each record is reverted on its own, with Commit's safety: only a record
// that still holds the journaled new key is changed (otherwise the entry
// fails with ErrConflict). An entry whose record no longer exists, or
// whose legacy object is gone, is skipped and listed in
// RevertReport.Skipped. Revert is idempotent: an interrupted Revert can be
// rerun and carries on.
//
// Revert must not race a migration: stop the replicas, or run them with
// migration off, while it runs; otherwise a running Run may migrate a
// record again right after it was reverted.
//
// It fails with ErrNoJournal when m is not a Journaler and with ErrFinal
// when the migration was finalized. It returns a non-nil error only when
// Revert itself could not go on (the journal could not be read, or ctx
// was cancelled); per-entry failures are in the report.
func Revert(ctx context.Context, store *cas.Store, m Migrator, opts RevertOptions) (RevertReport, error) {
	start := time.Now()
	var rep RevertReport
	if store == nil || m == nil {
		return rep, errors.New("migrate: Revert needs a store and a Migrator")
	}
	j, ok := m.(Journaler)
	if !ok {
		return rep, fmt.Errorf("migrate: revert: %w", ErrNoJournal)
	}
	src := opts.Source
	if src == nil {
		src = store.Backend()
	}
	src = cas.Checked(src)
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	met := newMetrics(opts.MeterProvider)

	final, err := j.Final(ctx)
	if err != nil {
		return rep, fmt.Errorf("migrate: revert: %w", err)
	}
	if final {
		return rep, fmt.Errorf("migrate: revert: %w", ErrFinal)
	}

	var want map[string]bool
	if opts.IDs != nil {
		want = make(map[string]bool, len(opts.IDs))
		for _, id := range opts.IDs {
			want[id] = false
		}
	}
	var entries []JournalEntry
	for e, err := range j.Journal(ctx) {
		if err != nil {
			return rep, fmt.Errorf("migrate: revert: journal: %w", err)
		}
		if !e.Reverted.IsZero() {
			continue
		}
		if want != nil {
			if _, ok := want[e.ID]; !ok {
				continue
			}
			want[e.ID] = true
		}
		entries = append(entries, e)
	}
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	for _, id := range opts.IDs {
		if found, seen := want[id]; seen && !found {
			want[id] = true // report a repeated ID once
			rep.Skipped = append(rep.Skipped, Skip{Entry: JournalEntry{ID: id}, Reason: fmt.Errorf("record %q: no standing journal entry: %w", id, ErrNoJournal)})
		}
	}

	// Newest first: a record committed twice (A to H1, later B to H2)
	// goes back through B to A.
	slices.Reverse(entries)
	log.InfoContext(ctx, "migrate: revert starting", "entries", len(entries))
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			rep.Elapsed = time.Since(start)
			return rep, err
		}
		err := revertOne(ctx, j, src, e)
		switch {
		case err == nil:
			rep.Reverted++
			met.reverted.Add(ctx, 1)
			log.DebugContext(ctx, "migrate: record reverted", "id", e.ID, "key", e.NewKey, "old_key", e.OldKey)
		case ctx.Err() != nil:
			rep.Elapsed = time.Since(start)
			return rep, ctx.Err()
		case errors.Is(err, ErrNoRecord) || errors.Is(err, cas.ErrNotFound):
			rep.Skipped = append(rep.Skipped, Skip{Entry: e, Reason: err})
			log.WarnContext(ctx, "migrate: revert skipped", "id", e.ID, "old_key", e.OldKey, "err", err)
		default:
			rep.Failed++
			rep.Failures = append(rep.Failures, Failure{Record: Record{ID: e.ID, Key: e.NewKey}, Err: err})
			log.WarnContext(ctx, "migrate: revert failed", "id", e.ID, "old_key", e.OldKey, "err", err)
		}
	}
	rep.Elapsed = time.Since(start)
	log.InfoContext(ctx, "migrate: revert finished", "reverted", rep.Reverted, "skipped", len(rep.Skipped),
		"failed", rep.Failed, "elapsed", rep.Elapsed)
	return rep, nil
}

// revertOne checks that e's legacy object exists and reverts e.
func revertOne(ctx context.Context, j Journaler, src cas.Backend, e JournalEntry) error {
	if _, err := src.Stat(ctx, e.OldKey); err != nil {
		return fmt.Errorf("migrate: revert %q: legacy object %q: %w", e.ID, e.OldKey, err)
	}
	if err := j.Revert(ctx, e); err != nil {
		return fmt.Errorf("migrate: revert %q: %w", e.ID, err)
	}
	return nil
}

// revertible returns, when m is a Journaler and the migration is not
// final, the old keys of its standing journal entries that keep accepts,
// sorted on disk in byte order; otherwise an empty stream. stop removes
// the temporary files.
func revertible(ctx context.Context, m Migrator, keep func(string) bool, dir string, memory int) (iter.Seq2[string, error], func(), error) {
	none := func(func(string, error) bool) {}
	j, ok := m.(Journaler)
	if !ok {
		return none, func() {}, nil
	}
	final, err := j.Final(ctx)
	if err != nil || final {
		return none, func() {}, err
	}
	old := func(yield func(string, error) bool) {
		for e, err := range j.Journal(ctx) {
			if err != nil {
				yield("", err)
				return
			}
			if e.Reverted.IsZero() && !yield(e.OldKey, nil) {
				return
			}
		}
	}
	return sortKeys(ctx, old, keep, dir, memory)
}
