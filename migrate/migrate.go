// Package migrate moves objects stored under legacy keys (such as UUIDs) to
// CAS keys, one record at a time, without ever losing data.
//
// A service that keeps files under arbitrary keys today describes its
// records with a [Migrator]: which records still point at a legacy key
// ([Migrator.Pending]), how to repoint one record at its new key
// ([Migrator.Commit]), and every key that any record points at
// ([Migrator.Referenced]). [Run] copies each pending record's object into a
// [cas.Store] and then commits the record's new key; [Cleanup] deletes the
// legacy objects that nothing references any more.
//
// The order of operations makes a crash harmless at any moment: the new
// object is fully stored before the record is repointed, and the record is
// repointed only if it still holds the old key. A record therefore always
// points at an object that exists and holds the right bytes, and a rerun
// simply carries on with the records that are still pending.
//
// The package migrate/sqlmigrator provides a Migrator for any database/sql
// table.
package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/casa-go/casa/cas"
)

// DefaultConcurrency is the number of records Run migrates at once when
// Options.Concurrency is zero.
const DefaultConcurrency = 4

// Sentinel errors; test for them with errors.Is.
var (
	// ErrConflict: a record no longer holds the key it was read with
	// (it changed after Pending yielded it), so it was not committed.
	ErrConflict = errors.New("migrate: record changed concurrently")
	// ErrIncomplete: some records still point at legacy keys. Report.Err
	// wraps it when a run left records behind, and Cleanup returns it
	// (and deletes nothing) while any record is pending.
	ErrIncomplete = errors.New("migrate: migration incomplete")
)

// Record is one row, document or entity that points at a stored object.
type Record struct {
	ID  string // identifies the record to its Migrator
	Key string // the Backend key the record points at
}

// Migrator is the application side of a migration: it finds the records
// that still point at legacy keys and repoints them, one at a time.
//
// Run calls Commit from several goroutines at once, while it is still
// iterating Pending, so a Migrator must be safe for concurrent use, and
// Pending must not hold locks or cursors that Commit needs while it yields.
type Migrator interface {
	// Pending yields the records whose Key is non-empty and not a CAS key
	// (cas.IsKey is false). Records committed while the iteration runs
	// must not stop it from progressing: paginate by ID rather than by
	// offset. Run skips records with empty or CAS keys defensively.
	Pending(ctx context.Context) iter.Seq2[Record, error]
	// Commit durably repoints the record rec.ID from rec.Key to newKey,
	// but only if the record still points at rec.Key; otherwise it
	// changes nothing and returns an error wrapping ErrConflict.
	Commit(ctx context.Context, rec Record, newKey string) error
	// Referenced yields every non-empty key that any record points at,
	// legacy or CAS. Cleanup never deletes a key yielded here.
	Referenced(ctx context.Context) iter.Seq2[string, error]
}

// Options tune Run. The zero value is ready to use.
type Options struct {
	// Source is the Backend the legacy keys live in. The default is the
	// store's own Backend. It may differ from the store's: legacy files on
	// local disk can migrate into a store on S3.
	Source cas.Backend
	// Concurrency is how many records are migrated at once. The default
	// is DefaultConcurrency.
	Concurrency int
	// DryRun reads and hashes every pending object but writes nothing and
	// commits nothing. The Report says what a real run would do. To count
	// duplicates among the pending records a DryRun remembers every hash
	// it computed (32 bytes and map overhead per distinct blob).
	DryRun bool
	// Progress, when set, is called after each record. Calls never
	// overlap, so the function need not be safe for concurrent use, but it
	// should return quickly: it holds up the workers. Setting it makes Run
	// first count the pending records (one extra pass over Pending) so
	// that Progress.Total is known.
	Progress func(Progress)
	// Logger receives structured logs: the start and end of the run at
	// Info, each migrated record and each conflict at Debug, each
	// failure at Warn. The default discards.
	Logger *slog.Logger
	// MeterProvider receives the run's OpenTelemetry metrics (see
	// MetricMigrated and the other Metric names). Setting it makes Run
	// count the pending records first, as Progress does, for the pending
	// gauge. The default records nothing.
	MeterProvider metric.MeterProvider
	// Status, when set, is kept up to date for other goroutines to read
	// (see Status). Setting it makes Run count the pending records
	// first, as Progress does.
	Status *Status
	// RecordsPerSecond, when positive, limits how many records Run
	// starts per second, so that a migration in the background of a
	// serving application does not starve it. Zero means no limit.
	RecordsPerSecond float64
	// BytesPerSecond, when positive, limits how fast Run reads legacy
	// objects (in a burst of at most a tenth of a second's worth). Zero
	// means no limit.
	BytesPerSecond int64
}

