package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"os"
	"path/filepath"

	"github.com/casa-go/casa/cas"
)

func putCommand() command {
	return command{
		name:  "put",
		args:  "FILE...",
		short: "store files; print each one's hash and key",
		long: `Put stores each FILE in the store ("-" reads standard input) and prints
"HASH KEY FILE" for each. A file already stored is deduplicated. The
content type recorded (S3) is -content-type, else guessed from the file
name's extension. A file that cannot be read is reported and the others
are still stored; the exit code is then 1. With -compress, compressible
files (text, CSV, JSON, ...) are stored zstd-compressed under the hash of
their bytes; stat and ls -json show the stored size.

Put takes no -db, so it does not touch the garbage collector's guard: a
blob that no row references is deleted by gc once it is older than gc's
-min-age, and a put that deduplicates against such an old blob while a gc
runs may see it deleted. Point a row at a put blob within the day, or put
it again after gc.`,
		setup: func(fs *flag.FlagSet, e *env) func(context.Context, []string) error {
			e.addStoreFlags(fs)
			contentType := fs.String("content-type", "", "record this content `type` (default: from each file's extension)")
			compress := addCompressFlag(fs)
			return func(ctx context.Context, args []string) error {
				if len(args) == 0 {
					return usagef("name at least one FILE (or - for standard input)")
				}
				store, err := e.openNewStore(ctx, compress()...)
				if err != nil {
					return err
				}
				return runPut(ctx, e, store, args, *contentType)
			}
		},
	}
}

// putResult is one line of put's output.
type putResult struct {
	File         string `json:"file"`
	Hash         string `json:"hash,omitempty"`
	Key          string `json:"key,omitempty"`
	Size         int64  `json:"size"`
	Deduplicated bool   `json:"deduplicated"`
	Error        string `json:"error,omitempty"`
}

func runPut(ctx context.Context, e *env, store *cas.Store, files []string, contentType string) error {
	results := make([]putResult, 0, len(files))
	var errs []error
	for _, name := range files {
		res, err := putFile(ctx, e, store, name, contentType)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			errs = append(errs, err)
			res.Error = err.Error()
			if !e.json && len(files) > 1 {
				e.notef("%s", oneLine(err.Error()))
			}
		} else if !e.json {
			e.printf("%s %s %s\n", res.Hash, res.Key, name)
		}
		results = append(results, res)
	}
	if e.json {
		if err := e.printJSON(results); err != nil {
			return err
		}
	}
	switch len(errs) {
	case 0:
		return nil
	case 1:
		if len(files) == 1 {
			return errs[0]
		}
	}
	return fmt.Errorf("%d of %d files not stored", len(errs), len(files))
}

func putFile(ctx context.Context, e *env, store *cas.Store, name, contentType string) (putResult, error) {
	res := putResult{File: name}
	var r io.Reader
	if name == "-" {
		r = e.Stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return res, fmt.Errorf("cannot read %s: %w", name, unwrapPathError(err))
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil && fi.IsDir() {
			return res, fmt.Errorf("cannot read %s: is a directory", name)
		}
		r = f
		if contentType == "" {
			contentType = mime.TypeByExtension(filepath.Ext(name))
		}
	}
	var opts []cas.PutOption
	if contentType != "" {
		opts = append(opts, cas.ContentType(contentType))
	}
	pr, err := store.Put(ctx, r, opts...)
	if err != nil {
		return res, fmt.Errorf("put %s: %w", name, err)
	}
	res.Hash, res.Key, res.Size, res.Deduplicated = pr.Hash.String(), pr.Hash.Key(), pr.Size, pr.Deduplicated
	return res, nil
}

// unwrapPathError drops the operation and path of an *os.PathError, which
// the message names already.
func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
