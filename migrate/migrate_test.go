package migrate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/internal/testutil/backendtest"
	"github.com/casa-go/casa/internal/testutil/faulty"
	"github.com/casa-go/casa/migrate"
)

// env is a place to migrate in: the legacy objects' Backend and the store.
type env struct {
	name   string
	source cas.Backend // where legacy objects live
	store  *cas.Store  // where CAS objects go
}

// with returns o with Source set to the env's source.
func (e env) with(o migrate.Options) migrate.Options {
	o.Source = e.source
	return o
}

// memEnv returns a memstore and an env in which legacy objects and CAS
// objects share it, as in a service migrating in place.
func memEnv() (*memstore.Backend, env) {
	b := memstore.New()
	return b, env{name: "memstore", source: b, store: cas.New(b)}
}

// storeBackend is the store's Backend.
func (e env) storeBackend() cas.Backend { return e.store.Backend() }

// envs returns the configurations every acceptance test runs in: in place
// (legacy and CAS objects in one Backend, as in a service migrating in
// place) on every Backend of backendtest's matrix, and across Backends:
// memstore to memstore, and legacy files on local disk into a store on S3.
func envs(t testing.TB) []env {
	t.Helper()
	var out []env
	for _, c := range backendtest.All() {
		b := c.New(t)
		out = append(out, env{name: c.Name, source: b, store: cas.New(b)})
	}
	mem, fs, s3 := backendtest.Mem(), backendtest.FS(), backendtest.S3()
	return append(out,
		env{name: "memstore-to-memstore", source: mem.New(t), store: cas.New(mem.New(t))},
		env{name: "fs-to-s3", source: fs.New(t), store: cas.New(s3.New(t))},
	)
}

// seed stores n legacy objects in e.source and returns a Migrator with one
// record per object, and each record's bytes.
func seed(t testing.TB, e env, n int) (*memMigrator, map[string][]byte) {
	t.Helper()
	rows := make(map[string]string, n)
	want := make(map[string][]byte, n)
	for i := range n {
		id := fmt.Sprintf("r%04d", i)
		rows[id] = legacyKey(i)
		// Distinct bytes per record, of varied sizes.
		want[id] = testutil.Bytes(uint64(i), 10*(1+i%7))
		put(t, e.source, legacyKey(i), want[id])
	}
	return newMemMigrator(rows), want
}

func TestRunMigratesLegacyRecord(t *testing.T) {
	t.Parallel()
	for _, e := range envs(t) {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			data := []byte("the datasheet of part 42")
			const old = "uploads/7f1e7a9e-3c2b-4f0e-9a53-0c6f0f3b8e11"
			put(t, e.source, old, data)
			m := newMemMigrator(map[string]string{"42": old})

			rep, err := migrate.Run(ctx, e.store, m, e.with(migrate.Options{}))
			require.NoError(t, err)
			require.NoError(t, rep.Err())

			h := cas.SumBytes(data)
			require.Equal(t, h.Key(), m.key("42"), "the record points at the hash of its bytes")
			require.Equal(t, data, read(t, e.storeBackend(), h.Key()), "the CAS object holds the bytes")
			require.Equal(t, data, read(t, e.source, old), "Run never touches the legacy object")
			require.Equal(t, migrate.Report{Seen: 1, Migrated: 1, Bytes: int64(len(data))}, zeroElapsed(rep))
		})
	}
}

// zeroElapsed clears the timing so a Report can be compared whole.
func zeroElapsed(r migrate.Report) migrate.Report {
	return migrate.Report{Seen: r.Seen, Migrated: r.Migrated, Deduplicated: r.Deduplicated,
		Conflicts: r.Conflicts, ConflictsPending: r.ConflictsPending, Failed: r.Failed, Failures: r.Failures, Bytes: r.Bytes}
}

func TestRunSkipsCASAndEmptyRecords(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	inner := memstore.New()
	src := faulty.New(inner)
	store := cas.New(inner)
	res, err := store.Put(ctx, bytes.NewReader([]byte("already migrated")))
	require.NoError(t, err)
	rows := map[string]string{
		"cas":   res.Hash.Key(),
		"empty": "",
		// A CAS key whose object is gone is still a CAS key: not touched.
		"orphan": cas.SumBytes([]byte("gone")).Key(),
	}
	m := newMemMigrator(copyRows(rows))

	rep, err := migrate.Run(ctx, store, m, migrate.Options{Source: src})
	require.NoError(t, err)
	require.NoError(t, rep.Err())
	require.Equal(t, 0, rep.Seen)
	require.Equal(t, 0, m.commits)
	require.Empty(t, cmp.Diff(rows, m.snapshot()))
	require.Zero(t, src.Calls(faulty.MethodOpen), "no legacy object is opened")
}

