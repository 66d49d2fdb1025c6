package cli

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/casa-go/casa/cas"
)

func getCommand() command {
	return command{
		name:  "get",
		args:  "HASH",
		short: "write a blob's bytes to standard output or a file",
		long: `Get writes the blob HASH (64 hex digits, or cas/<hex>) to standard output,
or with -o to FILE (written to a temporary file beside it and renamed into
place once the bytes are checked). The bytes are re-hashed as they are
copied: a blob whose bytes no longer match its name fails with exit code 3
(with -o nothing is left behind). A missing blob is exit code 4.`,
		setup: func(fs *flag.FlagSet, e *env) func(context.Context, []string) error {
			e.addStoreFlags(fs)
			out := fs.String("o", "", "write to this `file` instead of standard output")
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
				return runGet(ctx, e, store, h, *out)
			}
		},
	}
}

type getResult struct {
	Hash string `json:"hash"`
	Size int64  `json:"size"`
	File string `json:"file"`
}

func runGet(ctx context.Context, e *env, store *cas.Store, h cas.Hash, out string) error {
	if e.json && (out == "" || out == "-") {
		return usagef("-json needs -o FILE: the blob's bytes would mix with the JSON")
	}
	obj, err := store.Open(ctx, h)
	if errors.Is(err, cas.ErrNotFound) {
		return fmt.Errorf("%s: %w", h, errNotFound)
	}
	if err != nil {
		return err
	}
	defer obj.Close()

	if out == "" || out == "-" {
		_, err := copyVerified(e.Stdout, obj, h)
		return err
	}
	dir := filepath.Dir(out)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(out)+".casa-*")
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", out, unwrapPathError(err))
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	n, err := copyVerified(tmp, obj, h)
	if err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("cannot write %s: %w", out, err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return fmt.Errorf("cannot write %s: %w", out, unwrapPathError(err))
	}
	done = true
	if e.json {
		return e.printJSON(getResult{Hash: h.String(), Size: n, File: out})
	}
	e.notef("wrote %s (%s) to %s", h, formatBytes(n), out)
	return nil
}

// copyVerified copies r to w, hashing as it goes, and fails with
// errCorrupt when the bytes do not hash to h.
func copyVerified(w io.Writer, r io.Reader, h cas.Hash) (int64, error) {
	d := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, d), r)
	if err != nil {
		return n, fmt.Errorf("read %s: %w", h, err)
	}
	if got := cas.Hash(d.Sum(nil)); got != h {
		return n, fmt.Errorf("%w: %s holds bytes hashing to %s", errCorrupt, h, got)
	}
	return n, nil
}
