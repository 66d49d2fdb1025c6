package migrate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/casa-go/casa/cas"
)

// CleanupOptions tune Cleanup. The zero value is ready to use, but a
// Prefix that confines Cleanup to the legacy objects is strongly advised
// when the Backend holds anything else.
type CleanupOptions struct {
	// Source is the Backend the legacy keys live in. The default is the
	// store's own Backend.
	Source cas.Backend
	// Prefix limits Cleanup to keys that start with it.
	Prefix string
	// MinAge is a grace period: objects modified less than MinAge ago are
	// kept, so that uploads in flight (stored, not yet recorded) survive.
	// Zero means no grace period.
	MinAge time.Duration
	// DryRun lists what would be deleted and deletes nothing.
	DryRun bool
	// Logger receives structured logs: each deletion at Info, the summary
	// at Info. The default discards.
	Logger *slog.Logger
	// MeterProvider receives the MetricCleanupDeleted and
	// MetricCleanupKept counters (not in a DryRun). The default records
	// nothing.
	MeterProvider metric.MeterProvider
	// OnDelete, when set, is called with each deleted key (in a DryRun:
	// each key that would be deleted), in the listing's order, from the
	// goroutine that called Cleanup. The report only counts them, so that
	// Cleanup's memory does not grow with the number of objects.
	OnDelete func(key string)
	// TempDir is where the referenced keys are sorted on disk when the
	// Migrator is not a SortedReferencer (and the journal's revertible
	// keys, always). The default is os.TempDir().
	TempDir string
	// SortMemory bounds the bytes of keys held in memory by that sort;
	// the default is DefaultSortMemory.
	SortMemory int
}

// CleanupReport is the outcome of Cleanup. Scanned == Kept + Deleted, and
// in a DryRun Scanned == Kept + WouldDelete.
type CleanupReport struct {
	// Scanned counts the objects listed under the prefix.
	Scanned int
	// Deleted counts the objects deleted; zero in a DryRun.
	Deleted int
	// Kept counts the objects left in place: CAS objects, derived data,
	// referenced keys, objects the journal can revert to, objects
	// younger than MinAge, and objects whose deletion failed.
	Kept int
	// Revertible counts the kept objects that a standing journal entry
	// can revert to: while the migration is not final (see Finalize)
	// Cleanup never deletes them.
	Revertible int
	// Notes says, in words, why objects were kept that an operator may
	// have expected deleted (for example: the migration is not final).
	Notes []string
	// WouldDelete counts, in a DryRun, the objects a real run would
	// delete (CleanupOptions.OnDelete receives their keys); zero
	// otherwise.
	WouldDelete int
}

