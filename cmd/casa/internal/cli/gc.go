package cli

import (
	"context"
	"flag"
	"time"

	"github.com/casa-go/casa/migrate"
)

func gcCommand() command {
	return command{
		name:  "gc",
		args:  "",
		short: "delete blobs no row references, with their thumbnails (garbage collection)",
		long: `Gc deletes the store's blobs (cas/<hex>) that no row of -table references,
with their derived objects (thumbnails/<hex>_<N>.jpg), and derived objects
whose blob is gone (migrate.Collect). It keeps every blob referenced by a
row, every blob modified less than -min-age ago (default 24h: uploads and
migrations in flight), and every blob a writer touched within -min-age. It
never deletes a legacy object (see cleanup). The store must hold only this
table's blobs: a blob that only another table references would be deleted.

The database is the collector's guard: a table <table>_casa_gc beside
-table (created on first use) records the blobs writers rely on. Each
deletion holds its key there, so an application whose Stores touch through
migrate.PutHook on the same database (examples/inventory does), and casa
migrate on it, may write, deduplicate and commit while gc runs: a blob is
either kept for them or deleted before they store it again. casa put has
no -db and does not touch: a put that deduplicates against an old
unreferenced blob while gc runs may see that blob deleted.

Run it with -dry-run first: it lists what it would delete ("would delete
KEY" lines, or "keys" with -json) and deletes nothing. A dry run judges by
age and references only: a blob a writer touches meanwhile may be listed
but would be kept.

Exit codes: 0 done (dry run included); 1 a database, listing or storage
error, or objects that could not be deleted (the others were); 2 bad
flags, -db or -dir.`,
		setup: func(fs *flag.FlagSet, e *env) func(context.Context, []string) error {
			e.addStoreFlags(fs)
			e.addDBFlags(fs)
			dryRun := fs.Bool("dry-run", false, "list what would be deleted; delete nothing")
			minAge := fs.Duration("min-age", DefaultMinAge, "keep blobs modified or touched less than this `duration` ago (must be positive)")
			return func(ctx context.Context, args []string) error {
				switch {
				case len(args) != 0:
					return usagef("gc takes no arguments, got %q", args)
				case *minAge <= 0:
					return usagef("-min-age must be positive, not %v: the grace period protects uploads in flight", *minAge)
				}
				m, db, store, err := e.openMigratorAndStore(ctx)
				if err != nil {
					return err
				}
				defer db.Close()
				onDelete, keys := e.deletions(*dryRun)
				what := "gc"
				if *dryRun {
					what = "gc (dry run)"
				}
				prog := e.newProgress(what, "blobs", -1)
				prog.bytesWhat = "deleted"
				if *dryRun {
					prog.bytesWhat = "deletable"
				}
				rep, err := migrate.Collect(ctx, store, m, migrate.CollectOptions{
					MinAge:   *minAge,
					Guard:    m,
					DryRun:   *dryRun,
					OnDelete: onDelete,
					Progress: func(p migrate.CollectReport) { prog.set(p.Scanned, p.Bytes) },
				})
				if err != nil && rep.Scanned == 0 && rep.DerivedScanned == 0 {
					prog.stop()
					return err
				}
				prog.finish()
				if e.json {
					if jerr := e.printJSON(gcJSON{DryRun: *dryRun, MinAge: minAge.String(), Scanned: rep.Scanned,
						Deleted: rep.Deleted, WouldDelete: rep.WouldDelete, Kept: rep.Kept, Referenced: rep.Referenced,
						Young: rep.Young, Touched: rep.Touched, Failed: rep.Failed, Bytes: rep.Bytes,
						DerivedScanned: rep.DerivedScanned, DerivedDeleted: rep.DerivedDeleted,
						Seconds: rep.Elapsed.Seconds(), Keys: *keys}); jerr != nil {
						return jerr
					}
				} else {
					n := rep.Deleted
					head := "deleted"
					if *dryRun {
						n, head = rep.WouldDelete, "dry run: would delete"
					}
					e.printf("%s %d of %d blobs (%s) and %d derived objects; kept %d (%d referenced, %d younger than %v, %d touched meanwhile, %d failed), in %v\n",
						head, n, rep.Scanned, formatBytes(rep.Bytes), rep.DerivedDeleted, rep.Kept, rep.Referenced, rep.Young,
						*minAge, rep.Touched, rep.Failed, rep.Elapsed.Round(time.Millisecond))
				}
				return err
			}
		},
	}
}

// gcJSON is gc's -json output.
type gcJSON struct {
	DryRun         bool     `json:"dry_run"`
	MinAge         string   `json:"min_age"`
	Scanned        int      `json:"scanned"`
	Deleted        int      `json:"deleted"`
	WouldDelete    int      `json:"would_delete"`
	Kept           int      `json:"kept"`
	Referenced     int      `json:"referenced"`
	Young          int      `json:"young"`
	Touched        int      `json:"touched"`
	Failed         int      `json:"failed"`
	Bytes          int64    `json:"bytes"`
	DerivedScanned int      `json:"derived_scanned"`
	DerivedDeleted int      `json:"derived_deleted"`
	Seconds        float64  `json:"seconds"`
	Keys           []string `json:"keys"`
}
