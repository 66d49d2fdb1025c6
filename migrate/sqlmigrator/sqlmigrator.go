// Package sqlmigrator is a migrate.Migrator for any database/sql table
// whose rows point at stored objects through a key column.
//
// Pending and Referenced read the table in pages ordered by the ID column
// (keyset pagination: "WHERE id > last ORDER BY id LIMIT n"), so no cursor
// stays open while Run commits, and rows committed meanwhile do not disturb
// the iteration. Commit runs
//
//	UPDATE <table> SET <key> = new WHERE <id> = ? AND <key> = old
//
// in its own transaction; when no row matches, the row changed meanwhile
// and Commit returns migrate.ErrConflict.
//
// Table and column names are validated as plain SQL identifiers, so they
// cannot carry SQL, and are quoted in the SQL (`name` by default, "name"
// lower-cased with WithDollarPlaceholders, which keeps PostgreSQL's folding
// of unquoted names), so that reserved words such as key, order or user
// work as column names. Values always travel as query parameters. The SQL is
// portable across SQLite, PostgreSQL and MySQL (LIMIT, ? or $n
// placeholders). The ID column must be unique and non-NULL; integer IDs are
// ordered and compared as integers, text IDs as text.
package sqlmigrator

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"strings"
	"sync"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/migrate"
)

// DefaultPageSize is how many rows one page query reads.
const DefaultPageSize = 500

// MaxIdentifierLength is the longest accepted table or column name part
// (PostgreSQL's limit).
const MaxIdentifierLength = 63

// ErrInvalidIdentifier: a table or column name is not a plain SQL
// identifier.
var ErrInvalidIdentifier = errors.New("sqlmigrator: invalid identifier")

// Table names the table and its columns.
type Table struct {
	// Name is the table, optionally schema-qualified ("public.parts").
	Name string
	// IDColumn is a unique, non-NULL column identifying each row,
	// usually the primary key.
	IDColumn string
	// KeyColumn holds the Backend key of the row's object; NULL or empty
	// means the row has no object.
	KeyColumn string
}

// Option configures a Migrator.
type Option func(*config)

type config struct {
	dollar   bool
	pageSize int
	journal  string // journal table; "" means the default name
}

// WithDollarPlaceholders makes the Migrator write PostgreSQL's SQL: $1,
// $2, ... placeholders instead of ? (SQLite, MySQL), and identifiers
// quoted as "name" instead of `name`. Use it with pgx or lib/pq.
func WithDollarPlaceholders() Option { return func(c *config) { c.dollar = true } }

// WithPageSize sets how many rows one page query reads. The default is
// DefaultPageSize; n below 1 panics, naming the option (a programmer
// error).
func WithPageSize(n int) Option {
	if n < 1 {
		panic(fmt.Sprintf("sqlmigrator: WithPageSize(%d): want at least 1", n))
	}
	return func(c *config) { c.pageSize = n }
}

// idKind is what the ID column holds, learnt from the values it returns.
type idKind int

const (
	idUnknown idKind = iota
	idInteger
	idOther
)

// Migrator implements migrate.Migrator for one table. It is safe for
// concurrent use.
type Migrator struct {
	db         *sql.DB
	table      Table
	pageSize   int
	firstPage  string
	nextPage   string
	update     string
	probeQuery string

	mu   sync.Mutex
	kind idKind

	jr journal // the commit journal (journal.go)

	dollar bool    // WithDollarPlaceholders
	gcs    gcState // Collect's touch table and sorted reads (gc.go)
}

var _ migrate.Migrator = (*Migrator)(nil)

// New returns a Migrator for table t in db. It fails with an error wrapping
// ErrInvalidIdentifier when a name in t is not a plain identifier
// ([A-Za-z_][A-Za-z0-9_]*, at most MaxIdentifierLength characters; the
// table may be qualified with dots), or when the two columns are the same.
// New does no I/O.
func New(db *sql.DB, t Table, opts ...Option) (*Migrator, error) {
	if db == nil {
		return nil, errors.New("sqlmigrator: nil *sql.DB")
	}
	if err := validateName(t.Name, true); err != nil {
		return nil, fmt.Errorf("sqlmigrator: table: %w", err)
	}
	if err := validateName(t.IDColumn, false); err != nil {
		return nil, fmt.Errorf("sqlmigrator: id column: %w", err)
	}
	if err := validateName(t.KeyColumn, false); err != nil {
		return nil, fmt.Errorf("sqlmigrator: key column: %w", err)
	}
	if strings.EqualFold(t.IDColumn, t.KeyColumn) {
		return nil, fmt.Errorf("%w: id and key columns are both %q", ErrInvalidIdentifier, t.IDColumn)
	}
	c := config{pageSize: DefaultPageSize}
	for _, o := range opts {
		o(&c)
	}
	ph := func(int) string { return "?" }
	if c.dollar {
		ph = func(i int) string { return "$" + strconv.Itoa(i) }
	}
	quote := quoteBacktick
	if c.dollar {
		quote = quoteDouble
	}
	id, key, name := quote(t.IDColumn), quote(t.KeyColumn), quoteName(t.Name, quote)
	hasKey := key + " IS NOT NULL AND " + key + " <> ''"
	order := " ORDER BY " + id + " LIMIT " + strconv.Itoa(c.pageSize)
	m := &Migrator{
		db:         db,
		table:      t,
		pageSize:   c.pageSize,
		firstPage:  "SELECT " + id + ", " + key + " FROM " + name + " WHERE " + hasKey + order,
		nextPage:   "SELECT " + id + ", " + key + " FROM " + name + " WHERE " + id + " > " + ph(1) + " AND " + hasKey + order,
		update:     "UPDATE " + name + " SET " + key + " = " + ph(1) + " WHERE " + id + " = " + ph(2) + " AND " + key + " = " + ph(3),
		probeQuery: "SELECT " + id + " FROM " + name + " LIMIT 1",
		dollar:     c.dollar,
	}
	m.jr.init(t, c, ph, quote)
	return m, nil
}

