package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/casa-go/casa/cas"
)

func statCommand() command {
	return command{
		name:  "stat",
		args:  "HASH",
		short: "show a blob's key, size and modification time",
		long: `Stat prints the blob HASH's key, size in bytes and modification time. It
reads no bytes (verify checks them). A missing blob is exit code 4.`,
		setup: func(fs *flag.FlagSet, e *env) func(context.Context, []string) error {
			e.addStoreFlags(fs)
			return func(ctx context.Context, args []string) error {
				if len(args) != 1 {
					return usagef("want exactly one HASH, got %d arguments", len(args))
				}
				h, err := parseHash(args[0])
				if err != nil {
					return err
				}
				store, err := e.openStore(ctx)
				if err != nil {
					return err
				}
				info, err := store.Stat(ctx, h)
				if errors.Is(err, cas.ErrNotFound) {
					return fmt.Errorf("%s: %w", h, errNotFound)
				}
				if err != nil {
					return err
				}
				obj := newObjectJSON(info)
				if e.json {
					return e.printJSON(obj)
				}
				e.printf("hash:     %s\nkey:      %s\nsize:     %d\n", obj.Hash, obj.Key, obj.Size)
				if obj.Encoding != "" {
					e.printf("stored:   %d bytes, %s\n", obj.Stored, obj.Encoding)
				}
				e.printf("modified: %s\n", info.ModTime.UTC().Format(time.RFC3339))
				return nil
			}
		},
	}
}

// objectJSON describes an object in -json output.
type objectJSON struct {
	Key      string    `json:"key"`
	Hash     string    `json:"hash,omitempty"` // for blobs (cas/<hex> keys)
	Size     int64     `json:"size"`
	Encoding string    `json:"encoding,omitempty"`    // a blob stored compressed: "zstd"
	Stored   int64     `json:"stored_size,omitempty"` // with Encoding: the bytes held
	Modified time.Time `json:"modified,omitzero"`
}

func newObjectJSON(info cas.Info) objectJSON {
	o := objectJSON{Key: info.Key, Size: info.Size, Modified: info.ModTime.UTC()}
	if info.Encoding != "" {
		o.Encoding, o.Stored = info.Encoding, info.StoredSize
	}
	if h, err := cas.ParseKey(info.Key); err == nil {
		o.Hash = h.String()
	}
	return o
}
