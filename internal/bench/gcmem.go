package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"iter"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/migrate"
	"github.com/casa-go/casa/migrate/sqlmigrator"
)

// gcMemSection: peak heap growth of migrate.Cleanup and migrate.Collect
// over a SQLite table of 10,000 rows and of 1,000,000 (100,000 with
// -quick), against a synthetic listing of as many objects, generated on
// the fly in key order so that the Backend itself holds nothing. The
// figure is the peak of live plus not yet collected heap over the
// baseline; the target is a ratio close to 1: memory that does not grow
// with the table.
func gcMemSection(cfg *config) ([]row, error) {
	small, large := 10_000, 1_000_000
	if cfg.quick {
		large = 100_000
	}
	type figure struct {
		heap uint64
		took time.Duration
	}
	measure := func(n int, keep bool) (cleanup, collect figure, err error) {
		db, m, err := gcMemTable(cfg, n)
		if err != nil {
			return cleanup, collect, err
		}
		defer db.Close()
		ctx := context.Background()

		// Cleanup: n legacy objects, none referenced (every row is on a
		// CAS key), all deleted; OnDelete counts them.
		legacy := &synthetic{n: n, key: func(i int) string { return fmt.Sprintf("uploads/%09d", i) }}
		var (
			deleted atomic.Int64
			kept    []string // keep: what CleanupReport.Keys used to hold
		)
		onDelete := func(k string) {
			deleted.Add(1)
			if keep {
				kept = append(kept, k)
			}
		}
		h := startHeapSampler()
		t0 := time.Now()
		crep, err := migrate.Cleanup(ctx, cas.New(legacy), m, migrate.CleanupOptions{OnDelete: onDelete})
		cleanup = figure{took: time.Since(t0), heap: h.Stop()}
		if err != nil {
			return cleanup, collect, fmt.Errorf("cleanup: %w", err)
		}
		if crep.Deleted != n || deleted.Load() != int64(n) {
			return cleanup, collect, fmt.Errorf("cleanup deleted %d (OnDelete %d) of %d", crep.Deleted, deleted.Load(), n)
		}
		if keep {
			return cleanup, collect, nil
		}

		// Collect: n blobs listed, n referenced by the rows, plus one
		// unreferenced orphan in 100, deleted through the Guard.
		blobs := &synthetic{n: n + n/100, key: func(i int) string { return gcMemBlobKey(i) }}
		h = startHeapSampler()
		t0 = time.Now()
		rep, err := migrate.Collect(ctx, cas.New(blobs), m, migrate.CollectOptions{MinAge: time.Hour})
		collect = figure{took: time.Since(t0), heap: h.Stop()}
		if err != nil {
			return cleanup, collect, fmt.Errorf("collect: %w", err)
		}
		if rep.Referenced != n || rep.Deleted != n/100 {
			return cleanup, collect, fmt.Errorf("collect: %d referenced (want %d), %d deleted (want %d)", rep.Referenced, n, rep.Deleted, n/100)
		}
		return cleanup, collect, nil
	}
	cs, gs, err := measure(small, false)
	if err != nil {
		return nil, err
	}
	cl, gl, err := measure(large, false)
	if err != nil {
		return nil, err
	}
	old, _, err := measure(large, true)
	if err != nil {
		return nil, err
	}
	var rows []row
	for _, r := range []struct {
		name         string
		small, large figure
	}{{"migrate.Cleanup (every legacy object deleted, keys to OnDelete)", cs, cl}, {"migrate.Collect (1% orphans deleted through the Guard)", gs, gl}} {
		ratio := float64(r.large.heap) / float64(max(r.small.heap, 1))
		rows = append(rows, row{
			Name:   fmt.Sprintf("%s: peak heap at %d rows and objects (%s)", r.name, large, r.large.took.Round(time.Millisecond)),
			Figure: mib(r.large.heap),
			Peer:   fmt.Sprintf("%d rows: %s (%s)", small, mib(r.small.heap), r.small.took.Round(time.Millisecond)),
			Ratio:  ratio,
			Target: "<= 2.0",
			Pass:   ratio <= 2.0,
		})
	}
	rows = append(rows, row{
		Name:   fmt.Sprintf("for comparison: the same Cleanup at %d rows keeping every deleted key in a slice, as CleanupReport.Keys did", large),
		Figure: mib(old.heap),
		Peer:   "with OnDelete: " + mib(cl.heap),
		Ratio:  float64(old.heap) / float64(max(cl.heap, 1)),
	})
	return rows, nil
}

