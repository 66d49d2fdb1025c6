package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/migrate"
	"github.com/casa-go/casa/migrate/sqlmigrator"
)

// Garbage collection (-gc). Blobs nobody references appear when an
// attachment is deleted, or when an upload's row never commits. -gc runs
// migrate.Collect once at start-up; other replicas may serve and upload
// meanwhile, because every Store of the app touches each blob it stores
// or deduplicates against in attachments_casa_gc first (gcHook), and
// Collect deletes a blob only while holding its row there, after checking
// that no attachment references it and that it was not touched within the
// grace period. An upload therefore never loses its blob to a collection,
// whichever replica runs it.

// gcHook is the Store option that touches every blob before a Put writes
// it or deduplicates against it.
func gcHook(m *sqlmigrator.Migrator) cas.Option { return cas.WithPutHook(migrate.PutHook(m)) }

// gcRun is the state of a background collection.
type gcRun struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when the collection has ended; nil: none

	mu     sync.Mutex
	report *migrate.CollectReport
	err    error
}

// startGC runs one collection: now, when blocking (after the blocking
// migration, before serving; an error fails the start), or in the
// background until Close.
func (a *App) startGC(ctx context.Context, cfg Config, blocking bool, log *slog.Logger) error {
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	if blocking {
		rep, err := a.collect(ctx, cfg, progress, log)
		a.gc.mu.Lock()
		a.gc.report, a.gc.err = &rep, err
		a.gc.mu.Unlock()
		if err != nil {
			return fmt.Errorf("inventory: gc: %w", err)
		}
		return nil
	}
	bg, cancel := context.WithCancel(context.Background())
	a.gc.cancel, a.gc.done = cancel, make(chan struct{})
	go func() {
		defer close(a.gc.done)
		rep, err := a.collect(bg, cfg, progress, log)
		if err != nil && bg.Err() == nil {
			log.Error("gc failed", "err", err)
		}
		a.gc.mu.Lock()
		a.gc.report, a.gc.err = &rep, err
		a.gc.mu.Unlock()
	}()
	return nil
}

func (a *App) collect(ctx context.Context, cfg Config, progress io.Writer, log *slog.Logger) (migrate.CollectReport, error) {
	rep, err := migrate.Collect(ctx, a.store, a.online.migrator, migrate.CollectOptions{MinAge: cfg.GCMinAge, Logger: log})
	fmt.Fprintf(progress, "gc: %d unreferenced blobs deleted (%d bytes), %d kept of %d (%d referenced, %d within the grace period, %d relied on meanwhile, %d failed), %d derived objects deleted, in %s\n",
		rep.Deleted, rep.Bytes, rep.Kept, rep.Scanned, rep.Referenced, rep.Young, rep.Touched, rep.Failed, rep.DerivedDeleted, rep.Elapsed)
	return rep, err
}

// GCReport returns the report of the start-up collection and its error;
// nil while none has finished.
func (a *App) GCReport() (*migrate.CollectReport, error) {
	a.gc.mu.Lock()
	defer a.gc.mu.Unlock()
	return a.gc.report, a.gc.err
}

// stopGC cancels a background collection and waits for it.
func (a *App) stopGC() {
	if a.gc.done == nil {
		return
	}
	a.gc.cancel()
	<-a.gc.done
}