// Cleanup deletes the legacy objects that no record points at any more.
//
// While any record is pending it returns an error wrapping ErrIncomplete
// and deletes nothing. Otherwise it lists opts.Source under opts.Prefix and
// deletes exactly the objects that are not CAS keys, not derived data
// (cas.IsDerivedKey), not yielded by m.Referenced, and older than
// opts.MinAge (when MinAge is set, an object whose Backend reports no
// ModTime is kept). It never deletes a CAS object, orphans included.
//
// When m is a Journaler and the migration is not final (see Finalize),
// the legacy objects of standing journal entries are kept too, so that
// Revert can still restore them; the report counts them in Revertible
// and says why in Notes.
//
// Its memory does not grow with the number of records or objects: the
// listing (which must be in byte order, as memstore, fsstore and s3store
// list; ErrUnordered otherwise) is merged with the referenced keys read in
// byte order (SortedReferencer, or Referenced sorted on disk under
// opts.TempDir) and with the journal's revertible keys (sorted on disk),
// and deleted keys go to opts.OnDelete, not into the report.
//
// A failed deletion is counted in Kept, the rest go on, and Cleanup
// returns the failures joined. Cancelling ctx stops Cleanup with ctx's
// error and the report of what it did so far.
func Cleanup(ctx context.Context, store *cas.Store, m Migrator, opts CleanupOptions) (CleanupReport, error) {
	var rep CleanupReport
	if store == nil || m == nil {
		return rep, errors.New("migrate: Cleanup needs a store and a Migrator")
	}
	src := opts.Source
	if src == nil {
		src = store.Backend()
	}
	src = cas.Checked(src) // any held key can be read and deleted; contexts checked
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	// 1. Refuse while anything is pending.
	for rec, err := range m.Pending(ctx) {
		if err != nil {
			return rep, fmt.Errorf("migrate: cleanup: pending: %w", err)
		}
		if needsMigration(rec) {
			return rep, fmt.Errorf("%w: record %q still points at legacy key %q", ErrIncomplete, rec.ID, rec.Key)
		}
	}
	if err := ctx.Err(); err != nil {
		return rep, err
	}

	// 2. Every legacy key still referenced is kept, and until the
	// migration is final every legacy key the journal can revert to. Both
	// are read as streams in byte order and merged with the listing, so
	// memory does not grow with the table. The references are read after
	// the pending check, so that a record repointed at a legacy key
	// between the two is still protected. CAS keys need no entry: they
	// are never deleted.
	legacy := func(k string) bool { return k != "" && !cas.IsKey(k) && strings.HasPrefix(k, opts.Prefix) }
	refSeq, refStop, err := referencedSorted(ctx, m, opts.Prefix, legacy, withinPrefix(opts.Prefix), opts.TempDir, opts.SortMemory)
	if err != nil {
		return rep, fmt.Errorf("migrate: cleanup: referenced: %w", err)
	}
	defer refStop()
	refs := newCursor("Migrator.Referenced", refSeq)
	defer refs.close()
	revSeq, revStop, err := revertible(ctx, m, legacy, opts.TempDir, opts.SortMemory)
	if err != nil {
		return rep, fmt.Errorf("migrate: cleanup: journal: %w", err)
	}
	defer revStop()
	canRevert := newCursor("the journal", revSeq)
	defer canRevert.close()
	onDelete := opts.OnDelete
	if onDelete == nil {
		onDelete = func(string) {}
	}

	// 3. Sweep.
	now := time.Now()
	var (
		errs []error
		prev string
	)
	// Keys and ages are all the sweep needs (it never deletes a blob),
	// so it lists without the per-blob cost of List (s3store: a HEAD).
	for info, err := range cas.ListKeys(ctx, src, opts.Prefix) {
		if err != nil {
			errs = append(errs, fmt.Errorf("migrate: cleanup: list: %w", err))
			break
		}
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		if rep.Scanned > 0 && info.Key < prev {
			errs = append(errs, fmt.Errorf("%w: the Backend listed %q after %q", ErrUnordered, info.Key, prev))
			break
		}
		prev = info.Key
		rep.Scanned++
		if !deletable(info, now, opts.MinAge) {
			rep.Kept++
			continue
		}
		referenced, err := refs.contains(info.Key)
		if err != nil {
			errs = append(errs, fmt.Errorf("migrate: cleanup: referenced: %w", err))
			rep.Kept++
			break
		}
		if referenced {
			rep.Kept++
			continue
		}
		revert, err := canRevert.contains(info.Key)
		if err != nil {
			errs = append(errs, fmt.Errorf("migrate: cleanup: journal: %w", err))
			rep.Kept++
			break
		}
		if revert {
			rep.Kept++
			rep.Revertible++
			continue
		}
		if opts.DryRun {
			rep.WouldDelete++
			onDelete(info.Key)
			log.InfoContext(ctx, "migrate: cleanup would delete", "key", info.Key, "stored_size", info.StoredSize)
			continue
		}
		if err := src.Delete(ctx, info.Key); err != nil {
			rep.Kept++
			errs = append(errs, fmt.Errorf("migrate: cleanup: delete %q: %w", info.Key, err))
			log.WarnContext(ctx, "migrate: cleanup delete failed", "key", info.Key, "err", err)
			continue
		}
		rep.Deleted++
		onDelete(info.Key)
		log.InfoContext(ctx, "migrate: cleanup deleted", "key", info.Key, "stored_size", info.StoredSize)
	}
	if !opts.DryRun {
		met := newMetrics(opts.MeterProvider)
		met.cleanupDeleted.Add(ctx, int64(rep.Deleted))
		met.cleanupKept.Add(ctx, int64(rep.Kept))
	}
	if rep.Revertible > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf(
			"kept %d legacy objects that the journal can revert to: the migration is not final (migrate.Finalize)", rep.Revertible))
	}
	log.InfoContext(ctx, "migrate: cleanup finished", "scanned", rep.Scanned, "deleted", rep.Deleted,
		"kept", rep.Kept, "revertible", rep.Revertible, "dry_run", opts.DryRun, "errors", len(errs))
	return rep, errors.Join(errs...)
}

// deletable reports whether Cleanup may delete the listed object, were it
// not referenced.
func deletable(info cas.KeyInfo, now time.Time, minAge time.Duration) bool {
	if info.Key == "" || cas.IsKey(info.Key) || cas.IsDerivedKey(info.Key) {
		return false
	}
	// An object of unknown age cannot be shown to be past the grace period.
	if minAge > 0 && (info.ModTime.IsZero() || now.Sub(info.ModTime) < minAge) {
		return false
	}
	return true
}