// quoteBacktick quotes a validated identifier for SQLite and MySQL, which
// both accept `name` and keep their usual case rules for it. Quoting lets
// a column be called key, order or user, words that are reserved in SQL.
func quoteBacktick(s string) string { return "`" + s + "`" }

// quoteDouble quotes a validated identifier for PostgreSQL. Unquoted
// names are folded to lower case there, and quoted names are not, so the
// name is lowered first: "Parts" still means the table created as Parts
// (that is, parts), while "user" now means the column and not
// CURRENT_USER. SQLite, which accepts $N placeholders too, ignores case
// in either form.
func quoteDouble(s string) string { return `"` + strings.ToLower(s) + `"` }

// quoteName quotes each part of a validated, possibly schema-qualified
// name.
func quoteName(s string, quote func(string) string) string {
	parts := strings.Split(s, ".")
	for i, p := range parts {
		parts[i] = quote(p)
	}
	return strings.Join(parts, ".")
}

// validateName checks a table or column name; dotted reports whether
// schema qualification is allowed.
func validateName(s string, dotted bool) error {
	if s == "" {
		return fmt.Errorf("%w: empty", ErrInvalidIdentifier)
	}
	parts := []string{s}
	if dotted {
		parts = strings.Split(s, ".")
		if len(parts) > 3 {
			return fmt.Errorf("%w: %q has more than 3 parts", ErrInvalidIdentifier, s)
		}
	}
	for _, p := range parts {
		if err := validateIdent(p); err != nil {
			return fmt.Errorf("%w (in %q)", err, s)
		}
	}
	return nil
}

// validateIdent accepts [A-Za-z_][A-Za-z0-9_]{0,62}.
func validateIdent(s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty name part", ErrInvalidIdentifier)
	}
	if len(s) > MaxIdentifierLength {
		return fmt.Errorf("%w: %d characters, at most %d", ErrInvalidIdentifier, len(s), MaxIdentifierLength)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_'
		if !letter && (i == 0 || c < '0' || c > '9') {
			return fmt.Errorf("%w: %q: character %d (%q) is not allowed", ErrInvalidIdentifier, s, i, c)
		}
	}
	return nil
}

// Table returns the table the Migrator works on.
func (m *Migrator) Table() Table { return m.table }

// row is one row read by a page query.
type row struct {
	id     any    // the ID as the driver returned it, for the next page's bound
	idText string // the ID as Record.ID
	idNull bool
	key    string
}

// rows yields every row with a non-empty key, page by page. Each page is
// read completely and its cursor closed before any row is yielded.
func (m *Migrator) rows(ctx context.Context) iter.Seq2[row, error] {
	return func(yield func(row, error) bool) {
		var last any
		for {
			page, err := m.page(ctx, last)
			if err != nil {
				yield(row{}, err)
				return
			}
			advanced := false
			for _, r := range page {
				if !r.idNull {
					last, advanced = r.id, true
				}
				if !yield(r, nil) {
					return
				}
			}
			if len(page) < m.pageSize {
				return
			}
			if !advanced {
				yield(row{}, fmt.Errorf("sqlmigrator: %s: a page of rows with NULL %s; cannot paginate", m.table.Name, m.table.IDColumn))
				return
			}
		}
	}
}

// page reads the rows after last (all rows from the start when last is nil).
func (m *Migrator) page(ctx context.Context, last any) ([]row, error) {
	var (
		rs  *sql.Rows
		err error
	)
	if last == nil {
		rs, err = m.db.QueryContext(ctx, m.firstPage)
	} else {
		rs, err = m.db.QueryContext(ctx, m.nextPage, last)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlmigrator: query %s: %w", m.table.Name, err)
	}
	defer rs.Close()
	var page []row
	for rs.Next() {
		var (
			id  any
			key sql.NullString
		)
		if err := rs.Scan(&id, &key); err != nil {
			return nil, fmt.Errorf("sqlmigrator: scan %s: %w", m.table.Name, err)
		}
		r := row{key: key.String}
		r.id, r.idText, r.idNull = m.convertID(id)
		page = append(page, r)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("sqlmigrator: read %s: %w", m.table.Name, err)
	}
	return page, nil
}

