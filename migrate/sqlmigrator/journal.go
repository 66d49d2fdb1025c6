package sqlmigrator

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/casa-go/casa/migrate"
)

// JournalSuffix makes the default journal table name: the table's name
// followed by it ("parts" is journaled in "parts_casa_journal").
const JournalSuffix = "_casa_journal"

// WithJournalTable sets the name of the journal table, which may be
// schema-qualified. The default is the table's name + JournalSuffix. A
// name that is not a plain identifier panics, naming the option (a
// programmer error).
func WithJournalTable(name string) Option {
	if err := validateName(name, true); err != nil {
		panic(fmt.Sprintf("sqlmigrator: WithJournalTable(%q): %v", name, err))
	}
	return func(c *config) { c.journal = name }
}

// Journal entry kinds.
const (
	kindCommit = "commit"
	kindFinal  = "final"
)

// journal is the SQL of a Migrator's journal table, created on demand:
//
//	kind TEXT          "commit" or "final"
//	record_id TEXT     the record's ID ("" for "final")
//	old_key, new_key   the commit's keys
//	at_ns BIGINT       when, in Unix nanoseconds
//	reverted_ns BIGINT when Revert undid the commit; NULL while it stands
//
// The table has no index (portable DDL); Revert's mark is a scan of it.
type journal struct {
	name      string
	create    string
	insert    string
	firstPage string
	nextPage  string
	mark      string
	final     string
	current   string // the record's key, for Revert's diagnosis

	mu    sync.Mutex
	ready bool
}

// init writes the journal's SQL. Every name is quoted part by part, like
// the table's: a journal or key column may be called with a reserved word
// (an unquoted `key` is a syntax error in MySQL, and PostgreSQL reads an
// unquoted user as CURRENT_USER).
func (j *journal) init(t Table, c config, ph func(int) string, quote func(string) string) {
	j.name = c.journal
	if j.name == "" {
		j.name = defaultJournalName(t.Name)
	}
	n := quoteName(j.name, quote)
	cols := "kind, record_id, old_key, new_key, at_ns"
	order := " ORDER BY at_ns, record_id LIMIT " + strconv.Itoa(c.pageSize)
	j.create = "CREATE TABLE IF NOT EXISTS " + n + " (kind VARCHAR(16) NOT NULL, record_id TEXT NOT NULL, " +
		"old_key TEXT NOT NULL, new_key TEXT NOT NULL, at_ns BIGINT NOT NULL, reverted_ns BIGINT)"
	j.insert = "INSERT INTO " + n + " (" + cols + ") VALUES (" + ph(1) + ", " + ph(2) + ", " + ph(3) + ", " + ph(4) + ", " + ph(5) + ")"
	sel := "SELECT record_id, old_key, new_key, at_ns, reverted_ns FROM " + n + " WHERE kind = '" + kindCommit + "'"
	j.firstPage = sel + order
	j.nextPage = sel + " AND (at_ns > " + ph(1) + " OR (at_ns = " + ph(2) + " AND record_id > " + ph(3) + "))" + order
	j.mark = "UPDATE " + n + " SET reverted_ns = " + ph(1) + " WHERE kind = '" + kindCommit + "' AND record_id = " + ph(2) +
		" AND old_key = " + ph(3) + " AND new_key = " + ph(4) + " AND at_ns = " + ph(5) + " AND reverted_ns IS NULL"
	j.final = "SELECT COUNT(*) FROM " + n + " WHERE kind = '" + kindFinal + "'"
	j.current = "SELECT " + quote(t.KeyColumn) + " FROM " + quoteName(t.Name, quote) + " WHERE " + quote(t.IDColumn) + " = " + ph(1)
}

// defaultJournalName is table + JournalSuffix (see defaultSideName).
func defaultJournalName(table string) string { return defaultSideName(table, JournalSuffix) }