// copyRows copies rows so the test keeps the original for comparison.
func copyRows(m map[string]string) map[string]string { return maps.Clone(m) }

// casYielder yields records on CAS keys, as a careless Migrator might.
type casYielder struct{ *memMigrator }

func (c casYielder) Pending(ctx context.Context) iter.Seq2[migrate.Record, error] {
	return func(yield func(migrate.Record, error) bool) {
		for id, key := range c.snapshot() {
			if !yield(migrate.Record{ID: id, Key: key}, nil) {
				return
			}
		}
	}
}

func TestRunIgnoresCASRecordsFromCarelessMigrator(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := memstore.New()
	store := cas.New(b)
	res, err := store.Put(ctx, bytes.NewReader([]byte("x")))
	require.NoError(t, err)
	put(t, b, "legacy/1", []byte("one"))
	mm := newMemMigrator(map[string]string{"a": res.Hash.Key(), "b": "", "c": "legacy/1"})
	rep, err := migrate.Run(ctx, store, casYielder{mm}, migrate.Options{})
	require.NoError(t, err)
	require.NoError(t, rep.Err())
	require.Equal(t, 1, rep.Seen)
	require.Equal(t, 1, mm.commits)
	require.Equal(t, res.Hash.Key(), mm.key("a"))
	require.Equal(t, cas.SumBytes([]byte("one")).Key(), mm.key("c"))
}

func TestRunDeduplicates(t *testing.T) {
	t.Parallel()
	for _, e := range envs(t) {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			same := []byte("identical bytes uploaded twice")
			put(t, e.source, "uploads/a", same)
			put(t, e.source, "uploads/b", same)
			pre := []byte("stored before the migration")
			res, err := e.store.Put(ctx, bytes.NewReader(pre))
			require.NoError(t, err)
			put(t, e.source, "uploads/c", pre)
			m := newMemMigrator(map[string]string{"a": "uploads/a", "b": "uploads/b", "c": "uploads/c"})

			rep, err := migrate.Run(ctx, e.store, m, e.with(migrate.Options{Concurrency: 2}))
			require.NoError(t, err)
			require.NoError(t, rep.Err())
			require.Equal(t, 3, rep.Migrated)
			require.Equal(t, 2, rep.Deduplicated, "b or a found a's bytes, c found pre-stored bytes")

			h := cas.SumBytes(same)
			require.Equal(t, h.Key(), m.key("a"))
			require.Equal(t, h.Key(), m.key("b"), "identical bytes end on one key")
			require.Equal(t, res.Hash.Key(), m.key("c"))
			require.Equal(t, []string{h.Key(), res.Hash.Key()}, sortedCAS(t, e.store), "one object per distinct content")
		})
	}
}

// sortedCAS lists the store's CAS keys, sorted.
func sortedCAS(t testing.TB, s *cas.Store) []string {
	t.Helper()
	var out []string
	for info, err := range s.Walk(context.Background()) {
		require.NoError(t, err)
		out = append(out, info.Key)
	}
	slices.Sort(out)
	return out
}

func TestRunMissingLegacyObject(t *testing.T) {
	t.Parallel()
	for _, e := range envs(t) {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			m, want := seed(t, e, 5)
			m.set("missing", "uploads/does-not-exist")

			rep, err := migrate.Run(ctx, e.store, m, e.with(migrate.Options{}))
			require.NoError(t, err, "a per-record failure does not stop the run")
			require.Equal(t, 6, rep.Seen)
			require.Equal(t, 5, rep.Migrated)
			require.Equal(t, 1, rep.Failed)
			require.Len(t, rep.Failures, 1)
			require.Equal(t, migrate.Record{ID: "missing", Key: "uploads/does-not-exist"}, rep.Failures[0].Record)
			require.ErrorIs(t, rep.Failures[0].Err, cas.ErrNotFound)

			err = rep.Err()
			require.ErrorIs(t, err, migrate.ErrIncomplete)
			require.ErrorIs(t, err, cas.ErrNotFound, "Err carries the first failure")
			require.Equal(t, "uploads/does-not-exist", m.key("missing"), "the failed record keeps its key")
			delete(want, "missing")
			m.mu.Lock()
			delete(m.rows, "missing")
			m.mu.Unlock()
			requireIntact(t, m, e.storeBackend(), e.source, want)
		})
	}
}

