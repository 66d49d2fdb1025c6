package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/migrate"
	"github.com/casa-go/casa/migrate/sqlmigrator"
)

func migrateCommand() command {
	return command{
		name:  "migrate",
		args:  "",
		short: "move a table's legacy keys to CAS keys (dry run, revert, final)",
		long: `Migrate reads every row of -table whose -key-column holds a legacy key
(anything but cas/<hex>), copies that object of the store into the store
under its hash, and points the row at the new key, one row at a time and
journaled (sqlmigrator), so a rerun finishes an interrupted or partly
failed run. Legacy objects are never touched (see cleanup). They are read
from the store itself, or with -source-dir from another store-root
directory (legacy files on disk into a store on S3, say). Each blob it
stores is first touched through the collector's guard (the <table>_casa_gc
table, created on first use), so a gc running at the same time never
deletes a blob a row is about to point at.

  -dry-run   read and hash every pending object; write and commit nothing
  -final     after a complete run, mark the migration final: it can no
             longer be reverted, and cleanup may delete the legacy objects
  -revert    point every migrated row back at its legacy key (the journal),
             newest first; stop the application's migration while it runs

A row whose commit finds it changed by another writer (an application
replica migrating at the same time, say) is a conflict, not a failure:
counted, not listed. Exit code 1 when any row failed (each is listed), or
when a conflicting row is still on a legacy key after the run (rerun to
migrate it), so a deployment script can stop.`,
		setup: func(fs *flag.FlagSet, e *env) func(context.Context, []string) error {
			e.addStoreFlags(fs)
			e.addDBFlags(fs)
			sourceDir := fs.String("source-dir", "", "read legacy objects from this store-root `directory` instead of the store")
			dryRun := fs.Bool("dry-run", false, "say what would be migrated; write and commit nothing")
			concurrency := fs.Int("concurrency", migrate.DefaultConcurrency, "migrate this many rows at once")
			final := fs.Bool("final", false, "after a complete migration, mark it final (no revert)")
			revert := fs.Bool("revert", false, "revert the migration: rows back to their legacy keys")
			compress := addCompressFlag(fs)
			return func(ctx context.Context, args []string) error {
				switch {
				case len(args) != 0:
					return usagef("migrate takes no arguments, got %q", args)
				case *concurrency < 1:
					return usagef("-concurrency must be at least 1, not %d", *concurrency)
				case *revert && (*final || *dryRun):
					return usagef("-revert runs alone: not with -final or -dry-run")
				case *final && *dryRun:
					return usagef("-final cannot be a dry run")
				}
				m, db, err := e.openMigrator(ctx)
				if err != nil {
					return err
				}
				defer db.Close()
				// Every Put touches its blob through the collector's guard
				// (the <table>_casa_gc table), so that a gc running
				// meanwhile, here or in the application, never deletes a
				// blob a row is about to point at.
				store, err := e.openNewStore(ctx, append(compress(), cas.WithPutHook(migrate.PutHook(m)))...)
				if err != nil {
					return err
				}
				source, err := openSourceDir(*sourceDir)
				if err != nil {
					return err
				}
				if *revert {
					return runRevert(ctx, e, store, source, m)
				}
				return runMigrate(ctx, e, store, source, m, *dryRun, *concurrency, *final)
			}
		},
	}
}

// failureJSON is a record that could not be migrated or reverted.
type failureJSON struct {
	ID    string `json:"id"`
	Key   string `json:"key"`
	Error string `json:"error"`
}

// migrateJSON is migrate's -json output.
type migrateJSON struct {
	DryRun       bool `json:"dry_run"`
	Seen         int  `json:"seen"`
	Migrated     int  `json:"migrated"`
	Deduplicated int  `json:"deduplicated"`
	Conflicts    int  `json:"conflicts"`
	// ConflictsPending: conflicting rows still on a legacy key.
	ConflictsPending int           `json:"conflicts_pending"`
	Failed           int           `json:"failed"`
	Bytes            int64         `json:"bytes"`
	Seconds          float64       `json:"seconds"`
	Final            bool          `json:"final"`
	Failures         []failureJSON `json:"failures"`
}

