package sqlmigrator

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"sync"
	"time"

	"github.com/casa-go/casa/migrate"
)

// GCSuffix makes the name of the table that records touches for
// migrate.Collect: the table's name followed by it ("attachments" gets
// "attachments_casa_gc"), beside the table like the journal.
const GCSuffix = "_casa_gc"

var (
	_ migrate.Guard            = (*Migrator)(nil)
	_ migrate.SortedReferencer = (*Migrator)(nil)
)

// dialect is the SQL engine behind the *sql.DB, learnt once by probing:
// the few statements that differ (binary ordering, upsert, row locks)
// are written per engine.
type dialect int

const (
	dialectUnknown dialect = iota
	dialectSQLite
	dialectPostgres
	dialectMySQL
)

// mysqlTableOptions end the CREATE TABLE of the side tables (journal,
// touch table) on MySQL and MariaDB: their keys in utf8mb4, which holds
// any key, with the binary collation, which compares keys by their bytes.
// Without them the tables took the database's defaults: MariaDB's is
// latin1, where a key outside cp1252 ("😀", "日本") failed the commit's
// journal insert (Incorrect string value), and a _ci collation would make
// keys that differ in case one touch row.
const mysqlTableOptions = " DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"

// gcSQL is the SQL of the touch table and of the sorted reads, written
// once the dialect is known.
type gcSQL struct {
	name       string // the touch table
	create     string
	probe      string // a query on the touch table
	touch      string // upsert (key, now)
	lock       string // upsert (key, 0) that keeps the time: takes the row lock
	read       string // the touch time, under the lock
	referenced string // SELECT 1 FROM the table WHERE key = ?
	forget     string // DELETE the key's row
	prune      string // DELETE rows touched before ?
	firstKeys  string // sorted keys >= ?
	nextKeys   string // sorted keys > ?
}

// gcState is the lazily prepared part of a Migrator for Collect.
type gcState struct {
	mu    sync.Mutex
	d     dialect
	sql   gcSQL
	ready bool // the touch table exists
}

// probeDialect learns the engine: SQLite answers sqlite_version(); of the
// others, $N placeholders mean PostgreSQL and ? MySQL or MariaDB, which
// must answer @@version: a failure that proves nothing (a connection
// lost, a busy database) is an error, and the caller probes again next
// time, instead of taking SQLite for MySQL for the Migrator's life.
func (m *Migrator) probeDialect(ctx context.Context) (dialect, error) {
	var v string
	err := m.db.QueryRowContext(ctx, "SELECT sqlite_version()").Scan(&v)
	switch {
	case err == nil:
		return dialectSQLite, nil
	case ctx.Err() != nil:
		return dialectUnknown, ctx.Err()
	case m.dollar:
		return dialectPostgres, nil
	}
	if merr := m.db.QueryRowContext(ctx, "SELECT @@version").Scan(&v); merr != nil {
		return dialectUnknown, fmt.Errorf("neither SQLite (%w) nor MySQL (%w)", err, merr)
	}
	return dialectMySQL, nil
}

// gc returns the prepared SQL, probing the dialect on first use.
func (m *Migrator) gc(ctx context.Context) (*gcSQL, dialect, error) {
	m.gcs.mu.Lock()
	defer m.gcs.mu.Unlock()
	if m.gcs.d == dialectUnknown {
		d, err := m.probeDialect(ctx)
		if err != nil {
			return nil, d, fmt.Errorf("sqlmigrator: probe the database engine: %w", err)
		}
		m.gcs.d = d
		m.gcs.sql = m.writeGCSQL(d)
	}
	return &m.gcs.sql, m.gcs.d, nil
}

