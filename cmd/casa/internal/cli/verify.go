package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"iter"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/casa-go/casa/cas"
)

func verifyCommand() command {
	return command{
		name:  "verify",
		args:  "[HASH...]",
		short: "re-hash stored blobs and report the corrupt ones",
		long: `Verify reads every blob of the store (or only the blobs named) and
re-hashes its bytes. Each problem is one line on standard output:
"CORRUPT HASH: ..." for bytes that no longer hash to their name (bit rot,
tampering), "MISSING HASH" for a named blob that is not stored, "ERROR
HASH: ..." for a blob that could not be read. The summary goes to standard
error. Exit code 3 when any blob is corrupt, else 4 when a named blob is
missing, else 1 when a blob could not be read.`,
		setup: func(fs *flag.FlagSet, e *env) func(context.Context, []string) error {
			e.addStoreFlags(fs)
			concurrency := fs.Int("concurrency", 4, "verify this many blobs at once")
			return func(ctx context.Context, args []string) error {
				if *concurrency < 1 {
					return usagef("-concurrency must be at least 1, not %d", *concurrency)
				}
				hashes := make([]cas.Hash, 0, len(args))
				for _, a := range args {
					h, err := parseHash(a)
					if err != nil {
						return err
					}
					hashes = append(hashes, h)
				}
				store, err := e.openStore(ctx)
				if err != nil {
					return err
				}
				return runVerify(ctx, e, store, hashes, *concurrency)
			}
		},
	}
}

// verifyProblem is one blob that failed verification.
type verifyProblem struct {
	Hash  string `json:"hash"`
	Error string `json:"error,omitempty"`
}

// verifyReport is verify's -json output.
type verifyReport struct {
	Checked int             `json:"checked"`
	OK      int             `json:"ok"`
	Bytes   int64           `json:"bytes"`
	Corrupt []verifyProblem `json:"corrupt"`
	Missing []verifyProblem `json:"missing"`
	Errors  []verifyProblem `json:"errors"`
}

func runVerify(ctx context.Context, e *env, store *cas.Store, named []cas.Hash, concurrency int) error {
	total := len(named)
	var blobs iter.Seq2[cas.Info, error]
	if len(named) > 0 {
		blobs = func(yield func(cas.Info, error) bool) {
			for _, h := range named {
				if !yield(cas.Info{Key: h.Key()}, nil) {
					return
				}
			}
		}
	} else {
		total = -1
		if e.StderrTerminal { // a bar needs the total: one more listing
			total = 0
			for _, err := range store.Walk(ctx) {
				if err != nil {
					return err
				}
				total++
			}
		}
		blobs = store.Walk(ctx)
	}

	rep := verifyReport{Corrupt: []verifyProblem{}, Missing: []verifyProblem{}, Errors: []verifyProblem{}}
	var mu sync.Mutex
	prog := e.newProgress("verify", "blobs", total)
	record := func(h cas.Hash, size int64, err error) {
		mu.Lock()
		defer mu.Unlock()
		rep.Checked++
		p := verifyProblem{Hash: h.String()}
		switch {
		case err == nil:
			rep.OK++
			rep.Bytes += size
		case errors.Is(err, cas.ErrDigestMismatch):
			p.Error = oneLine(err.Error())
			rep.Corrupt = append(rep.Corrupt, p)
			if !e.json {
				e.printf("CORRUPT %s: %s\n", h, p.Error)
			}
		case errors.Is(err, cas.ErrNotFound):
			rep.Missing = append(rep.Missing, p)
			if !e.json {
				e.printf("MISSING %s\n", h)
			}
		default:
			p.Error = oneLine(err.Error())
			rep.Errors = append(rep.Errors, p)
			if !e.json {
				e.printf("ERROR %s: %s\n", h, p.Error)
			}
		}
		prog.add(1, size)
	}

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrency)
	var listErr error
	for info, err := range blobs {
		if err != nil {
			listErr = err
			break
		}
		if gctx.Err() != nil {
			break
		}
		h, err := cas.ParseKey(info.Key)
		if err != nil {
			continue // Walk yields blob keys only
		}
		g.Go(func() error {
			size, err := verifyOne(gctx, store, h)
			if gctx.Err() != nil && ctx.Err() != nil {
				return ctx.Err()
			}
			record(h, size, err)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		prog.stop()
		return err
	}
	if listErr != nil {
		prog.stop()
		return fmt.Errorf("listing the store: %w", listErr)
	}
	if err := ctx.Err(); err != nil {
		prog.stop()
		return err
	}
	prog.finish()
	if e.json {
		if err := e.printJSON(rep); err != nil {
			return err
		}
	}
	e.notef("%d blobs checked, %d ok (%s), %d corrupt, %d missing, %d unreadable",
		rep.Checked, rep.OK, formatBytes(rep.Bytes), len(rep.Corrupt), len(rep.Missing), len(rep.Errors))
	switch {
	case len(rep.Corrupt) > 0:
		return fmt.Errorf("%w: %d corrupt blobs", errCorrupt, len(rep.Corrupt))
	case len(rep.Missing) > 0:
		return fmt.Errorf("%w: %d blobs missing", errNotFound, len(rep.Missing))
	case len(rep.Errors) > 0:
		return fmt.Errorf("%d blobs could not be read", len(rep.Errors))
	}
	return nil
}

// verifyOne re-hashes one blob and returns its size.
func verifyOne(ctx context.Context, store *cas.Store, h cas.Hash) (int64, error) {
	obj, err := store.Open(ctx, h)
	if err != nil {
		return 0, err
	}
	defer obj.Close()
	size := obj.Info().Size
	got, n, err := cas.Sum(obj)
	if err != nil {
		return n, fmt.Errorf("read %s: %w", h, err)
	}
	if got != h {
		return n, fmt.Errorf("%w: %s holds bytes hashing to %s", cas.ErrDigestMismatch, h, got)
	}
	return size, nil
}
