package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"
	_ "modernc.org/sqlite"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/s3store"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/migrate"
	"github.com/casa-go/casa/migrate/sqlmigrator"
)

// migrateSection: migrate.Run over a SQLite table through sqlmigrator, from
// legacy keys to CAS keys on the S3 test server with 10 ms of latency on
// every request, at concurrency 1, 4 and 16.
func migrateSection(cfg *config) ([]row, error) {
	n := 2000
	if cfg.quick {
		n = 200
	}
	const latency = 10 * time.Millisecond
	var rows []row
	var c1 float64
	for _, c := range []int{1, 4, 16} {
		rate, err := migrateOnce(cfg, n, c, latency)
		if err != nil {
			return rows, fmt.Errorf("concurrency %d: %w", c, err)
		}
		r := row{
			Name:   fmt.Sprintf("migrate.Run, %d records of 4 KiB, S3 test server +%s per request, concurrency %d", n, latency, c),
			Figure: fmt.Sprintf("%.1f records/s", rate),
		}
		if c == 1 {
			c1 = rate
		} else {
			r.Peer = fmt.Sprintf("concurrency 1: %.1f records/s", c1)
			r.Ratio = rate / c1
		}
		if c == 16 {
			r.Target = ">= 8.0x"
			r.Pass = r.Ratio >= 8
		}
		rows = append(rows, r)
	}
	return rows, nil
}

func migrateOnce(cfg *config, n, concurrency int, latency time.Duration) (float64, error) {
	ctx := context.Background()
	srv, err := startS3(cfg, latency)
	if err != nil {
		return 0, err
	}
	defer srv.Close()
	backend := s3store.New(srv.Client, srv.Bucket)

	db, err := sql.Open("sqlite", "file:"+filepath.Join(cfg.tmp, fmt.Sprintf("migrate-c%d.db", concurrency))+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE attachments (id INTEGER PRIMARY KEY, storage_key TEXT)`); err != nil {
		return 0, err
	}
	tx, err := db.Begin()
	if err != nil {
		return 0, err
	}
	for i := range n {
		if _, err := tx.Exec(`INSERT INTO attachments (id, storage_key) VALUES (?, ?)`, i+1, legacyKey(i)); err != nil {
			tx.Rollback()
			return 0, err
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	// Seed the legacy objects through the same client, 64 at a time.
	var g errgroup.Group
	g.SetLimit(64)
	for i := range n {
		g.Go(func() error {
			data := testutil.Bytes(uint64(i)+1000, 4<<10)
			return backend.Put(ctx, legacyKey(i), bytes.NewReader(data), int64(len(data)), cas.PutOptions{})
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}

	m, err := sqlmigrator.New(db, sqlmigrator.Table{Name: "attachments", IDColumn: "id", KeyColumn: "storage_key"})
	if err != nil {
		return 0, err
	}
	start := time.Now()
	rep, err := migrate.Run(ctx, cas.New(backend), m, migrate.Options{Concurrency: concurrency})
	took := time.Since(start)
	if err != nil {
		return 0, err
	}
	if err := rep.Err(); err != nil {
		return 0, err
	}
	if rep.Migrated != n {
		return 0, fmt.Errorf("migrated %d of %d records", rep.Migrated, n)
	}
	var left int
	if err := db.QueryRow(`SELECT count(*) FROM attachments WHERE storage_key NOT LIKE 'cas/%'`).Scan(&left); err != nil {
		return 0, err
	}
	if left != 0 {
		return 0, fmt.Errorf("%d rows still on legacy keys", left)
	}
	return float64(n) / took.Seconds(), nil
}

func legacyKey(i int) string {
	return fmt.Sprintf("legacy/%08x-0000-4000-8000-%012x", i, i)
}
