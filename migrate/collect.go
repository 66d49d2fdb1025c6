package migrate

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/casa-go/casa/cas"
)

// DefaultMinAge is Collect's grace period when CollectOptions.MinAge is
// zero: a blob written, or touched through a Guard, less than a day ago is
// never collected.
const DefaultMinAge = 24 * time.Hour

// ErrNoGuard: Collect was asked to delete without a Guard
// (CollectOptions.Guard, or a Migrator that implements it).
var ErrNoGuard = errors.New("migrate: collect needs a Guard")

// Guard closes the race between Collect and the writers that rely on a
// blob: a Put that deduplicates against a blob nobody references yet, a
// migration that does, or an upload endpoint that tells a client "already
// stored". Such a writer calls Touch before it relies on the blob (the
// Store does, given PutHook(g) through cas.WithPutHook), and Collect
// deletes a blob only through CollectKey. The two exclude each other per
// key, and each sees the other's effect:
//
//   - a Touch that finishes before CollectKey takes the key is seen by it,
//     and the blob is kept (for MinAge after the touch, the time the
//     writer has to commit its record);
//   - a Touch that starts while CollectKey holds the key waits until the
//     blob is deleted, so the writer finds it missing and writes it again.
//
// The exclusion must hold across processes (replicas over one database
// and one bucket): sqlmigrator implements Guard with a table whose row
// locks do it.
type Guard interface {
	// Touch records, durably and visibly to every process, that key is
	// about to be relied on at the current time. It waits while a
	// CollectKey holds key.
	Touch(ctx context.Context, key string) error
	// CollectKey holds key exclusively against Touch and, when no record
	// references key and key was not touched at or after since, calls
	// del, releasing key only after del returned. It reports whether del
	// ran and succeeded; an error from del is returned.
	CollectKey(ctx context.Context, key string, since time.Time, del func(context.Context) error) (bool, error)
	// Prune forgets the touches made before before; they no longer
	// protect anything. Collect calls it after a sweep.
	Prune(ctx context.Context, before time.Time) error
}

// PutHook returns a function for cas.WithPutHook that touches every
// blob's key through g before the Store writes or deduplicates it. Every
// Store that writes blobs that Collect may see needs it (or its own
// Touch): without it, a Put that deduplicates against an old orphan can
// lose the blob to a concurrent collection.
func PutHook(g Guard) func(context.Context, cas.Hash) error {
	return func(ctx context.Context, h cas.Hash) error { return g.Touch(ctx, h.Key()) }
}

// CollectOptions tune Collect. The zero value is ready to use with a
// Migrator that implements Guard.
type CollectOptions struct {
	// MinAge is the grace period: a blob written less than MinAge ago
	// (by the Backend's ModTime; unknown counts as young), or touched
	// through the Guard less than MinAge ago, is kept. Zero means
	// DefaultMinAge; negative is an error.
	MinAge time.Duration
	// Guard serializes deletions against Touch. The default is the
	// Migrator, when it implements Guard; without one only a DryRun runs.
	Guard Guard
	// DryRun deletes nothing: the report counts what a real run would
	// delete, judged by the sorted merge alone (the Guard's per-key
	// check is skipped, so a blob touched meanwhile may be counted).
	DryRun bool
	// OnDelete, when set, is called with each deleted key, blob or
	// derived (in a DryRun: each that would be), from Collect's
	// goroutine.
	OnDelete func(key string)
	// Progress, when set, is called after each listed blob (cas/<hex>)
	// is decided, with its derived objects, from Collect's goroutine,
	// with the report so far (Elapsed set). It should return quickly.
	Progress func(CollectReport)
	// Logger receives structured logs: each deletion at Info, the
	// summary at Info. The default discards.
	Logger *slog.Logger
	// MeterProvider receives MetricGCDeleted, MetricGCKept and
	// MetricGCBytes (not in a DryRun). The default records nothing.
	MeterProvider metric.MeterProvider
	// TempDir and SortMemory are as in CleanupOptions: where and within
	// how much memory the referenced keys are sorted when the Migrator
	// is not a SortedReferencer.
	TempDir    string
	SortMemory int
}

