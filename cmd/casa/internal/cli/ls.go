package cli

import (
	"context"
	"encoding/json"
	"flag"

	"github.com/casa-go/casa/cas"
)

func lsCommand() command {
	return command{
		name:  "ls",
		args:  "",
		short: "list the blobs, with sizes",
		long: `Ls lists every blob in the store, "HASH SIZE" per line, in key order,
and a total on standard error. With -all it lists every object of the
backend instead ("KEY SIZE"): legacy keys and derived data (thumbnails/)
too, optionally only those under -prefix. With -json it writes one JSON
object per line (JSON Lines), so that a listing of any size streams.`,
		setup: func(fs *flag.FlagSet, e *env) func(context.Context, []string) error {
			e.addStoreFlags(fs)
			all := fs.Bool("all", false, "list every object of the backend, not only blobs")
			prefix := fs.String("prefix", "", "with -all, only keys starting with this `prefix`")
			return func(ctx context.Context, args []string) error {
				if len(args) != 0 {
					return usagef("ls takes no arguments, got %q", args)
				}
				if *prefix != "" && !*all {
					return usagef("-prefix needs -all")
				}
				store, err := e.openStore(ctx)
				if err != nil {
					return err
				}
				seq := store.Walk(ctx)
				if *all {
					seq = cas.Checked(store.Backend()).List(ctx, *prefix)
				}
				enc := json.NewEncoder(e.Stdout)
				var n int
				var total int64
				for info, err := range seq {
					if err != nil {
						return err
					}
					n++
					total += info.Size
					switch {
					case e.json:
						if err := enc.Encode(newObjectJSON(info)); err != nil {
							return err
						}
					case *all:
						e.printf("%s %d\n", info.Key, info.Size)
					default:
						h, _ := cas.ParseKey(info.Key)
						e.printf("%s %d\n", h, info.Size)
					}
				}
				if !e.json {
					e.notef("%d objects, %d bytes (%s)", n, total, formatBytes(total))
				}
				return nil
			}
		},
	}
}