// convertID turns a scanned ID into a value to bind and its text form, and
// learns the column's kind.
func (m *Migrator) convertID(v any) (bound any, text string, null bool) {
	kind := idOther
	switch x := v.(type) {
	case nil:
		return nil, "", true
	case int64:
		bound, text, kind = x, strconv.FormatInt(x, 10), idInteger
	case int32:
		bound, text, kind = int64(x), strconv.FormatInt(int64(x), 10), idInteger
	case int:
		bound, text, kind = int64(x), strconv.Itoa(x), idInteger
	case uint64:
		bound, text, kind = x, strconv.FormatUint(x, 10), idInteger
	case []byte:
		// Copy: the driver may reuse the buffer.
		bound, text = string(x), string(x)
	case string:
		bound, text = x, x
	default:
		bound, text = x, fmt.Sprint(x)
	}
	m.mu.Lock()
	if m.kind == idUnknown {
		m.kind = kind
	}
	m.mu.Unlock()
	return bound, text, false
}

// Pending implements migrate.Migrator: it yields the rows whose key is
// non-empty and not a CAS key, in ID order. A row with a legacy key and a
// NULL ID cannot be committed and is reported as an error.
func (m *Migrator) Pending(ctx context.Context) iter.Seq2[migrate.Record, error] {
	return func(yield func(migrate.Record, error) bool) {
		for r, err := range m.rows(ctx) {
			if err != nil {
				yield(migrate.Record{}, err)
				return
			}
			if cas.IsKey(r.key) {
				continue
			}
			if r.idNull {
				yield(migrate.Record{}, fmt.Errorf("sqlmigrator: %s: row with key %q has a NULL %s", m.table.Name, r.key, m.table.IDColumn))
				return
			}
			if !yield(migrate.Record{ID: r.idText, Key: r.key}, nil) {
				return
			}
		}
	}
}

// Referenced implements migrate.Migrator: it yields the non-empty key of
// every row, legacy or CAS.
func (m *Migrator) Referenced(ctx context.Context) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		for r, err := range m.rows(ctx) {
			if err != nil {
				yield("", err)
				return
			}
			if !yield(r.key, nil) {
				return
			}
		}
	}
}

// Commit implements migrate.Migrator: in its own transaction it sets the
// key of the row rec.ID to newKey if the row still holds rec.Key, and
// records the commit in the journal table (see Migrator.Journal). No
// matching row is an error wrapping migrate.ErrConflict; more than one
// (a non-unique ID column) is an error and changes nothing. newKey must be
// a CAS key.
func (m *Migrator) Commit(ctx context.Context, rec migrate.Record, newKey string) error {
	if !cas.IsKey(newKey) {
		return fmt.Errorf("sqlmigrator: commit %q: new key %q is not a CAS key", rec.ID, newKey)
	}
	if rec.Key == "" {
		return fmt.Errorf("sqlmigrator: commit %q: empty old key", rec.ID)
	}
	id, err := m.bindID(ctx, rec.ID)
	if err != nil {
		return err
	}
	if err := m.ensureJournal(ctx); err != nil {
		return fmt.Errorf("sqlmigrator: commit %q: %w", rec.ID, err)
	}
	tx, err := m.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlmigrator: commit %q: begin: %w", rec.ID, err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	res, err := tx.ExecContext(ctx, m.update, newKey, id, rec.Key)
	if err != nil {
		return fmt.Errorf("sqlmigrator: commit %q: update: %w", rec.ID, err)
	}
	n, err := res.RowsAffected()
	switch {
	case err != nil:
		return fmt.Errorf("sqlmigrator: commit %q: rows affected: %w", rec.ID, err)
	case n == 0:
		return fmt.Errorf("sqlmigrator: commit %q: no row with %s = %q: %w", rec.ID, m.table.KeyColumn, rec.Key, migrate.ErrConflict)
	case n > 1:
		return fmt.Errorf("sqlmigrator: commit %q: %d rows match; %s is not unique; nothing changed", rec.ID, n, m.table.IDColumn)
	}
	if err := m.journalCommit(ctx, tx, rec, newKey); err != nil {
		return fmt.Errorf("sqlmigrator: commit %q: %w", rec.ID, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlmigrator: commit %q: %w", rec.ID, err)
	}
	return nil
}

// bindID converts a Record.ID to the value to bind for the ID column:
// an int64 for integer columns, the string otherwise. When the column's
// kind is not yet known, one row is probed.
func (m *Migrator) bindID(ctx context.Context, id string) (any, error) {
	m.mu.Lock()
	kind := m.kind
	m.mu.Unlock()
	if kind == idUnknown {
		var v any
		err := m.db.QueryRowContext(ctx, m.probeQuery).Scan(&v)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			// An empty table: nothing can match; Commit reports a conflict.
		case err != nil:
			return nil, fmt.Errorf("sqlmigrator: probe %s: %w", m.table.Name, err)
		default:
			m.convertID(v)
		}
		m.mu.Lock()
		kind = m.kind
		m.mu.Unlock()
	}
	if kind != idInteger {
		return id, nil
	}
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("sqlmigrator: record ID %q is not an integer, but %s holds integers", id, m.table.IDColumn)
	}
	return n, nil
}