// gcMemTable creates a SQLite table of n rows on the keys of gcMemBlobKey
// that are not orphans, with an index on the key column.
func gcMemTable(cfg *config, n int) (*sql.DB, *sqlmigrator.Migrator, error) {
	path := filepath.Join(cfg.tmp, fmt.Sprintf("gcmem-%d-%d.db", n, time.Now().UnixNano()))
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (*sql.DB, *sqlmigrator.Migrator, error) {
		db.Close()
		return nil, nil, err
	}
	if _, err := db.Exec(`CREATE TABLE attachments (id INTEGER PRIMARY KEY, storage_key TEXT)`); err != nil {
		return fail(err)
	}
	tx, err := db.Begin()
	if err != nil {
		return fail(err)
	}
	stmt, err := tx.Prepare(`INSERT INTO attachments (id, storage_key) VALUES (?, ?)`)
	if err != nil {
		tx.Rollback()
		return fail(err)
	}
	id := 0
	for i := 0; id < n; i++ {
		if gcMemOrphan(i) {
			continue
		}
		id++
		if _, err := stmt.Exec(id, gcMemBlobKey(i)); err != nil {
			tx.Rollback()
			return fail(err)
		}
	}
	stmt.Close()
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	if _, err := db.Exec(`CREATE INDEX attachments_key ON attachments (storage_key)`); err != nil {
		return fail(err)
	}
	m, err := sqlmigrator.New(db, sqlmigrator.Table{Name: "attachments", IDColumn: "id", KeyColumn: "storage_key"})
	if err != nil {
		return fail(err)
	}
	return db, m, nil
}

// gcMemBlobKey is the i-th blob key, in increasing key order: synthetic
// hex, not the hash of any bytes.
func gcMemBlobKey(i int) string { return fmt.Sprintf("%s%064x", cas.KeyPrefix, uint64(i)*0x9e3779b1) }

// gcMemOrphan reports whether blob i is one that no row references.
func gcMemOrphan(i int) bool { return i%101 == 100 }

// synthetic is a Backend whose List yields n keys generated on the fly, in
// key order, old enough for any grace period; Delete only counts. It
// holds nothing, so the heap measured is the caller's.
type synthetic struct {
	n       int
	key     func(i int) string
	deleted atomic.Int64
}

var errSynthetic = errors.New("synthetic backend: not stored")

// Stat describes a blob key as List does (Collect Stats each blob it is
// about to delete, for its size); other keys are not stored.
func (s *synthetic) Stat(_ context.Context, key string) (cas.Info, error) {
	if !cas.IsKey(key) {
		return cas.Info{}, fmt.Errorf("%w: %w", cas.ErrNotFound, errSynthetic)
	}
	return cas.Info{Key: key, Size: 100, StoredSize: 100, ModTime: time.Now().Add(-48 * time.Hour)}, nil
}

func (s *synthetic) Open(context.Context, string) (cas.Object, error) {
	return nil, fmt.Errorf("%w: %w", cas.ErrNotFound, errSynthetic)
}

func (s *synthetic) Put(context.Context, string, io.Reader, int64, cas.PutOptions) error {
	return errSynthetic
}

func (s *synthetic) Delete(context.Context, string) error { s.deleted.Add(1); return nil }

func (s *synthetic) List(ctx context.Context, prefix string) iter.Seq2[cas.Info, error] {
	old := time.Now().Add(-48 * time.Hour)
	return func(yield func(cas.Info, error) bool) {
		for i := range s.n {
			k := s.key(i)
			if !strings.HasPrefix(k, prefix) {
				continue
			}
			if !yield(cas.Info{Key: k, Size: 100, ModTime: old}, nil) {
				return
			}
		}
	}
}