// Progress is a snapshot of a running migration.
type Progress struct {
	// Done counts the records finished so far: migrated, conflicted or
	// failed.
	Done int
	// Migrated, Conflicts and Failed split Done (see Report).
	Migrated, Conflicts, Failed int
	// Total is the number of pending records counted before the run
	// started. It is an estimate when the table changes during the run:
	// Done may stay below it when records are migrated by someone else,
	// and Run raises it to Done when records were added.
	Total int
	// Bytes counts the bytes read from legacy objects so far.
	Bytes int64
	// Elapsed is the time since Run started.
	Elapsed time.Duration
}

// Rate returns the records finished per second so far.
func (p Progress) Rate() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Done) / p.Elapsed.Seconds()
}

// Remaining returns the records counted pending and not finished yet.
func (p Progress) Remaining() int { return max(p.Total-p.Done, 0) }

// ETA estimates the time left at the rate so far; zero when nothing is
// left or no rate is known yet.
func (p Progress) ETA() time.Duration {
	rate := p.Rate()
	if rate <= 0 || p.Remaining() == 0 {
		return 0
	}
	return time.Duration(float64(p.Remaining()) / rate * float64(time.Second))
}

// ByteRate returns the bytes read per second so far.
func (p Progress) ByteRate() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Bytes) / p.Elapsed.Seconds()
}

// Failure is a record that could not be migrated. It still points at its
// legacy key, whose object is untouched.
type Failure struct {
	Record Record
	Err    error
}

// Error implements error.
func (f Failure) Error() string {
	return fmt.Sprintf("record %q (key %q): %v", f.Record.ID, f.Record.Key, f.Err)
}

// Unwrap returns the underlying error.
func (f Failure) Unwrap() error { return f.Err }

// Report is the outcome of Run.
type Report struct {
	// Seen counts the records the run found needing migration (yielded by
	// Migrator.Pending): every one of them ends Migrated, in Conflicts or
	// Failed (unless the run stopped early).
	Seen int
	// Migrated counts the records committed to their new key (in a
	// DryRun: the records that would have been).
	Migrated int
	// Deduplicated is the subset of Migrated whose bytes were already
	// stored, by an earlier record, run or upload.
	Deduplicated int
	// Conflicts counts the records whose commit found them changed by
	// another writer (the Migrator's Commit returned ErrConflict): another
	// replica migrated them first, or the application repointed or
	// deleted them. With several replicas migrating at once this is
	// normal, so a conflict is not a failure: it is neither in Failed nor
	// in Failures (Run logs each at Debug, with its ID and key). Its bytes
	// were stored; if nothing references them, Collect removes them.
	Conflicts int
	// ConflictsPending is the subset of Conflicts still pending after the
	// run, on a legacy key (the application repointed the record at
	// another legacy object, say). When Conflicts > 0 Run finds them with
	// one more pass over Migrator.Pending, holding the conflicting IDs
	// meanwhile. Err reports them: a rerun migrates them.
	ConflictsPending int
	// Failed counts the records that could not be migrated; Failures
	// says why, in the order the failures happened.
	Failed   int
	Failures []Failure
	// Bytes counts the bytes read from legacy objects of migrated records.
	Bytes int64
	// Elapsed is how long the run took.
	Elapsed time.Duration

	// stopped is why the run ended before Pending was exhausted.
	stopped error
}

// Err returns nil only when the run went through every pending record and
// none of them is left pending: each was migrated, or conflicted with
// another writer and is no longer on a legacy key (another replica
// migrated it, or it was deleted or cleared). Otherwise it returns an
// error wrapping ErrIncomplete (and the first failure's error, ErrConflict
// for conflicting records still pending, or the reason the run stopped),
// so that an application can refuse to start half-migrated.
func (r Report) Err() error {
	switch {
	case r.stopped != nil:
		return fmt.Errorf("%w: run stopped after %d of %d records: %w", ErrIncomplete, r.Migrated+r.Conflicts+r.Failed, r.Seen, r.stopped)
	case r.Failed > 0 && len(r.Failures) > 0:
		return fmt.Errorf("%w: %d of %d records failed; first: %w", ErrIncomplete, r.Failed, r.Seen, r.Failures[0])
	case r.ConflictsPending > 0:
		return fmt.Errorf("%w: %d of %d records changed concurrently and still point at legacy keys (rerun to migrate them): %w",
			ErrIncomplete, r.ConflictsPending, r.Seen, ErrConflict)
	case r.Failed > 0 || r.Migrated+r.Conflicts != r.Seen:
		return fmt.Errorf("%w: %d of %d records migrated", ErrIncomplete, r.Migrated, r.Seen)
	}
	return nil
}