func runMigrate(ctx context.Context, e *env, store *cas.Store, source cas.Backend, m *sqlmigrator.Migrator, dryRun bool, concurrency int, final bool) error {
	what := "migrate"
	if dryRun {
		what = "migrate (dry run)"
	}
	prog := e.newProgress(what, "rows", -1)
	rep, err := migrate.Run(ctx, store, m, migrate.Options{
		Source:      source,
		Concurrency: concurrency,
		DryRun:      dryRun,
		Progress: func(p migrate.Progress) {
			prog.setTotal(p.Total)
			prog.set(p.Done, p.Bytes)
		},
	})
	if err != nil {
		prog.stop()
		return err
	}
	prog.finish()
	out := migrateJSON{DryRun: dryRun, Seen: rep.Seen, Migrated: rep.Migrated, Deduplicated: rep.Deduplicated,
		Conflicts: rep.Conflicts, ConflictsPending: rep.ConflictsPending, Failed: rep.Failed, Bytes: rep.Bytes, Seconds: rep.Elapsed.Seconds(), Failures: []failureJSON{}}
	for _, f := range rep.Failures {
		out.Failures = append(out.Failures, failureJSON{ID: f.Record.ID, Key: f.Record.Key, Error: oneLine(f.Err.Error())})
	}
	runErr := rep.Err()
	if final && runErr == nil {
		if err := migrate.Finalize(ctx, m); err != nil {
			return err
		}
		out.Final = true
	}
	if e.json {
		if err := e.printJSON(out); err != nil {
			return err
		}
	} else {
		for _, f := range out.Failures {
			e.printf("FAILED id=%s key=%q: %s\n", f.ID, f.Key, f.Error)
		}
		verb := "migrated"
		if dryRun {
			verb = "would migrate"
		}
		conflicts := fmt.Sprintf("%d conflicts", rep.Conflicts)
		if rep.ConflictsPending > 0 {
			conflicts += fmt.Sprintf(" (%d still pending: rerun)", rep.ConflictsPending)
		}
		e.printf("%s %d of %d rows (%d deduplicated, %s read), %s, %d failed, in %v\n",
			verb, rep.Migrated, rep.Seen, rep.Deduplicated, formatBytes(rep.Bytes), conflicts, rep.Failed, rep.Elapsed.Round(time.Millisecond))
		if out.Final {
			e.printf("the migration is final: it can no longer be reverted; cleanup may delete legacy objects\n")
		}
	}
	if runErr != nil {
		if final {
			return fmt.Errorf("not marked final: %w", runErr)
		}
		return runErr
	}
	return nil
}

// revertJSON is migrate -revert's -json output.
type revertJSON struct {
	Reverted int           `json:"reverted"`
	Skipped  []failureJSON `json:"skipped"`
	Failed   int           `json:"failed"`
	Failures []failureJSON `json:"failures"`
	Seconds  float64       `json:"seconds"`
}

func runRevert(ctx context.Context, e *env, store *cas.Store, source cas.Backend, m *sqlmigrator.Migrator) error {
	rep, err := migrate.Revert(ctx, store, m, migrate.RevertOptions{Source: source})
	if errors.Is(err, migrate.ErrFinal) {
		return errors.New("the migration is final: it can no longer be reverted")
	}
	if err != nil {
		return err
	}
	out := revertJSON{Reverted: rep.Reverted, Failed: rep.Failed, Seconds: rep.Elapsed.Seconds(),
		Skipped: []failureJSON{}, Failures: []failureJSON{}}
	for _, s := range rep.Skipped {
		out.Skipped = append(out.Skipped, failureJSON{ID: s.Entry.ID, Key: s.Entry.OldKey, Error: oneLine(s.Reason.Error())})
	}
	for _, f := range rep.Failures {
		out.Failures = append(out.Failures, failureJSON{ID: f.Record.ID, Key: f.Record.Key, Error: oneLine(f.Err.Error())})
	}
	if e.json {
		if err := e.printJSON(out); err != nil {
			return err
		}
	} else {
		for _, s := range out.Skipped {
			e.printf("SKIPPED id=%s key=%q: %s\n", s.ID, s.Key, s.Error)
		}
		for _, f := range out.Failures {
			e.printf("FAILED id=%s key=%q: %s\n", f.ID, f.Key, f.Error)
		}
		e.printf("reverted %d rows, %d skipped, %d failed\n", rep.Reverted, len(rep.Skipped), rep.Failed)
	}
	if rep.Failed > 0 {
		return fmt.Errorf("%d rows could not be reverted (rerun to retry)", rep.Failed)
	}
	return nil
}
