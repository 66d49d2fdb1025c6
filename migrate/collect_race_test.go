package migrate_test

import (
	"context"
	"database/sql"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/fsstore"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/internal/testutil/faulty"
	"github.com/casa-go/casa/migrate"
	"github.com/casa-go/casa/migrate/sqlmigrator"
)

// raceMinAge is the grace period of the race tests; the old orphan is
// twice as old.
const raceMinAge = time.Hour

// gcRig is one application: a SQLite table of attachments (the records),
// an fsstore behind a faulty wrapper (to pause calls), a Store whose Put
// touches through the sqlmigrator Guard, as replicas would have.
type gcRig struct {
	t      *testing.T
	dir    string
	db     *sql.DB
	fs     *fsstore.Backend
	faulty *faulty.Backend
	m      *sqlmigrator.Migrator
	store  *cas.Store
	nextID int
}

// newGCRig builds a rig. staged picks the Store's Put path: staged (the
// create-only Commit finds the blob) or spooled (Has finds it).
func newGCRig(t *testing.T, staged, hook bool) *gcRig {
	t.Helper()
	dir := t.TempDir()
	fs, err := fsstore.New(filepath.Join(dir, "blobs"))
	require.NoError(t, err)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "app.db")+"?_pragma=busy_timeout(20000)&_pragma=journal_mode(WAL)")
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(4)
	_, err = db.Exec("CREATE TABLE attachments (id INTEGER PRIMARY KEY, storage_key TEXT)")
	require.NoError(t, err)
	m, err := sqlmigrator.New(db, sqlmigrator.Table{Name: "attachments", IDColumn: "id", KeyColumn: "storage_key"})
	require.NoError(t, err)
	f := faulty.New(fs)
	var b cas.Backend = f
	if staged {
		b = f.Staging()
	}
	var opts []cas.Option
	if hook {
		opts = append(opts, cas.WithPutHook(migrate.PutHook(m)))
	}
	return &gcRig{t: t, dir: dir, db: db, fs: fs, faulty: f, m: m, store: cas.New(b, opts...)}
}

// orphan stores data the way an upload whose row never came would have,
// without touching it, and makes it older than raceMinAge.
func (r *gcRig) orphan(data []byte) cas.Hash {
	r.t.Helper()
	h := cas.SumBytes(data)
	require.NoError(r.t, r.fs.Put(r.t.Context(), h.Key(), strings.NewReader(string(data)), int64(len(data)), cas.PutOptions{SHA256: h, IfAbsent: true}))
	old := time.Now().Add(-2 * raceMinAge)
	require.NoError(r.t, os.Chtimes(filepath.Join(r.dir, "blobs", "cas", h.String()[:2], h.String()), old, old))
	return h
}

// commitRow inserts the record that references key.
func (r *gcRig) commitRow(key string) {
	r.t.Helper()
	r.nextID++
	_, err := r.db.Exec("INSERT INTO attachments (id, storage_key) VALUES (?, ?)", r.nextID, key)
	require.NoError(r.t, err)
}

// collect runs one collection.
func (r *gcRig) collect() migrate.CollectReport {
	r.t.Helper()
	rep, err := migrate.Collect(r.t.Context(), r.store, r.m, migrate.CollectOptions{MinAge: raceMinAge})
	require.NoError(r.t, err)
	return rep
}

// requireIntact checks that every row's blob is stored with its bytes, and
// still is after another collection.
func (r *gcRig) requireIntact(want map[string][]byte) {
	r.t.Helper()
	check := func(when string) {
		rows, err := r.db.Query("SELECT storage_key FROM attachments")
		require.NoError(r.t, err)
		defer rows.Close()
		n := 0
		for rows.Next() {
			var k string
			require.NoError(r.t, rows.Scan(&k))
			h, err := cas.ParseKey(k)
			require.NoError(r.t, err)
			require.NoError(r.t, r.store.Verify(r.t.Context(), h), "%s: the blob of a committed row is lost", when)
			require.Contains(r.t, want, k)
			n++
		}
		require.NoError(r.t, rows.Err())
		require.Equal(r.t, len(want), n)
	}
	check("after the race")
	rep := r.collect()
	require.Zero(r.t, rep.Deleted, "a later collection deletes nothing referenced")
	check("after a later collection")
}

// gate pauses a goroutine at a point until released, and tells the test
// it got there.
type gate struct {
	reached, release chan struct{}
}

func newGate() *gate { return &gate{reached: make(chan struct{}), release: make(chan struct{})} }

func (g *gate) wait() { close(g.reached); <-g.release }

// blockingReader yields half of data, then waits at a gate, then the rest:
// an upload whose body is still arriving.
type blockingReader struct {
	data []byte
	off  int
	g    *gate
}