// writeGCSQL writes the dialect's statements. Every name is validated and
// quoted; values travel as parameters.
func (m *Migrator) writeGCSQL(d dialect) gcSQL {
	ph := func(int) string { return "?" }
	quote := quoteBacktick
	if m.dollar {
		ph = func(i int) string { return "$" + strconv.Itoa(i) }
		quote = quoteDouble
	}
	var s gcSQL
	s.name = defaultSideName(m.table.Name, GCSuffix)
	g := quoteName(s.name, quote)
	t, key := quoteName(m.table.Name, quote), quote(m.table.KeyColumn)
	s.create = "CREATE TABLE IF NOT EXISTS " + g + " (k VARCHAR(255) NOT NULL PRIMARY KEY, touched_ns BIGINT NOT NULL)"
	if d == dialectMySQL {
		s.create += mysqlTableOptions
	}
	s.probe = "SELECT COUNT(*) FROM " + g + " WHERE k = ''"
	forUpdate := ""
	switch d {
	case dialectMySQL:
		s.touch = "INSERT INTO " + g + " (k, touched_ns) VALUES (?, ?) ON DUPLICATE KEY UPDATE touched_ns = VALUES(touched_ns)"
		s.lock = "INSERT INTO " + g + " (k, touched_ns) VALUES (?, 0) ON DUPLICATE KEY UPDATE touched_ns = touched_ns"
		forUpdate = " FOR UPDATE"
	default: // SQLite and PostgreSQL share the upsert
		s.touch = "INSERT INTO " + g + " (k, touched_ns) VALUES (" + ph(1) + ", " + ph(2) + ") ON CONFLICT (k) DO UPDATE SET touched_ns = excluded.touched_ns"
		s.lock = "INSERT INTO " + g + " (k, touched_ns) VALUES (" + ph(1) + ", 0) ON CONFLICT (k) DO UPDATE SET touched_ns = " + g + ".touched_ns"
		if d == dialectPostgres {
			forUpdate = " FOR UPDATE"
		}
	}
	s.read = "SELECT touched_ns FROM " + g + " WHERE k = " + ph(1) + forUpdate
	s.referenced = "SELECT 1 FROM " + t + " WHERE " + key + " = " + ph(1) + " LIMIT 1"
	s.forget = "DELETE FROM " + g + " WHERE k = " + ph(1)
	s.prune = "DELETE FROM " + g + " WHERE touched_ns < " + ph(1)

	// Byte order: COLLATE "C" on PostgreSQL, the UTF-8 bytes on MySQL (a
	// conversion to utf8mb4 and a cast to BINARY work whatever the
	// column's character set and collation; UTF-8's byte order is Go's
	// string order),
	// and SQLite's BINARY collation, named in case the column declares
	// another.
	var ordered string
	switch d {
	case dialectPostgres:
		ordered = key + ` COLLATE "C"`
	case dialectMySQL:
		// The key's UTF-8 bytes, whatever the column's character set: a
		// latin1 (cp1252) column's own bytes order "’" (0x92) before "é"
		// (0xE9), UTF-8 the other way round, and keyset pages bounded by
		// a UTF-8 parameter would never advance.
		ordered = "CAST(CONVERT(" + key + " USING utf8mb4) AS BINARY)"
	default:
		ordered = key + " COLLATE BINARY"
	}
	bound := ph(1)
	if d == dialectMySQL {
		bound = "CAST(CONVERT(? USING utf8mb4) AS BINARY)"
	}
	sel := "SELECT " + key + " FROM " + t + " WHERE " + key + " IS NOT NULL AND " + key + " <> '' AND " + ordered
	tail := " ORDER BY " + ordered + " LIMIT " + strconv.Itoa(m.pageSize)
	s.firstKeys = sel + " >= " + bound + tail
	s.nextKeys = sel + " > " + bound + tail
	return s
}

// ensureGC creates the touch table once per Migrator, like the journal.
func (m *Migrator) ensureGC(ctx context.Context) (*gcSQL, dialect, error) {
	s, d, err := m.gc(ctx)
	if err != nil {
		return nil, d, err
	}
	m.gcs.mu.Lock()
	defer m.gcs.mu.Unlock()
	if m.gcs.ready {
		return s, d, nil
	}
	if _, err := m.db.ExecContext(ctx, s.create); err != nil {
		var n int64
		if m.db.QueryRowContext(ctx, s.probe).Scan(&n) != nil {
			return nil, d, fmt.Errorf("sqlmigrator: create touch table %s: %w", s.name, err)
		}
	}
	m.gcs.ready = true
	return s, d, nil
}

// GCTable returns the name of the table Touch writes to
// (the table's name + GCSuffix).
func (m *Migrator) GCTable() string { return defaultSideName(m.table.Name, GCSuffix) }

