package migrate_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/migrate"
)

// memMigrator is an in-memory Migrator: a table of ID -> key, paged in ID
// order like a keyset-paginated database table. Hooks inject commit
// faults.
type memMigrator struct {
	mu    sync.Mutex
	rows  map[string]string
	extra []string // keys Referenced yields besides the rows' (another table)

	// beforeCommit, when set, runs before each commit (outside the lock)
	// and fails the commit if it returns an error.
	beforeCommit func(rec migrate.Record) error
	commits      int
	pendingCalls int
}

func newMemMigrator(rows map[string]string) *memMigrator {
	return &memMigrator{rows: rows}
}

func (m *memMigrator) Pending(ctx context.Context) iter.Seq2[migrate.Record, error] {
	return func(yield func(migrate.Record, error) bool) {
		m.mu.Lock()
		m.pendingCalls++
		ids := slices.Sorted(maps.Keys(m.rows))
		m.mu.Unlock()
		for _, id := range ids {
			if err := ctx.Err(); err != nil {
				yield(migrate.Record{}, err)
				return
			}
			m.mu.Lock()
			key := m.rows[id]
			m.mu.Unlock()
			if key == "" || cas.IsKey(key) {
				continue
			}
			if !yield(migrate.Record{ID: id, Key: key}, nil) {
				return
			}
		}
	}
}

func (m *memMigrator) Commit(ctx context.Context, rec migrate.Record, newKey string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if m.beforeCommit != nil {
		if err := m.beforeCommit(rec); err != nil {
			return err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur, ok := m.rows[rec.ID]; !ok || cur != rec.Key {
		return fmt.Errorf("row %q: %w", rec.ID, migrate.ErrConflict)
	}
	m.rows[rec.ID] = newKey
	m.commits++
	return nil
}

func (m *memMigrator) Referenced(ctx context.Context) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		m.mu.Lock()
		keys := slices.Collect(maps.Values(m.rows))
		keys = append(keys, m.extra...)
		m.mu.Unlock()
		for _, k := range keys {
			if k != "" && !yield(k, nil) {
				return
			}
		}
	}
}

func (m *memMigrator) key(id string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rows[id]
}

func (m *memMigrator) set(id, key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rows[id] = key
}

func (m *memMigrator) snapshot() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.rows)
}

func (m *memMigrator) pendingCount() int {
	n := 0
	for _, k := range m.snapshot() {
		if k != "" && !cas.IsKey(k) {
			n++
		}
	}
	return n
}

// put stores data under key in b.
func put(t testing.TB, b cas.Backend, key string, data []byte) {
	t.Helper()
	require.NoError(t, b.Put(context.Background(), key, strings.NewReader(string(data)), int64(len(data)), cas.PutOptions{}))
}

// read returns the bytes stored under key in b.
func read(t testing.TB, b cas.Backend, key string) []byte {
	t.Helper()
	obj, err := b.Open(context.Background(), key)
	require.NoError(t, err, "open %q", key)
	defer obj.Close()
	data, err := io.ReadAll(obj) // test objects are small
	require.NoError(t, err)
	return data
}

// keys lists every key in b.
func keys(t testing.TB, b cas.Backend, prefix string) []string {
	t.Helper()
	var out []string
	for info, err := range b.List(context.Background(), prefix) {
		require.NoError(t, err)
		out = append(out, info.Key)
	}
	return out
}

// legacyKey returns a UUID-shaped legacy key for record i.
func legacyKey(i int) string {
	return fmt.Sprintf("uploads/%08x-0000-4000-8000-%012x", i, i)
}

// requireIntact checks the migration invariant: every record points at an
// object in its backend (CAS keys in store, legacy keys in source) that
// holds the record's original bytes.
func requireIntact(t testing.TB, m *memMigrator, store, source cas.Backend, want map[string][]byte) {
	t.Helper()
	requireIntactCached(t, m, store, source, want, nil)
}

// requireIntactCached is requireIntact that skips records whose key is the
// one recorded in checked, and records the keys it checks.
func requireIntactCached(t testing.TB, m *memMigrator, store, source cas.Backend, want map[string][]byte, checked map[string]string) {
	t.Helper()
	for id, key := range m.snapshot() {
		if key == "" {
			continue
		}
		if prev, ok := checked[id]; ok && prev == key {
			continue
		}
		if checked != nil {
			checked[id] = key
		}
		b := source
		if cas.IsKey(key) {
			b = store
			h, err := cas.ParseKey(key)
			require.NoError(t, err)
			require.Equal(t, cas.SumBytes(want[id]), h, "record %s: key is not the hash of its bytes", id)
		}
		require.Equal(t, want[id], read(t, b, key), "record %s (key %s): bytes differ", id, key)
	}
}

// cleanup runs migrate.Cleanup and returns, beside its report, the keys
// OnDelete received (sorted), checking that they came in listing order.
func cleanup(ctx context.Context, store *cas.Store, m migrate.Migrator, opts migrate.CleanupOptions) (migrate.CleanupReport, []string, error) {
	var deleted []string
	ordered := true
	opts.OnDelete = func(key string) {
		if len(deleted) > 0 && key < deleted[len(deleted)-1] {
			ordered = false
		}
		deleted = append(deleted, key)
	}
	rep, err := migrate.Cleanup(ctx, store, m, opts)
	if !ordered {
		err = errors.Join(err, fmt.Errorf("OnDelete keys out of listing order: %q", deleted))
	}
	if n := rep.Deleted + rep.WouldDelete; n != len(deleted) {
		err = errors.Join(err, fmt.Errorf("report counts %d deletions, OnDelete got %d", n, len(deleted)))
	}
	return rep, deleted, err
}