func (b *blockingReader) Read(p []byte) (int, error) {
	if b.off == len(b.data) {
		return 0, io.EOF
	}
	if b.off == len(b.data)/2 && b.g != nil {
		b.g.wait()
		b.g = nil
	}
	end := len(b.data)
	if b.off < len(b.data)/2 {
		end = len(b.data) / 2
	}
	n := copy(p, b.data[b.off:end])
	b.off += n
	return n, nil
}

// TestCollectRaceUploadNeverLost: an upload committed while a collection
// runs is never lost, whatever point of the upload's life the collection
// starts at, for an upload that deduplicates against an orphan older than
// MinAge (the hard case: age does not protect it) and for a fresh one, on
// both of the Store's Put paths. Each upload is paused at its point by a
// fault-injection hook on the real fsstore (faulty.SetBefore), a body that
// stops half way, or between its steps; the collection runs to the end
// meanwhile, then the upload finishes.
func TestCollectRaceUploadNeverLost(t *testing.T) {
	t.Parallel()
	type point struct {
		name string
		// run performs the upload of data with a collection at the point,
		// and returns the Put result and the collection's report.
		run func(r *gcRig, data []byte, staged bool) (cas.PutResult, migrate.CollectReport)
	}
	upload := func(r *gcRig, body io.Reader) cas.PutResult {
		res, err := r.store.Put(t.Context(), body)
		require.NoError(t, err)
		return res
	}
	points := []point{
		{"before Put", func(r *gcRig, data []byte, _ bool) (cas.PutResult, migrate.CollectReport) {
			rep := r.collect()
			res := upload(r, strings.NewReader(string(data)))
			r.commitRow(res.Hash.Key())
			return res, rep
		}},
		{"during Put, body arriving", func(r *gcRig, data []byte, _ bool) (cas.PutResult, migrate.CollectReport) {
			g := newGate()
			done := make(chan cas.PutResult)
			go func() { done <- upload(r, &blockingReader{data: data, g: g}) }()
			<-g.reached
			rep := r.collect()
			close(g.release)
			res := <-done
			r.commitRow(res.Hash.Key())
			return res, rep
		}},
		{"during Put, storing (after the touch)", func(r *gcRig, data []byte, _ bool) (cas.PutResult, migrate.CollectReport) {
			g := newGate()
			// The Put's dedup check, on both paths (the staged Put Stats
			// before it commits, so that it can repair a corrupt blob).
			method := faulty.MethodStat
			key := cas.SumBytes(data).Key()
			r.faulty.SetBefore(method, func(_ context.Context, k string) error {
				if k == key {
					r.faulty.SetBefore(method, nil)
					g.wait()
				}
				return nil
			})
			done := make(chan cas.PutResult)
			go func() { done <- upload(r, strings.NewReader(string(data))) }()
			<-g.reached
			rep := r.collect()
			close(g.release)
			res := <-done
			r.commitRow(res.Hash.Key())
			return res, rep
		}},
		{"after Put, before the row commits", func(r *gcRig, data []byte, _ bool) (cas.PutResult, migrate.CollectReport) {
			res := upload(r, strings.NewReader(string(data)))
			rep := r.collect()
			r.commitRow(res.Hash.Key())
			return res, rep
		}},
		{"after the row commits", func(r *gcRig, data []byte, _ bool) (cas.PutResult, migrate.CollectReport) {
			res := upload(r, strings.NewReader(string(data)))
			r.commitRow(res.Hash.Key())
			return res, r.collect()
		}},
		{"client told already stored, before its row commits", func(r *gcRig, data []byte, _ bool) (cas.PutResult, migrate.CollectReport) {
			// An upload endpoint's HEAD or batch check: touch, then look.
			h := cas.SumBytes(data)
			require.NoError(t, r.store.Touch(t.Context(), h))
			ok, err := r.store.Has(t.Context(), h)
			require.NoError(t, err)
			rep := r.collect()
			if !ok {
				upload(r, strings.NewReader(string(data)))
			}
			r.commitRow(h.Key())
			return cas.PutResult{Hash: h, Size: int64(len(data)), Deduplicated: ok}, rep
		}},
	}
	for _, staged := range []bool{true, false} {
		path := map[bool]string{true: "staged", false: "spooled"}[staged]
		for _, p := range points {
			t.Run(path+"/"+p.name, func(t *testing.T) {
				t.Parallel()
				r := newGCRig(t, staged, true)
				dup := testutil.Bytes(1, 3000)
				fresh := testutil.Bytes(2, 3000)
				other := r.orphan(testutil.Bytes(3, 100)) // an orphan nobody wants: always collected
				h := r.orphan(dup)

				res, rep := p.run(r, dup, staged)
				require.Equal(t, h, res.Hash)
				if p.name == "before Put" || p.name == "during Put, body arriving" {
					// The collection finished before the upload relied on
					// the orphan: it is gone, and the upload stored it again.
					require.Equal(t, 2, rep.Deleted, "%+v", rep)
					require.False(t, res.Deduplicated, "the upload wrote the bytes again")
				} else {
					require.Equal(t, 1, rep.Deleted, "only the unwanted orphan goes: %+v", rep)
					require.True(t, res.Deduplicated, "the upload relied on the old orphan")
				}
				ok, err := r.store.Has(t.Context(), other)
				require.NoError(t, err)
				require.False(t, ok)

				res2, _ := p.run(r, fresh, staged)
				r.requireIntact(map[string][]byte{h.Key(): dup, res2.Hash.Key(): fresh})
			})
		}
	}
}