func TestRunFaultsConverge(t *testing.T) {
	t.Parallel()
	for _, e := range envs(t) {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			const n = 120
			m, want := seed(t, e, n)
			// 20% of every backend call fails, on both sides, reads included.
			src := faulty.New(e.source, faulty.WithFailRate(0.2), faulty.WithSeed(7))
			dst := faulty.New(e.storeBackend(), faulty.WithFailRate(0.2), faulty.WithSeed(11))
			store := cas.New(dst)
			// And 20% of the commits fail too, as a flaky database would.
			var (
				rngMu sync.Mutex
				rng   = rand.New(rand.NewPCG(3, 5))
			)
			m.beforeCommit = func(migrate.Record) error {
				rngMu.Lock()
				defer rngMu.Unlock()
				if rng.Float64() < 0.2 {
					return faulty.ErrInjected
				}
				return nil
			}

			var runs, failures int
			checked := map[string]string{}
			for runs = 1; runs <= 40; runs++ {
				rep, err := migrate.Run(ctx, store, m, migrate.Options{Source: src, Concurrency: 8})
				require.NoError(t, err)
				failures += rep.Failed
				for _, f := range rep.Failures {
					require.ErrorIs(t, f.Err, faulty.ErrInjected, "only injected faults fail records")
				}
				// The invariant holds after every run, failed records
				// included; rows already checked on the same key are
				// skipped (objects are immutable) to keep S3 round trips down.
				requireIntactCached(t, m, e.storeBackend(), e.source, want, checked)
				if rep.Err() == nil {
					break
				}
			}
			require.LessOrEqual(t, runs, 40, "repeated runs converge")
			require.Positive(t, failures, "faults were injected")
			require.Zero(t, m.pendingCount())
			requireIntact(t, m, e.storeBackend(), e.source, want)
			rep, err := migrate.Run(ctx, store, m, migrate.Options{Source: src})
			require.NoError(t, err)
			require.Equal(t, 0, rep.Seen, "a run after completion has nothing to do")
		})
	}
}

func TestRunFailedCommitKeepsOldKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := memstore.New()
	store := cas.New(b)
	e := env{source: b, store: store}
	m, want := seed(t, e, 4)
	errDB := errors.New("database is down")
	m.beforeCommit = func(rec migrate.Record) error {
		switch rec.ID {
		case "r0001":
			return errDB
		case "r0002":
			// The application repointed the row meanwhile.
			m.set("r0002", "uploads/replaced")
		}
		return nil
	}
	put(t, b, "uploads/replaced", []byte("new upload"))
	want["r0002"] = []byte("new upload")

	rep, err := migrate.Run(ctx, store, m, migrate.Options{Concurrency: 1})
	require.NoError(t, err)
	require.Equal(t, 2, rep.Migrated)
	require.Equal(t, 1, rep.Failed)
	require.Equal(t, 1, rep.Conflicts, "r0002's commit conflicted: not a failure")
	require.Equal(t, 1, rep.ConflictsPending, "r0002 still points at a legacy key")
	require.Len(t, rep.Failures, 1)
	require.Equal(t, "r0001", rep.Failures[0].Record.ID)
	require.ErrorIs(t, rep.Failures[0], errDB)
	require.ErrorIs(t, rep.Err(), migrate.ErrIncomplete)

	require.Equal(t, legacyKey(1), m.key("r0001"), "a failed commit leaves the record on its old key")
	require.Equal(t, want["r0001"], read(t, b, legacyKey(1)), "with its object")
	require.Equal(t, "uploads/replaced", m.key("r0002"), "a conflict never overwrites the newer key")
	requireIntact(t, m, b, b, want)

	// Once the database is back, a rerun finishes the job.
	m.beforeCommit = nil
	rep, err = migrate.Run(ctx, store, m, migrate.Options{})
	require.NoError(t, err)
	require.NoError(t, rep.Err())
	require.Equal(t, 2, rep.Migrated)
	require.Equal(t, 1, rep.Deduplicated, "r0001's bytes were stored by the first run")
	require.Zero(t, m.pendingCount())
	requireIntact(t, m, b, b, want)
}

func TestRunFailedPutCommitsNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	inner := memstore.New()
	e := env{source: inner, store: cas.New(inner)}
	m, want := seed(t, e, 3)
	dst := faulty.New(inner, faulty.WithFailKeys(cas.SumBytes(want["r0001"]).Key()))

	rep, err := migrate.Run(ctx, cas.New(dst), m, migrate.Options{Source: inner})
	require.NoError(t, err)
	require.Equal(t, 2, rep.Migrated)
	require.Len(t, rep.Failures, 1)
	require.Equal(t, "r0001", rep.Failures[0].Record.ID)
	require.ErrorIs(t, rep.Failures[0].Err, faulty.ErrInjected)
	require.Equal(t, legacyKey(1), m.key("r0001"), "no commit without stored bytes")
	require.Equal(t, 2, m.commits)
	requireIntact(t, m, inner, inner, want)
}

func TestRunTruncatedReadCommitsNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	inner := memstore.New()
	e := env{source: inner, store: cas.New(inner)}
	m, want := seed(t, e, 3)
	src := faulty.New(inner, faulty.WithReadFailAfter(5))

	rep, err := migrate.Run(ctx, e.store, m, migrate.Options{Source: src})
	require.NoError(t, err)
	require.Equal(t, 3, rep.Failed)
	for _, f := range rep.Failures {
		require.ErrorIs(t, f.Err, faulty.ErrInjected)
	}
	require.Zero(t, m.commits)
	require.Empty(t, sortedCAS(t, e.store), "a failed read stores nothing")
	requireIntact(t, m, inner, inner, want)
}

func TestRunDryRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	inner := memstore.New()
	dst := faulty.New(inner)
	e := env{source: inner, store: cas.New(dst)}
	m, want := seed(t, e, 6)
	put(t, inner, "uploads/copy-of-0", want["r0000"])
	m.set("copy", "uploads/copy-of-0")
	before := keys(t, inner, "")
	rows := m.snapshot()

	rep, err := migrate.Run(ctx, e.store, m, migrate.Options{DryRun: true, Concurrency: 3})
	require.NoError(t, err)
	require.NoError(t, rep.Err())
	require.Equal(t, 7, rep.Seen)
	require.Equal(t, 7, rep.Migrated, "what a real run would migrate")
	require.Equal(t, 1, rep.Deduplicated, "the copy shares r0000's bytes")
	var total int64
	for _, b := range want {
		total += int64(len(b))
	}
	require.Equal(t, total+int64(len(want["r0000"])), rep.Bytes)

	require.Equal(t, before, keys(t, inner, ""), "DryRun writes nothing")
	require.Zero(t, dst.Calls(faulty.MethodPut))
	require.Zero(t, dst.Calls(faulty.MethodDelete))
	require.Zero(t, m.commits, "DryRun commits nothing")
	require.Empty(t, cmp.Diff(rows, m.snapshot()))
}

func TestRunProgress(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, e := memEnv()
	m, want := seed(t, e, 25)
	m.set("missing", "uploads/missing")
	var (
		calls    []migrate.Progress
		inside   atomic.Int32
		overlaps atomic.Int32
	)
	rep, err := migrate.Run(ctx, e.store, m, migrate.Options{Concurrency: 4, Progress: func(p migrate.Progress) {
		if inside.Add(1) > 1 {
			overlaps.Add(1)
		}
		calls = append(calls, p) // safe only because calls never overlap
		inside.Add(-1)
	}})
	require.NoError(t, err)
	require.Zero(t, overlaps.Load(), "Progress calls never overlap")
	require.Len(t, calls, 26, "one call per record, failed ones included")
	var total int64
	for _, d := range want {
		total += int64(len(d))
	}
	for i, p := range calls {
		require.Equal(t, i+1, p.Done)
		require.Equal(t, 26, p.Total, "Total is counted before the run")
		if i > 0 {
			require.GreaterOrEqual(t, p.Bytes, calls[i-1].Bytes)
			require.GreaterOrEqual(t, p.Elapsed, calls[i-1].Elapsed)
		}
	}
	last := calls[len(calls)-1]
	require.Equal(t, total, last.Bytes)
	require.Equal(t, rep.Bytes, last.Bytes)
	require.Positive(t, last.Rate())
	require.InDelta(t, float64(last.Done)/last.Elapsed.Seconds(), last.Rate(), 1e-6)
	require.InDelta(t, float64(last.Bytes)/last.Elapsed.Seconds(), last.ByteRate(), 1e-6)
	require.Zero(t, migrate.Progress{Done: 3}.Rate(), "no rate before any time passed")
}