// ReferencedSorted implements migrate.SortedReferencer: the non-empty keys
// of the rows, not less than from, in byte order, read in keyset pages
// ("WHERE key > last ORDER BY key LIMIT n") with the engine's binary
// ordering: COLLATE "C" on PostgreSQL, CAST(CONVERT(key USING utf8mb4) AS
// BINARY) (the key's UTF-8 bytes, whatever the column's charset) on MySQL and
// MariaDB, COLLATE BINARY on SQLite. Each page is read and closed before
// it is yielded. Without an index that serves that order (on PostgreSQL
// one on (key COLLATE "C"), or a column declared with it; on MySQL a
// column with a binary collation) every page scans the table.
func (m *Migrator) ReferencedSorted(ctx context.Context, from string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		s, _, err := m.gc(ctx)
		if err != nil {
			yield("", err)
			return
		}
		q, bound := s.firstKeys, from
		for {
			page, err := m.keyPage(ctx, q, bound)
			if err != nil {
				yield("", err)
				return
			}
			for _, k := range page {
				if !yield(k, nil) {
					return
				}
			}
			if len(page) < m.pageSize {
				return
			}
			q, bound = s.nextKeys, page[len(page)-1]
		}
	}
}

func (m *Migrator) keyPage(ctx context.Context, q, bound string) ([]string, error) {
	rs, err := m.db.QueryContext(ctx, q, bound)
	if err != nil {
		return nil, fmt.Errorf("sqlmigrator: query %s keys: %w", m.table.Name, err)
	}
	defer rs.Close()
	page := make([]string, 0, m.pageSize)
	for rs.Next() {
		var k string
		if err := rs.Scan(&k); err != nil {
			return nil, fmt.Errorf("sqlmigrator: scan %s keys: %w", m.table.Name, err)
		}
		page = append(page, k)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("sqlmigrator: read %s keys: %w", m.table.Name, err)
	}
	return page, nil
}

// Touch implements migrate.Guard: it upserts (key, now in Unix ns) into
// the touch table in its own statement, so it is committed when Touch
// returns. A CollectKey that holds the key's row makes it wait.
func (m *Migrator) Touch(ctx context.Context, key string) error {
	s, _, err := m.ensureGC(ctx)
	if err != nil {
		return err
	}
	if _, err := m.db.ExecContext(ctx, s.touch, key, time.Now().UnixNano()); err != nil {
		return fmt.Errorf("sqlmigrator: touch %q: %w", key, err)
	}
	return nil
}

// CollectKey implements migrate.Guard. In one transaction it upserts the
// key's row without changing its time, which takes the row's lock (on
// SQLite the database's write lock) so that Touch waits; reads the touch
// time and whether any row of the table references key; and, when
// neither protects it, calls del and removes the row before it commits.
// A failed commit after del returned leaves the table as it was.
func (m *Migrator) CollectKey(ctx context.Context, key string, since time.Time, del func(context.Context) error) (bool, error) {
	s, _, err := m.ensureGC(ctx)
	if err != nil {
		return false, err
	}
	tx, err := m.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("sqlmigrator: collect %q: begin: %w", key, err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	if _, err := tx.ExecContext(ctx, s.lock, key); err != nil {
		return false, fmt.Errorf("sqlmigrator: collect %q: lock: %w", key, err)
	}
	var touched int64
	if err := tx.QueryRowContext(ctx, s.read, key).Scan(&touched); err != nil {
		return false, fmt.Errorf("sqlmigrator: collect %q: read touch: %w", key, err)
	}
	if touched >= since.UnixNano() {
		return false, nil
	}
	var one int
	switch err := tx.QueryRowContext(ctx, s.referenced, key).Scan(&one); {
	case err == nil:
		return false, nil // referenced
	case !errors.Is(err, sql.ErrNoRows):
		return false, fmt.Errorf("sqlmigrator: collect %q: check references: %w", key, err)
	}
	if err := del(ctx); err != nil {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, s.forget, key); err == nil {
		_ = tx.Commit() // the object is gone either way; a rollback leaves the row as it was
	}
	return true, nil
}

// Prune implements migrate.Guard: it deletes the touch rows older than
// before.
func (m *Migrator) Prune(ctx context.Context, before time.Time) error {
	s, _, err := m.ensureGC(ctx)
	if err != nil {
		return err
	}
	if _, err := m.db.ExecContext(ctx, s.prune, before.UnixNano()); err != nil {
		return fmt.Errorf("sqlmigrator: prune %s: %w", s.name, err)
	}
	return nil
}