// TestCollectRaceTouchWaitsForDelete: a collection paused inside its
// delete of an old orphan (the Guard holds the key) makes an upload of the
// same bytes wait in its touch; once the delete is done the upload stores
// the bytes again instead of deduplicating against a deleted blob.
func TestCollectRaceTouchWaitsForDelete(t *testing.T) {
	t.Parallel()
	for _, staged := range []bool{true, false} {
		t.Run(map[bool]string{true: "staged", false: "spooled"}[staged], func(t *testing.T) {
			t.Parallel()
			r := newGCRig(t, staged, true)
			data := testutil.Bytes(4, 5000)
			h := r.orphan(data)
			g := newGate()
			r.faulty.SetBefore(faulty.MethodDelete, func(_ context.Context, k string) error {
				if k == h.Key() {
					g.wait()
				}
				return nil
			})
			collected := make(chan migrate.CollectReport)
			go func() { collected <- r.collect() }()
			<-g.reached

			uploaded := make(chan cas.PutResult)
			go func() {
				res, err := r.store.Put(context.Background(), strings.NewReader(string(data)))
				require.NoError(t, err)
				uploaded <- res
			}()
			select {
			case <-uploaded:
				t.Fatal("the upload finished while the collector held its blob")
			case <-time.After(300 * time.Millisecond):
			}
			close(g.release)
			rep := <-collected
			require.Equal(t, 1, rep.Deleted)
			res := <-uploaded
			require.False(t, res.Deduplicated, "the touch waited for the delete, so the upload stored the bytes")
			r.commitRow(h.Key())
			r.requireIntact(map[string][]byte{h.Key(): data})
		})
	}
}

// TestCollectRaceMigrationDeduplicatesAgainstOldOrphan: a migration whose
// legacy object holds the bytes of an old orphan deduplicates against it;
// a collection run between its Put and its commit keeps the orphan.
func TestCollectRaceMigrationDeduplicatesAgainstOldOrphan(t *testing.T) {
	t.Parallel()
	r := newGCRig(t, true, true)
	data := testutil.Bytes(5, 2000)
	h := r.orphan(data)
	require.NoError(t, r.fs.Put(t.Context(), "uploads/legacy.bin", strings.NewReader(string(data)), int64(len(data)), cas.PutOptions{}))
	_, err := r.db.Exec("INSERT INTO attachments (id, storage_key) VALUES (100, 'uploads/legacy.bin')")
	require.NoError(t, err)

	var rep migrate.CollectReport
	m := pausingCommit{Migrator: r.m, before: func() { rep = r.collect() }}
	run, err := migrate.Run(t.Context(), r.store, m, migrate.Options{})
	require.NoError(t, err)
	require.NoError(t, run.Err())
	require.Equal(t, 1, run.Deduplicated)
	require.Equal(t, 1, rep.Touched, "the collection between Put and commit kept the blob: %+v", rep)
	require.Zero(t, rep.Deleted)
	r.requireIntact(map[string][]byte{h.Key(): data})
}

// pausingCommit wraps a real Migrator and runs before ahead of each
// Commit.
type pausingCommit struct {
	*sqlmigrator.Migrator
	before func()
}

func (p pausingCommit) Commit(ctx context.Context, rec migrate.Record, newKey string) error {
	p.before()
	return p.Migrator.Commit(ctx, rec, newKey)
}

// TestCollectRaceWithoutHookLosesTheBlob is the control: a Store without
// the put hook deduplicates against an old orphan without a trace, and a
// collection between its Put and its row's commit deletes the blob the
// row then points at. The hook is what the other race tests depend on.
func TestCollectRaceWithoutHookLosesTheBlob(t *testing.T) {
	t.Parallel()
	r := newGCRig(t, true, false)
	data := testutil.Bytes(6, 1000)
	h := r.orphan(data)
	res, err := r.store.Put(t.Context(), strings.NewReader(string(data)))
	require.NoError(t, err)
	require.True(t, res.Deduplicated)
	rep := r.collect()
	require.Equal(t, 1, rep.Deleted)
	r.commitRow(h.Key())
	ok, err := r.store.Has(t.Context(), h)
	require.NoError(t, err)
	require.False(t, ok, "without the hook the committed row's blob is gone")
}