// concurrencyProbe is a Backend wrapper that records how many Opens are in
// flight at once, each held open for a while.
type concurrencyProbe struct {
	cas.Backend
	hold     time.Duration
	cur, max atomic.Int32
}

func (p *concurrencyProbe) Open(ctx context.Context, key string) (cas.Object, error) {
	n := p.cur.Add(1)
	defer p.cur.Add(-1)
	for {
		m := p.max.Load()
		if n <= m || p.max.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(p.hold)
	return p.Backend.Open(ctx, key)
}

func TestRunConcurrencyBounded(t *testing.T) {
	t.Parallel()
	for _, c := range []int{1, 3, 8} {
		t.Run(fmt.Sprint(c), func(t *testing.T) {
			t.Parallel()
			b, e := memEnv()
			m, want := seed(t, e, 24)
			probe := &concurrencyProbe{Backend: b, hold: 5 * time.Millisecond}
			rep, err := migrate.Run(context.Background(), e.store, m, migrate.Options{Source: probe, Concurrency: c})
			require.NoError(t, err)
			require.NoError(t, rep.Err())
			require.LessOrEqual(t, int(probe.max.Load()), c, "never more than Concurrency records at once")
			if c > 1 {
				require.Greater(t, int(probe.max.Load()), 1, "records do run concurrently")
			}
			requireIntact(t, m, b, b, want)
		})
	}
}

func TestRunCancelStopsBetweenRecordsAndResumes(t *testing.T) {
	t.Parallel()
	b, e := memEnv()
	m, want := seed(t, e, 40)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := faulty.New(b, faulty.WithLatency(time.Millisecond))

	rep, err := migrate.Run(ctx, e.store, m, migrate.Options{Source: src, Concurrency: 2, Progress: func(p migrate.Progress) {
		if p.Done == 10 {
			cancel()
		}
	}})
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorIs(t, rep.Err(), migrate.ErrIncomplete)
	require.ErrorIs(t, rep.Err(), context.Canceled)
	require.GreaterOrEqual(t, rep.Migrated, 10)
	require.Less(t, rep.Migrated, 40, "the run stopped early")
	require.Zero(t, rep.Failed, "interrupted records are not failures")
	require.Equal(t, rep.Migrated, m.commits)
	require.Equal(t, 40-rep.Migrated, m.pendingCount())
	requireIntact(t, m, b, b, want)

	rep2, err := migrate.Run(context.Background(), e.store, m, migrate.Options{Source: src})
	require.NoError(t, err)
	require.NoError(t, rep2.Err())
	require.Equal(t, 40-rep.Migrated, rep2.Migrated, "the rerun does only what is left")
	require.Zero(t, m.pendingCount())
	requireIntact(t, m, b, b, want)
}

// failingPending yields some records and then an error.
type failingPending struct {
	*memMigrator
	after int
	err   error
}

func (f failingPending) Pending(ctx context.Context) iter.Seq2[migrate.Record, error] {
	return func(yield func(migrate.Record, error) bool) {
		i := 0
		for rec, err := range f.memMigrator.Pending(ctx) {
			if i == f.after {
				yield(migrate.Record{}, f.err)
				return
			}
			i++
			if !yield(rec, err) {
				return
			}
		}
	}
}

func TestRunPendingError(t *testing.T) {
	t.Parallel()
	b, e := memEnv()
	m, want := seed(t, e, 10)
	errDB := errors.New("connection reset")
	rep, err := migrate.Run(context.Background(), e.store, failingPending{m, 4, errDB}, migrate.Options{Concurrency: 1})
	require.ErrorIs(t, err, errDB)
	require.Equal(t, 4, rep.Migrated, "records yielded before the error are migrated")
	require.ErrorIs(t, rep.Err(), migrate.ErrIncomplete)
	requireIntact(t, m, b, b, want)
}

// repeater yields every pending record twice, like a Migrator that pages by
// offset over a shrinking set might.
type repeater struct{ *memMigrator }

func (r repeater) Pending(ctx context.Context) iter.Seq2[migrate.Record, error] {
	return func(yield func(migrate.Record, error) bool) {
		for range 2 {
			for rec, err := range r.memMigrator.Pending(ctx) {
				if !yield(rec, err) {
					return
				}
			}
		}
	}
}

func TestRunRecordYieldedTwice(t *testing.T) {
	t.Parallel()
	b, e := memEnv()
	m, want := seed(t, e, 8)
	m.set("missing", "uploads/missing")
	rep, err := migrate.Run(context.Background(), e.store, repeater{m}, migrate.Options{Concurrency: 1})
	require.NoError(t, err)
	require.Equal(t, 9, rep.Seen, "a record is counted once")
	require.Equal(t, 8, rep.Migrated)
	require.Equal(t, 1, rep.Failed, "a failed record is not retried within the run")
	require.Equal(t, 8, m.commits)
	delete(want, "missing")
	m.set("missing", "")
	requireIntact(t, m, b, b, want)
}

func TestRunLogs(t *testing.T) {
	t.Parallel()
	_, e := memEnv()
	m, _ := seed(t, e, 2)
	m.set("missing", "uploads/missing")
	var (
		mu  sync.Mutex
		buf bytes.Buffer
	)
	logger := slog.New(slog.NewJSONHandler(&lockedWriter{mu: &mu, w: &buf}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	_, err := migrate.Run(context.Background(), e.store, m, migrate.Options{Logger: logger})
	require.NoError(t, err)

	mu.Lock()
	defer mu.Unlock()
	var msgs []map[string]any
	dec := json.NewDecoder(&buf)
	for dec.More() {
		var rec map[string]any
		require.NoError(t, dec.Decode(&rec))
		msgs = append(msgs, rec)
	}
	count := map[string]int{}
	for _, rec := range msgs {
		count[rec["level"].(string)+" "+rec["msg"].(string)]++
		if rec["msg"] == "migrate: record failed" {
			require.Equal(t, "missing", rec["id"])
			require.Equal(t, "uploads/missing", rec["key"])
			require.Contains(t, rec["err"], "not found")
		}
		if rec["msg"] == "migrate: run finished" {
			require.EqualValues(t, 2, rec["migrated"])
			require.EqualValues(t, 1, rec["failed"])
		}
	}
	require.Equal(t, map[string]int{
		"INFO migrate: run starting":     1,
		"DEBUG migrate: record migrated": 2,
		"WARN migrate: record failed":    1,
		"INFO migrate: run finished":     1,
	}, count)
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestRunRejectsNil(t *testing.T) {
	t.Parallel()
	_, err := migrate.Run(context.Background(), nil, newMemMigrator(nil), migrate.Options{})
	require.Error(t, err)
	_, err = migrate.Run(context.Background(), cas.New(memstore.New()), nil, migrate.Options{})
	require.Error(t, err)
}

func TestReportErr(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	tests := []struct {
		name    string
		rep     migrate.Report
		wantNil bool
		wantIs  []error
	}{
		{name: "nothing pending", rep: migrate.Report{}, wantNil: true},
		{name: "all migrated", rep: migrate.Report{Seen: 3, Migrated: 3}, wantNil: true},
		{name: "failure", rep: migrate.Report{Seen: 3, Migrated: 2, Failed: 1,
			Failures: []migrate.Failure{{Record: migrate.Record{ID: "x", Key: "k"}, Err: boom}}},
			wantIs: []error{migrate.ErrIncomplete, boom}},
		{name: "failed without detail", rep: migrate.Report{Seen: 1, Failed: 1}, wantIs: []error{migrate.ErrIncomplete}},
		{name: "counts disagree", rep: migrate.Report{Seen: 2, Migrated: 1}, wantIs: []error{migrate.ErrIncomplete}},
		{name: "conflicts no longer pending", rep: migrate.Report{Seen: 3, Migrated: 1, Conflicts: 2}, wantNil: true},
		{name: "conflict still pending", rep: migrate.Report{Seen: 3, Migrated: 1, Conflicts: 2, ConflictsPending: 1},
			wantIs: []error{migrate.ErrIncomplete, migrate.ErrConflict}},
		{name: "conflicts and a failure", rep: migrate.Report{Seen: 3, Migrated: 1, Conflicts: 1, Failed: 1,
			Failures: []migrate.Failure{{Record: migrate.Record{ID: "x", Key: "k"}, Err: boom}}},
			wantIs: []error{migrate.ErrIncomplete, boom}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.rep.Err()
			if tt.wantNil {
				require.NoError(t, err)
				return
			}
			for _, target := range tt.wantIs {
				require.ErrorIs(t, err, target)
			}
		})
	}
	f := migrate.Failure{Record: migrate.Record{ID: "7", Key: "uploads/x"}, Err: boom}
	require.Equal(t, `record "7" (key "uploads/x"): boom`, f.Error())
}