// defaultSideName is table + suffix. When that last part would be longer
// than MaxIdentifierLength, the table's last part is shortened and
// followed by 8 hex digits of its SHA-256, so the name stays valid and
// distinct per table.
func defaultSideName(table, suffix string) string {
	prefix, last := "", table
	if i := strings.LastIndexByte(table, '.'); i >= 0 {
		prefix, last = table[:i+1], table[i+1:]
	}
	if len(last)+len(suffix) <= MaxIdentifierLength {
		return table + suffix
	}
	sum := sha256.Sum256([]byte(last))
	keep := MaxIdentifierLength - len(suffix) - 9
	return prefix + last[:keep] + "_" + hex.EncodeToString(sum[:4]) + suffix
}

var _ migrate.Journaler = (*Migrator)(nil)

// JournalTable returns the name of the journal table.
func (m *Migrator) JournalTable() string { return m.jr.name }

// ensureJournal creates the journal table once per Migrator (DDL runs
// outside any transaction: MySQL commits implicitly around it), on MySQL
// in utf8mb4 with the binary collation (mysqlTableOptions), whatever the
// database's default; a table that exists already is left as it is.
//
// CREATE TABLE IF NOT EXISTS is not safe against another session creating
// the same table at the same moment: PostgreSQL then fails with "relation
// already exists" (or a unique violation on its catalog). So when the
// CREATE fails, a query on the table decides: if it answers, another
// replica made the table and all is well.
func (m *Migrator) ensureJournal(ctx context.Context) error {
	m.jr.mu.Lock()
	defer m.jr.mu.Unlock()
	if m.jr.ready {
		return nil
	}
	create := m.jr.create
	if _, d, err := m.gc(ctx); err != nil {
		return err
	} else if d == dialectMySQL {
		create += mysqlTableOptions
	}
	if _, err := m.db.ExecContext(ctx, create); err != nil {
		var n int64
		if m.db.QueryRowContext(ctx, m.jr.final).Scan(&n) != nil {
			return fmt.Errorf("create journal table %s: %w", m.jr.name, err)
		}
	}
	m.jr.ready = true
	return nil
}