// CollectReport is the outcome of Collect. Scanned == Deleted +
// WouldDelete + Kept.
type CollectReport struct {
	// Scanned counts the blobs listed (cas/<hex> keys).
	Scanned int
	// Deleted counts the blobs deleted; WouldDelete, in a DryRun, the
	// blobs a real run would delete.
	Deleted, WouldDelete int
	// Kept counts the blobs left in place; Referenced, Young and Touched
	// split it with Failed: referenced by a record in the sorted merge,
	// younger than MinAge, found touched or referenced by the Guard at
	// delete time (a writer relied on it meanwhile), and not deleted
	// because of an error.
	Kept, Referenced, Young, Touched, Failed int
	// Bytes counts the bytes of the deleted (DryRun: deletable) blobs.
	Bytes int64
	// DerivedScanned counts the derived objects listed (such as
	// thumbnails/<hex>_150.jpg); DerivedDeleted (DryRun: would delete)
	// those that went because their blob was collected or is gone.
	DerivedScanned, DerivedDeleted int
	// Elapsed is how long Collect took.
	Elapsed time.Duration
}

// Collect deletes the blobs (cas/<hex>) that no record references, with
// their derived objects, and the derived objects whose blob is gone.
//
// It merges three key-ordered streams without holding any of them: the
// Backend's List of cas/ (which must be in byte order; ErrUnordered
// otherwise), the CAS keys the Migrator references in byte order
// (SortedReferencer, or an on-disk sort of Referenced), and the List of
// each derived prefix. A blob is deleted only when it is unreferenced in
// the merge, older than MinAge, and, at the moment of deletion, still
// unreferenced and untouched for MinAge according to the Guard, which
// holds the key against Touch while it deletes (see Guard for why that
// closes the race with deduplicating writers). Derived objects of a
// collected blob go with it; a derived object whose blob is not listed
// goes once it is older than MinAge (it can be regenerated).
//
// Errors on single objects are counted (Failed) and joined into the
// returned error while the sweep goes on; a listing or reference stream
// error stops it. Cancelling ctx stops Collect with the report so far.
func Collect(ctx context.Context, store *cas.Store, m Migrator, opts CollectOptions) (CollectReport, error) {
	start := time.Now()
	var rep CollectReport
	if store == nil || m == nil {
		return rep, errors.New("migrate: Collect needs a store and a Migrator")
	}
	if opts.MinAge < 0 {
		return rep, fmt.Errorf("migrate: collect: negative MinAge %v", opts.MinAge)
	}
	if opts.MinAge == 0 {
		opts.MinAge = DefaultMinAge
	}
	if opts.Guard == nil {
		opts.Guard, _ = m.(Guard)
	}
	if opts.Guard == nil && !opts.DryRun {
		return rep, fmt.Errorf("%w: give CollectOptions.Guard or a Migrator that implements it (sqlmigrator does)", ErrNoGuard)
	}
	c := &collector{
		start: start,
		src:   cas.Checked(store.Backend()),
		opts:  opts,
		log:   opts.Logger,
		rep:   &rep,
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.onDelete = opts.OnDelete
	if c.onDelete == nil {
		c.onDelete = func(string) {}
	}
	c.cutoff = start.Add(-opts.MinAge)
	c.log.InfoContext(ctx, "migrate: collect starting", "min_age", opts.MinAge, "dry_run", opts.DryRun)

	err := c.sweep(ctx, m)
	if err == nil && !opts.DryRun {
		if perr := opts.Guard.Prune(ctx, c.cutoff); perr != nil {
			err = fmt.Errorf("migrate: collect: prune touches: %w", perr)
		}
	}
	err = errors.Join(append(c.errs, err)...)
	rep.Elapsed = time.Since(start)
	if !opts.DryRun {
		met := newMetrics(opts.MeterProvider)
		blob := metric.WithAttributeSet(attribute.NewSet(attribute.String("kind", "blob")))
		met.gcDeleted.Add(ctx, int64(rep.Deleted), blob)
		met.gcDeleted.Add(ctx, int64(rep.DerivedDeleted), metric.WithAttributeSet(attribute.NewSet(attribute.String("kind", "derived"))))
		met.gcKept.Add(ctx, int64(rep.Kept))
		met.gcBytes.Add(ctx, rep.Bytes)
	}
	c.log.InfoContext(ctx, "migrate: collect finished", "scanned", rep.Scanned, "deleted", rep.Deleted,
		"would_delete", rep.WouldDelete, "kept", rep.Kept, "referenced", rep.Referenced, "young", rep.Young,
		"touched", rep.Touched, "failed", rep.Failed, "bytes", rep.Bytes, "derived_scanned", rep.DerivedScanned,
		"derived_deleted", rep.DerivedDeleted, "elapsed", rep.Elapsed, "dry_run", opts.DryRun, "err", err)
	return rep, err
}

// collector is the state of one Collect.
type collector struct {
	start    time.Time
	src      cas.Backend
	opts     CollectOptions
	log      *slog.Logger
	rep      *CollectReport
	cutoff   time.Time
	onDelete func(string)
	errs     []error // per-object failures
}

func (c *collector) sweep(ctx context.Context, m Migrator) error {
	refSeq, refStop, err := referencedSorted(ctx, m, cas.KeyPrefix, cas.IsKey, withinPrefix(cas.KeyPrefix), c.opts.TempDir, c.opts.SortMemory)
	if err != nil {
		return fmt.Errorf("migrate: collect: referenced: %w", err)
	}
	defer refStop()
	refs := newCursor("Migrator.Referenced", refSeq)
	defer refs.close()

	var derived []*derivedCursor
	for _, p := range cas.DerivedPrefixes() {
		d := newDerivedCursor(ctx, c.src, p, &c.rep.DerivedScanned)
		defer d.close()
		derived = append(derived, d)
	}

	prev := ""
	// The listing gives keys and ages (cas.ListKeys: on s3store no HEAD
	// per blob); the decoded size of a blob is asked for (Stat) only when
	// it is to be deleted, for Bytes.
	for info, err := range cas.ListKeys(ctx, c.src, cas.KeyPrefix) {
		if err != nil {
			return fmt.Errorf("migrate: collect: list: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !cas.IsKey(info.Key) {
			continue
		}
		if info.Key < prev {
			return fmt.Errorf("%w: the Backend listed %q after %q", ErrUnordered, info.Key, prev)
		}
		prev = info.Key
		hex := strings.TrimPrefix(info.Key, cas.KeyPrefix)
		// Derived objects of blobs that sort before this one have no blob.
		for _, d := range derived {
			if err := c.derivedUpTo(ctx, d, hex, false); err != nil {
				return err
			}
		}
		fate, err := c.blob(ctx, info, refs)
		if err != nil {
			return err
		}
		for _, d := range derived {
			if err := c.derivedOf(ctx, d, hex, fate); err != nil {
				return err
			}
		}
		if c.opts.Progress != nil {
			p := *c.rep
			p.Elapsed = time.Since(c.start)
			c.opts.Progress(p)
		}
	}
	for _, d := range derived {
		if err := c.derivedUpTo(ctx, d, "", true); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// blobFate is what became of a listed blob.
type blobFate int

const (
	blobKept      blobFate = iota
	blobCollected          // deleted (in a DryRun: would be)
	blobMissing            // deleted by someone else since the listing
)

// blob decides about one listed blob and reports what became of it.
func (c *collector) blob(ctx context.Context, info cas.KeyInfo, refs *cursor) (blobFate, error) {
	rep := c.rep
	referenced, err := refs.contains(info.Key)
	if err != nil {
		return blobKept, fmt.Errorf("migrate: collect: referenced: %w", err)
	}
	if !referenced && !info.ModTime.IsZero() && !info.ModTime.After(c.cutoff) {
		// About to go: the decoded size, for Bytes. The listing gives
		// only the stored size, and the Stat (a HEAD on s3store) is paid
		// for the deletable blobs alone.
		st, err := c.src.Stat(ctx, info.Key)
		switch {
		case errors.Is(err, cas.ErrNotFound):
			return blobMissing, nil // not counted, as a List would not have listed it
		case err != nil:
			if ctx.Err() != nil {
				return blobKept, ctx.Err()
			}
			rep.Scanned++
			rep.Kept++
			rep.Failed++
			c.errs = append(c.errs, fmt.Errorf("migrate: collect: %q: %w", info.Key, err))
			c.log.WarnContext(ctx, "migrate: collect stat failed", "key", info.Key, "err", err)
			return blobKept, nil
		}
		return c.collect(ctx, info.Key, st.Size)
	}
	rep.Scanned++
	rep.Kept++
	if referenced {
		rep.Referenced++
	} else {
		rep.Young++
	}
	return blobKept, nil
}

// collect deletes (in a DryRun: counts) the unreferenced old blob key of
// decoded size size, through the Guard.
func (c *collector) collect(ctx context.Context, key string, size int64) (blobFate, error) {
	rep := c.rep
	rep.Scanned++
	if c.opts.DryRun {
		rep.WouldDelete++
		rep.Bytes += size
		c.onDelete(key)
		c.log.InfoContext(ctx, "migrate: collect would delete", "key", key, "size", size)
		return blobCollected, nil
	}
	deleted, err := c.opts.Guard.CollectKey(ctx, key, c.cutoff, func(ctx context.Context) error {
		return c.src.Delete(ctx, key)
	})
	switch {
	case err != nil:
		if ctx.Err() != nil {
			return blobKept, ctx.Err()
		}
		rep.Kept++
		rep.Failed++
		c.errs = append(c.errs, fmt.Errorf("migrate: collect: %q: %w", key, err))
		c.log.WarnContext(ctx, "migrate: collect delete failed", "key", key, "err", err)
		return blobKept, nil
	case !deleted:
		rep.Kept++
		rep.Touched++
		c.log.InfoContext(ctx, "migrate: collect kept a blob relied on meanwhile", "key", key)
		return blobKept, nil
	}
	rep.Deleted++
	rep.Bytes += size
	c.onDelete(key)
	c.log.InfoContext(ctx, "migrate: collect deleted", "key", key, "size", size)
	return blobCollected, nil
}

// derivedUpTo handles the derived objects of d whose blob hex sorts before
// hex (all of them when all): their blob is not listed.
func (c *collector) derivedUpTo(ctx context.Context, d *derivedCursor, hex string, all bool) error {
	for d.ok && (all || d.hex < hex) {
		if err := c.orphan(ctx, d); err != nil {
			return err
		}
		d.advance()
	}
	return d.err
}

// orphan handles d's current derived object, whose blob does not exist:
// it goes once it is older than MinAge.
func (c *collector) orphan(ctx context.Context, d *derivedCursor) error {
	old := !d.info.ModTime.IsZero() && !d.info.ModTime.After(c.cutoff)
	if d.hex == "" || !old {
		return nil // not a derived key Collect understands, or young: kept
	}
	return c.deleteDerived(ctx, d.info)
}

// derivedOf handles the derived objects of the blob hex, which were
// collected with it, stay with it, or have lost it meanwhile.
func (c *collector) derivedOf(ctx context.Context, d *derivedCursor, hex string, fate blobFate) error {
	for d.ok && d.hex == hex {
		var err error
		switch fate {
		case blobCollected:
			err = c.deleteDerived(ctx, d.info)
		case blobMissing:
			err = c.orphan(ctx, d)
		}
		if err != nil {
			return err
		}
		d.advance()
	}
	return d.err
}

func (c *collector) deleteDerived(ctx context.Context, info cas.KeyInfo) error {
	if c.opts.DryRun {
		c.rep.DerivedDeleted++
		c.onDelete(info.Key)
		return nil
	}
	if err := c.src.Delete(ctx, info.Key); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.errs = append(c.errs, fmt.Errorf("migrate: collect: derived %q: %w", info.Key, err))
		return nil
	}
	c.rep.DerivedDeleted++
	c.onDelete(info.Key)
	c.log.InfoContext(ctx, "migrate: collect deleted derived object", "key", info.Key)
	return nil
}

// derivedCursor walks the List of one derived prefix in key order. hex is
// the blob hex of the current key, "" when the key is not prefix + 64
// lowercase hex + "_" (such keys are skipped, never deleted).
type derivedCursor struct {
	prefix  string
	next    func() (cas.KeyInfo, error, bool)
	stop    func()
	info    cas.KeyInfo
	hex     string
	ok      bool
	err     error
	scanned *int // CollectReport.DerivedScanned
}

func newDerivedCursor(ctx context.Context, src cas.Backend, prefix string, scanned *int) *derivedCursor {
	d := &derivedCursor{prefix: prefix, scanned: scanned}
	d.next, d.stop = iter.Pull2(cas.ListKeys(ctx, src, prefix))
	d.advance()
	return d
}

func (d *derivedCursor) advance() {
	info, err, ok := d.next()
	switch {
	case !ok:
		d.ok = false
	case err != nil:
		d.ok, d.err = false, fmt.Errorf("migrate: collect: list %s: %w", d.prefix, err)
	case d.ok && info.Key < d.info.Key:
		d.ok, d.err = false, fmt.Errorf("%w: the Backend listed %q after %q", ErrUnordered, info.Key, d.info.Key)
	default:
		d.info, d.ok = info, true
		d.hex = derivedHex(d.prefix, info.Key)
		*d.scanned++
	}
}

func (d *derivedCursor) close() { d.stop() }

// derivedHex returns the blob hex of a derived key (prefix + hex + "_" +
// name), or "".
func derivedHex(prefix, key string) string {
	rest, ok := strings.CutPrefix(key, prefix)
	if !ok || len(rest) < 65 || rest[64] != '_' {
		return ""
	}
	if _, err := cas.Parse(rest[:64]); err != nil {
		return ""
	}
	return rest[:64]
}
