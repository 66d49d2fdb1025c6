package migrate_test

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"strings"
	"sync"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/migrate"
)

// attachments is a tiny Migrator over an in-memory table of attachment ID
// -> backend key. A real application would use migrate/sqlmigrator or
// write the three methods against its own database.
type attachments struct {
	mu   sync.Mutex
	rows map[string]string
}

func (a *attachments) Pending(ctx context.Context) iter.Seq2[migrate.Record, error] {
	return func(yield func(migrate.Record, error) bool) {
		a.mu.Lock()
		ids := slices.Sorted(func(yield func(string) bool) {
			for id := range a.rows {
				if !yield(id) {
					return
				}
			}
		})
		a.mu.Unlock()
		for _, id := range ids {
			a.mu.Lock()
			key := a.rows[id]
			a.mu.Unlock()
			if key != "" && !cas.IsKey(key) {
				if !yield(migrate.Record{ID: id, Key: key}, nil) {
					return
				}
			}
		}
	}
}

func (a *attachments) Commit(ctx context.Context, rec migrate.Record, newKey string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.rows[rec.ID] != rec.Key {
		return migrate.ErrConflict
	}
	a.rows[rec.ID] = newKey
	return nil
}

func (a *attachments) Referenced(ctx context.Context) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		a.mu.Lock()
		keys := make([]string, 0, len(a.rows))
		for _, k := range a.rows {
			keys = append(keys, k)
		}
		a.mu.Unlock()
		for _, k := range keys {
			if !yield(k, nil) {
				return
			}
		}
	}
}

// Run moves every record from its UUID key to the CAS key of its bytes;
// Report.Err tells whether anything is left, and Cleanup then removes the
// legacy objects nobody points at.
func Example() {
	ctx := context.Background()
	backend := memstore.New()
	store := cas.New(backend)

	// The legacy world: objects under UUID keys, records pointing at them.
	for key, body := range map[string]string{
		"uploads/0b9c6a8e-5f0e-4c8e-9d67-1a1c1d9b6f01": "invoice.pdf bytes",
		"uploads/6e2f1c7a-3b4d-4a5e-8f90-2b3c4d5e6f02": "invoice.pdf bytes", // the same file, uploaded twice
		"uploads/9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c03": "photo.jpg bytes",
	} {
		_ = backend.Put(ctx, key, strings.NewReader(body), int64(len(body)), cas.PutOptions{})
	}
	table := &attachments{rows: map[string]string{
		"1": "uploads/0b9c6a8e-5f0e-4c8e-9d67-1a1c1d9b6f01",
		"2": "uploads/6e2f1c7a-3b4d-4a5e-8f90-2b3c4d5e6f02",
		"3": "uploads/9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c03",
		"4": "", // no attachment
	}}

	rep, err := migrate.Run(ctx, store, table, migrate.Options{})
	if err != nil {
		fmt.Println("run:", err)
		return
	}
	if err := rep.Err(); err != nil {
		fmt.Println("refusing to start:", err)
		return
	}
	fmt.Printf("migrated %d of %d records, %d deduplicated, %d bytes\n", rep.Migrated, rep.Seen, rep.Deduplicated, rep.Bytes)
	fmt.Println("record 1 and 2 share a key:", table.rows["1"] == table.rows["2"])
	fmt.Println("record 3:", table.rows["3"])

	clean, err := migrate.Cleanup(ctx, store, table, migrate.CleanupOptions{Prefix: "uploads/"})
	if err != nil {
		fmt.Println("cleanup:", err)
		return
	}
	fmt.Printf("cleanup: scanned %d, deleted %d\n", clean.Scanned, clean.Deleted)
	// Output:
	// migrated 3 of 3 records, 1 deduplicated, 49 bytes
	// record 1 and 2 share a key: true
	// record 3: cas/6e312f5d45f48a974de81caafb68aa33b81b0452f5be368570387828995e950c
	// cleanup: scanned 3, deleted 3
}

// A DryRun reads and hashes every pending object and reports what a real
// run would do, without writing or committing anything.
func ExampleRun_dryRun() {
	ctx := context.Background()
	backend := memstore.New()
	_ = backend.Put(ctx, "uploads/a", strings.NewReader("same"), 4, cas.PutOptions{})
	_ = backend.Put(ctx, "uploads/b", strings.NewReader("same"), 4, cas.PutOptions{})
	table := &attachments{rows: map[string]string{"a": "uploads/a", "b": "uploads/b", "c": "uploads/missing"}}

	rep, err := migrate.Run(ctx, cas.New(backend), table, migrate.Options{DryRun: true, Concurrency: 1})
	if err != nil {
		fmt.Println("run:", err)
		return
	}
	fmt.Printf("would migrate %d, %d deduplicated, %d failing\n", rep.Migrated, rep.Deduplicated, rep.Failed)
	for _, f := range rep.Failures {
		fmt.Println("failing:", f.Record.ID)
	}
	fmt.Println("record a unchanged:", table.rows["a"])
	// Output:
	// would migrate 2, 1 deduplicated, 1 failing
	// failing: c
	// record a unchanged: uploads/a
}

// Progress reports how far a run is; Rate gives records per second.
func ExampleProgress() {
	p := migrate.Progress{Done: 500, Total: 2000, Bytes: 50 << 20}
	fmt.Printf("%d/%d records (%.0f%%)\n", p.Done, p.Total, 100*float64(p.Done)/float64(p.Total))
	// Output:
	// 500/2000 records (25%)
}
