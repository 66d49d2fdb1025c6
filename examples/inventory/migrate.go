package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/migrate"
	"github.com/casa-go/casa/migrate/sqlmigrator"
)

// MigrationResult is what the startup migration did.
type MigrationResult struct {
	// Report is migrate.Run's report.
	Report migrate.Report
	// Cleanup is migrate.Cleanup's report; nil unless cleanup ran.
	Cleanup *migrate.CleanupReport
}

// startupMigration moves every attachment still stored under a legacy key
// to its CAS key, blocking, and writes progress lines to progress. When a
// record fails it logs each failure and returns an error: the app must not
// serve a half-migrated database. With cleanup, it then deletes the legacy
// objects no row references any more; it refuses (an error) while the
// migration is not final, which final declares after a complete migration.
// Every commit is journaled (attachments_casa_journal), so that until it is
// final the migration can be reverted.
func startupMigration(ctx context.Context, m *sqlmigrator.Migrator, store *cas.Store, cleanup, final bool, progress io.Writer, log *slog.Logger) (MigrationResult, error) {
	var res MigrationResult
	if progress == nil {
		progress = io.Discard
	}
	last := time.Now()
	report, err := migrate.Run(ctx, store, m, migrate.Options{
		Logger: log,
		Progress: func(p migrate.Progress) {
			// One line every half second, and the last one.
			if p.Done < p.Total && time.Since(last) < 500*time.Millisecond {
				return
			}
			last = time.Now()
			fmt.Fprintf(progress, "migrate: %d/%d attachments, %d bytes, %s\n",
				p.Done, p.Total, p.Bytes, p.Elapsed.Round(time.Millisecond))
		},
	})
	res.Report = report
	fmt.Fprintf(progress, "migrate: %d pending, %d migrated (%d already stored), %d failed, %d bytes in %s\n",
		report.Seen, report.Migrated, report.Deduplicated, report.Failed, report.Bytes, report.Elapsed.Round(time.Millisecond))
	if err != nil {
		return res, fmt.Errorf("inventory: migration: %w", err)
	}
	if err := report.Err(); err != nil {
		for _, f := range report.Failures {
			log.Error("attachment not migrated", "id", f.Record.ID, "key", f.Record.Key, "err", f.Err)
		}
		return res, fmt.Errorf("inventory: refusing to start, %d attachments are still on legacy keys: %w", report.Failed+report.ConflictsPending, err)
	}
	if final {
		if err := migrate.Finalize(ctx, m); err != nil {
			return res, fmt.Errorf("inventory: final: %w", err)
		}
		fmt.Fprintln(progress, "migrate: marked final; it can no longer be reverted")
	}
	if !cleanup {
		return res, nil
	}
	isFinal, err := m.Final(ctx)
	if err != nil {
		return res, fmt.Errorf("inventory: cleanup: %w", err)
	}
	if !isFinal {
		return res, errors.New("inventory: cleanup refused: the migration is not final (check the migrated data, then pass -final with -cleanup)")
	}
	// Uploads only ever write CAS keys, which Cleanup never deletes, so no
	// grace period is needed here as long as no pre-CAS version of the app
	// is still writing to the same storage.
	cr, err := migrate.Cleanup(ctx, store, m, migrate.CleanupOptions{Logger: log})
	res.Cleanup = &cr
	fmt.Fprintf(progress, "cleanup: %d legacy objects deleted, %d kept of %d scanned\n", cr.Deleted, cr.Kept, cr.Scanned)
	if err != nil {
		return res, fmt.Errorf("inventory: cleanup: %w", err)
	}
	return res, nil
}