// Run migrates every record m.Pending yields: it opens the record's legacy
// object in opts.Source, streams it into store (which hashes it and skips
// the upload when the bytes are already stored), and then commits the
// record's new key, the Hash's Key, through m.Commit. One commit per
// record, and only after the bytes are stored, so a crash at any moment
// leaves every record pointing at an object that exists and holds its
// bytes. Records already on CAS keys are not touched; a rerun finishes
// what an interrupted or partly failed run left.
//
// A record that fails (legacy object missing or unreadable, write error,
// commit error) is added to Report.Failures and the run goes on; check
// Report.Err. A commit that finds the record changed by another writer
// (ErrConflict) is counted in Report.Conflicts instead: not a failure,
// and Report.Err fails for it only when the record is still pending after
// the run. The legacy object is never modified or deleted: that is
// Cleanup's job.
//
// Run returns a non-nil error only when the run itself could not go on:
// Pending failed, or ctx was cancelled. Cancellation stops the run between
// records; a record whose copy was interrupted is neither committed nor
// counted as failed. The Report describes the work done either way.
func Run(ctx context.Context, store *cas.Store, m Migrator, opts Options) (Report, error) {
	if store == nil || m == nil {
		return Report{}, errors.New("migrate: Run needs a store and a Migrator")
	}
	if opts.RecordsPerSecond < 0 || opts.BytesPerSecond < 0 {
		return Report{}, fmt.Errorf("migrate: negative rate limit (RecordsPerSecond %v, BytesPerSecond %d)", opts.RecordsPerSecond, opts.BytesPerSecond)
	}
	r := &runner{store: store, m: m, opts: opts, start: time.Now(), inFlight: make(map[string]bool)}
	if r.opts.Source == nil {
		r.opts.Source = store.Backend()
	}
	// Every call to the Source goes through the checked layer: one key
	// rule, contexts checked, reads that end early fail.
	r.opts.Source = cas.Checked(r.opts.Source)
	if r.opts.Concurrency <= 0 {
		r.opts.Concurrency = DefaultConcurrency
	}
	if r.opts.Logger == nil {
		r.opts.Logger = slog.New(slog.DiscardHandler)
	}
	if r.opts.DryRun {
		r.seenHashes = make(map[cas.Hash]bool)
	}
	r.met = newMetrics(r.opts.MeterProvider)
	r.records = newBucket(r.opts.RecordsPerSecond, 1)
	r.bytes = newBucket(float64(r.opts.BytesPerSecond), max(float64(r.opts.BytesPerSecond)/10, 1))
	r.attrs = dryRunAttr(r.opts.DryRun)
	return r.run(ctx)
}

// runner is the state of one Run.
type runner struct {
	store *cas.Store
	m     Migrator
	opts  Options
	start time.Time
	met   metrics
	attrs metric.MeasurementOption

	records, bytes *bucket // rate limits; nil: none

	mu         sync.Mutex
	rep        Report
	total      int
	inFlight   map[string]bool   // record IDs being migrated, conflicted or failed: never started twice
	conflicted map[string]bool   // record IDs whose commit hit ErrConflict: re-checked after the pass
	seenHashes map[cas.Hash]bool // DryRun only: hashes "stored" by this run
	pendingN   atomic.Int64      // the pending gauge: total - finished
}

