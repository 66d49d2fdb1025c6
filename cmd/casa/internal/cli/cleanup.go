package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/casa-go/casa/migrate"
)

// DefaultMinAge is cleanup's default grace period: objects younger than
// this are kept, so that uploads in flight survive.
const DefaultMinAge = 24 * time.Hour

func cleanupCommand() command {
	return command{
		name:  "cleanup",
		args:  "",
		short: "delete legacy objects no row points at any more (after migrate)",
		long: `Cleanup deletes the store's legacy objects (keys other than cas/<hex>
and derived data under thumbnails/) that no row of -table points at, once
the migration is complete. It refuses while any row still holds a legacy
key, keeps objects younger than -min-age (default 24h, for uploads in
flight), and, until the migration is final (migrate -final), keeps every
legacy object the journal could revert to. It never deletes a blob.

Run it with -dry-run first: it lists what it would delete and deletes
nothing. The store (or -source-dir, where the legacy objects are) must
hold only this table's objects, or give -prefix: any other legacy object
no row references would be deleted.`,
		setup: func(fs *flag.FlagSet, e *env) func(context.Context, []string) error {
			e.addStoreFlags(fs)
			e.addDBFlags(fs)
			sourceDir := fs.String("source-dir", "", "read legacy objects from this store-root `directory` instead of the store")
			dryRun := fs.Bool("dry-run", false, "list what would be deleted; delete nothing")
			minAge := fs.Duration("min-age", DefaultMinAge, "keep objects modified less than this `duration` ago (0: no grace period)")
			prefix := fs.String("prefix", "", "only consider keys starting with this `prefix`")
			return func(ctx context.Context, args []string) error {
				switch {
				case len(args) != 0:
					return usagef("cleanup takes no arguments, got %q", args)
				case *minAge < 0:
					return usagef("-min-age must not be negative, not %v", *minAge)
				}
				m, db, store, err := e.openMigratorAndStore(ctx)
				if err != nil {
					return err
				}
				defer db.Close()
				source, err := openSourceDir(*sourceDir)
				if err != nil {
					return err
				}
				onDelete, keys := e.deletions(*dryRun)
				rep, err := migrate.Cleanup(ctx, store, m, migrate.CleanupOptions{Source: source, Prefix: *prefix, MinAge: *minAge, DryRun: *dryRun, OnDelete: onDelete})
				if errors.Is(err, migrate.ErrIncomplete) {
					return fmt.Errorf("refused, nothing deleted: the migration is not complete (run migrate): %w", err)
				}
				if rep.Notes == nil {
					rep.Notes = []string{}
				}
				if e.json {
					if jerr := e.printJSON(cleanupJSON{DryRun: *dryRun, MinAge: minAge.String(), Scanned: rep.Scanned, Deleted: rep.Deleted,
						Kept: rep.Kept, Revertible: rep.Revertible, Keys: *keys, Notes: rep.Notes}); jerr != nil {
						return jerr
					}
				} else {
					for _, n := range rep.Notes {
						e.printf("note: %s\n", n)
					}
					if *dryRun {
						e.printf("dry run: would delete %d of %d objects, keep %d (min age %v)\n", rep.WouldDelete, rep.Scanned, rep.Kept, *minAge)
					} else {
						e.printf("deleted %d of %d objects, kept %d (min age %v)\n", rep.Deleted, rep.Scanned, rep.Kept, *minAge)
					}
				}
				return err
			}
		},
	}
}

// cleanupJSON is cleanup's -json output.
type cleanupJSON struct {
	DryRun     bool     `json:"dry_run"`
	MinAge     string   `json:"min_age"`
	Scanned    int      `json:"scanned"`
	Deleted    int      `json:"deleted"`
	Kept       int      `json:"kept"`
	Revertible int      `json:"revertible"`
	Keys       []string `json:"keys"`
	Notes      []string `json:"notes"`
}

// deletions returns the OnDelete of a cleanup or gc run and the list it
// fills: text output streams each key as it is reported ("deleted KEY",
// or "would delete KEY" in a dry run), so memory stays flat however many
// objects go; -json collects them for its one document.
func (e *env) deletions(dryRun bool) (onDelete func(key string), keys *[]string) {
	keys = &[]string{}
	if e.json {
		return func(k string) { *keys = append(*keys, k) }, keys
	}
	verb := "deleted"
	if dryRun {
		verb = "would delete"
	}
	return func(k string) { e.printf("%s %s\n", verb, k) }, keys
}