// journalCommit records a commit inside the commit's transaction.
func (m *Migrator) journalCommit(ctx context.Context, tx *sql.Tx, rec migrate.Record, newKey string) error {
	if _, err := tx.ExecContext(ctx, m.jr.insert, kindCommit, rec.ID, rec.Key, newKey, time.Now().UnixNano()); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// Journal implements migrate.Journaler: it yields every journaled commit,
// oldest first, reading the journal table in pages like Pending.
func (m *Migrator) Journal(ctx context.Context) iter.Seq2[migrate.JournalEntry, error] {
	return func(yield func(migrate.JournalEntry, error) bool) {
		if err := m.ensureJournal(ctx); err != nil {
			yield(migrate.JournalEntry{}, fmt.Errorf("sqlmigrator: %w", err))
			return
		}
		var last *migrate.JournalEntry
		for {
			page, err := m.journalPage(ctx, last)
			if err != nil {
				yield(migrate.JournalEntry{}, err)
				return
			}
			for i := range page {
				if !yield(page[i], nil) {
					return
				}
			}
			if len(page) < m.pageSize {
				return
			}
			last = &page[len(page)-1]
		}
	}
}

func (m *Migrator) journalPage(ctx context.Context, last *migrate.JournalEntry) ([]migrate.JournalEntry, error) {
	var (
		rs  *sql.Rows
		err error
	)
	if last == nil {
		rs, err = m.db.QueryContext(ctx, m.jr.firstPage)
	} else {
		ns := last.Time.UnixNano()
		rs, err = m.db.QueryContext(ctx, m.jr.nextPage, ns, ns, last.ID)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlmigrator: query %s: %w", m.jr.name, err)
	}
	defer rs.Close()
	var page []migrate.JournalEntry
	for rs.Next() {
		var (
			e        migrate.JournalEntry
			at       int64
			reverted sql.NullInt64
		)
		if err := rs.Scan(&e.ID, &e.OldKey, &e.NewKey, &at, &reverted); err != nil {
			return nil, fmt.Errorf("sqlmigrator: scan %s: %w", m.jr.name, err)
		}
		e.Time = time.Unix(0, at)
		if reverted.Valid {
			e.Reverted = time.Unix(0, reverted.Int64)
		}
		page = append(page, e)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("sqlmigrator: read %s: %w", m.jr.name, err)
	}
	return page, nil
}

// Revert implements migrate.Journaler: in one transaction it sets the key
// of the row e.ID back to e.OldKey if the row still holds e.NewKey, and
// marks e reverted in the journal.
func (m *Migrator) Revert(ctx context.Context, e migrate.JournalEntry) error {
	if e.OldKey == "" || e.NewKey == "" {
		return fmt.Errorf("sqlmigrator: revert %q: empty key in journal entry", e.ID)
	}
	if err := m.ensureJournal(ctx); err != nil {
		return fmt.Errorf("sqlmigrator: revert %q: %w", e.ID, err)
	}
	id, err := m.bindID(ctx, e.ID)
	if err != nil {
		return err
	}
	tx, err := m.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlmigrator: revert %q: begin: %w", e.ID, err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	res, err := tx.ExecContext(ctx, m.update, e.OldKey, id, e.NewKey)
	if err != nil {
		return fmt.Errorf("sqlmigrator: revert %q: update: %w", e.ID, err)
	}
	n, err := res.RowsAffected()
	switch {
	case err != nil:
		return fmt.Errorf("sqlmigrator: revert %q: rows affected: %w", e.ID, err)
	case n > 1:
		return fmt.Errorf("sqlmigrator: revert %q: %d rows match; %s is not unique; nothing changed", e.ID, n, m.table.IDColumn)
	case n == 0:
		// Not on the new key: gone, already reverted, or changed.
		var cur sql.NullString
		err := tx.QueryRowContext(ctx, m.jr.current, id).Scan(&cur)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("sqlmigrator: revert %q: %w", e.ID, migrate.ErrNoRecord)
		case err != nil:
			return fmt.Errorf("sqlmigrator: revert %q: read row: %w", e.ID, err)
		case cur.String != e.OldKey || !cur.Valid:
			return fmt.Errorf("sqlmigrator: revert %q: row holds %q, not %q: %w", e.ID, cur.String, e.NewKey, migrate.ErrConflict)
		}
		// Already on the old key: only the mark is missing.
	}
	if _, err := tx.ExecContext(ctx, m.jr.mark, time.Now().UnixNano(), e.ID, e.OldKey, e.NewKey, e.Time.UnixNano()); err != nil {
		return fmt.Errorf("sqlmigrator: revert %q: journal: %w", e.ID, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlmigrator: revert %q: %w", e.ID, err)
	}
	return nil
}

// Finalize implements migrate.Journaler: it records in the journal that
// the migration is final. Use migrate.Finalize, which first checks that
// nothing is pending.
func (m *Migrator) Finalize(ctx context.Context) error {
	if err := m.ensureJournal(ctx); err != nil {
		return fmt.Errorf("sqlmigrator: finalize: %w", err)
	}
	if _, err := m.db.ExecContext(ctx, m.jr.insert, kindFinal, "", "", "", time.Now().UnixNano()); err != nil {
		return fmt.Errorf("sqlmigrator: finalize: %w", err)
	}
	return nil
}

// Final implements migrate.Journaler.
func (m *Migrator) Final(ctx context.Context) (bool, error) {
	if err := m.ensureJournal(ctx); err != nil {
		return false, fmt.Errorf("sqlmigrator: final: %w", err)
	}
	var n int64
	if err := m.db.QueryRowContext(ctx, m.jr.final).Scan(&n); err != nil {
		return false, fmt.Errorf("sqlmigrator: final: %w", err)
	}
	return n > 0, nil
}