func (r *runner) run(ctx context.Context) (Report, error) {
	log := r.opts.Logger
	log.InfoContext(ctx, "migrate: run starting", "concurrency", r.opts.Concurrency, "dry_run", r.opts.DryRun)
	var runErr error
	if r.opts.Progress != nil || r.opts.MeterProvider != nil || r.opts.Status != nil {
		n, err := r.count(ctx)
		if err != nil {
			runErr = err
		}
		r.mu.Lock()
		r.total = n
		r.pendingN.Store(int64(n))
		r.mu.Unlock()
		r.opts.Status.update(Progress{Total: n, Elapsed: time.Since(r.start)})
		defer r.met.pendingGauge(r.pending)()
	}

	if runErr == nil {
		recs := make(chan Record, r.opts.Concurrency)
		var wg sync.WaitGroup
		for range r.opts.Concurrency {
			wg.Go(func() {
				for rec := range recs {
					r.migrate(ctx, rec)
				}
			})
		}
		runErr = r.produce(ctx, recs)
		close(recs)
		wg.Wait()
	}
	if runErr == nil {
		runErr = ctx.Err()
	}
	if runErr == nil && len(r.conflicted) > 0 {
		runErr = r.recheckConflicts(ctx)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	r.rep.Elapsed = time.Since(r.start)
	r.rep.stopped = runErr
	rep := r.rep
	rep.Failures = append([]Failure(nil), rep.Failures...)
	statusErr := runErr
	if statusErr == nil {
		statusErr = rep.Err()
	}
	r.opts.Status.finish(r.progress(), statusErr)
	log.InfoContext(ctx, "migrate: run finished",
		"seen", rep.Seen, "migrated", rep.Migrated, "deduplicated", rep.Deduplicated,
		"conflicts", rep.Conflicts, "conflicts_pending", rep.ConflictsPending, "failed", rep.Failed, "bytes", rep.Bytes, "elapsed", rep.Elapsed, "dry_run", r.opts.DryRun, "err", runErr)
	return rep, runErr
}

// pending is the pending gauge's value: the records counted at the start
// and not finished yet.
// It reads an atomic, not r.mu, so that a collection from inside
// Progress (which runs under r.mu) cannot deadlock.
func (r *runner) pending() int64 { return r.pendingN.Load() }

// recheckConflicts finds which of the records whose commit conflicted are
// still pending (Report.ConflictsPending): one more pass over Pending,
// after the workers are done.
func (r *runner) recheckConflicts(ctx context.Context) error {
	n := 0
	for rec, err := range r.m.Pending(ctx) {
		if err != nil {
			return fmt.Errorf("migrate: pending (re-checking conflicts): %w", err)
		}
		if needsMigration(rec) && r.conflicted[rec.ID] {
			n++
			r.opts.Logger.DebugContext(ctx, "migrate: conflicting record still pending", "id", rec.ID, "key", rec.Key)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	r.rep.ConflictsPending = n
	r.mu.Unlock()
	if n > 0 {
		r.opts.Logger.InfoContext(ctx, "migrate: records changed concurrently and still pending; rerun to migrate them",
			"conflicts", r.rep.Conflicts, "conflicts_pending", n)
	}
	return nil
}

// count counts the pending records, for Progress.Total.
func (r *runner) count(ctx context.Context) (int, error) {
	n := 0
	for rec, err := range r.m.Pending(ctx) {
		if err != nil {
			return n, fmt.Errorf("migrate: pending: %w", err)
		}
		if needsMigration(rec) {
			n++
		}
	}
	return n, ctx.Err()
}

// produce feeds pending records to the workers until Pending is exhausted,
// fails, or ctx is done.
func (r *runner) produce(ctx context.Context, recs chan<- Record) error {
	for rec, err := range r.m.Pending(ctx) {
		if err != nil {
			return fmt.Errorf("migrate: pending: %w", err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !needsMigration(rec) {
			continue
		}
		if err := r.records.wait(ctx, 1); err != nil {
			return err
		}
		r.mu.Lock()
		dup := r.inFlight[rec.ID]
		if !dup {
			r.inFlight[rec.ID] = true
			r.rep.Seen++
		}
		r.mu.Unlock()
		if dup {
			// A Migrator that yields a record twice (say, one that failed
			// and is still pending) must not make Run loop or race itself.
			continue
		}
		select {
		case recs <- rec:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func needsMigration(rec Record) bool { return rec.Key != "" && !cas.IsKey(rec.Key) }

// migrate moves one record and accounts for the outcome.
func (r *runner) migrate(ctx context.Context, rec Record) {
	if ctx.Err() != nil {
		return // stopping between records
	}
	res, n, err := r.copy(ctx, rec)
	conflict := false
	if err == nil && !r.opts.DryRun {
		err = r.commit(ctx, rec, res.Hash.Key())
		conflict = errors.Is(err, ErrConflict)
	}
	if err != nil && ctx.Err() != nil {
		// Interrupted by cancellation: the record is untouched, neither
		// migrated nor failed; a rerun picks it up.
		return
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case conflict:
		if r.conflicted == nil {
			r.conflicted = make(map[string]bool)
		}
		r.conflicted[rec.ID] = true
		r.rep.Conflicts++
		r.met.conflicts.Add(ctx, 1, r.attrs)
		r.opts.Logger.DebugContext(ctx, "migrate: record changed concurrently (conflict, not a failure)", "id", rec.ID, "key", rec.Key, "err", err)
	case err != nil:
		r.met.failed.Add(ctx, 1, r.attrs)
		r.rep.Failed++
		r.rep.Failures = append(r.rep.Failures, Failure{Record: rec, Err: err})
		r.opts.Logger.WarnContext(ctx, "migrate: record failed", "id", rec.ID, "key", rec.Key, "err", err)
	default:
		delete(r.inFlight, rec.ID)
		r.rep.Migrated++
		r.rep.Bytes += n
		r.met.migrated.Add(ctx, 1, r.attrs)
		r.met.bytes.Add(ctx, n, r.attrs)
		if res.Deduplicated {
			r.rep.Deduplicated++
			r.met.deduplicated.Add(ctx, 1, r.attrs)
		}
		r.opts.Logger.DebugContext(ctx, "migrate: record migrated", "id", rec.ID, "key", rec.Key,
			"new_key", res.Hash.Key(), "size", n, "deduplicated", res.Deduplicated, "dry_run", r.opts.DryRun)
	}
	done := r.rep.Migrated + r.rep.Conflicts + r.rep.Failed
	r.pendingN.Store(int64(max(r.total-done, 0)))
	r.total = max(r.total, done)
	if r.opts.Progress != nil || r.opts.Status != nil {
		p := r.progress()
		r.opts.Status.update(p)
		if r.opts.Progress != nil {
			r.opts.Progress(p)
		}
	}
}

// progress is the current Progress; r.mu is held.
func (r *runner) progress() Progress {
	return Progress{Done: r.rep.Migrated + r.rep.Conflicts + r.rep.Failed, Migrated: r.rep.Migrated,
		Conflicts: r.rep.Conflicts, Failed: r.rep.Failed,
		Total: r.total, Bytes: r.rep.Bytes, Elapsed: time.Since(r.start)}
}

// copy streams the record's legacy object into the store (DryRun: only
// hashes it) and returns where it went and how many bytes it read.
func (r *runner) copy(ctx context.Context, rec Record) (cas.PutResult, int64, error) {
	obj, err := r.opts.Source.Open(ctx, rec.Key)
	if err != nil {
		return cas.PutResult{}, 0, fmt.Errorf("migrate: open legacy object: %w", err)
	}
	defer obj.Close()
	var src io.Reader = obj
	if r.bytes != nil {
		src = &limitedReader{ctx: ctx, r: obj, b: r.bytes}
	}
	counter := &countingReader{r: src}

	var res cas.PutResult
	if r.opts.DryRun {
		h, n, err := cas.Sum(counter) // Source is cas.Checked: its reads stop with ctx
		if err != nil {
			return res, counter.n, fmt.Errorf("migrate: read legacy object: %w", err)
		}
		res = cas.PutResult{Hash: h, Size: n}
		stored, err := r.store.Has(ctx, h)
		if err != nil {
			return res, counter.n, fmt.Errorf("migrate: check %s: %w", h, err)
		}
		r.mu.Lock()
		res.Deduplicated = stored || r.seenHashes[h]
		r.seenHashes[h] = true
		r.mu.Unlock()
	} else {
		res, err = r.store.Put(ctx, counter)
		if err != nil {
			return res, counter.n, fmt.Errorf("migrate: store: %w", err)
		}
	}
	// A legacy object that reads short without an error (a truncated
	// stream) must not become the record's content.
	if want := obj.Info().Size; want >= 0 && res.Size != want {
		return res, counter.n, fmt.Errorf("migrate: legacy object is %d bytes but %d were read", want, res.Size)
	}
	return res, counter.n, nil
}

// commit repoints the record, but only while ctx is live and the bytes
// are stored.
func (r *runner) commit(ctx context.Context, rec Record, newKey string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := r.m.Commit(ctx, rec, newKey); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
