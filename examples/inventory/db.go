package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// schema is created at startup when missing. storage_key is the Backend key
// of an attachment's file: "cas/<hex>" once migrated, a UUID key before, NULL
// for a URL attachment. It never leaves the server: responses carry URLs.
const schema = `
CREATE TABLE IF NOT EXISTS parts (
	key                 TEXT PRIMARY KEY,
	description         TEXT NOT NULL,
	cover_attachment_id INTEGER NULL REFERENCES attachments(id) ON DELETE SET NULL,
	created_at          TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS attachments (
	id           INTEGER PRIMARY KEY,
	part_key     TEXT NOT NULL REFERENCES parts(key),
	title        TEXT NOT NULL,
	filename     TEXT NULL,
	content_type TEXT NULL,
	file_size    INTEGER NULL,
	url          TEXT NULL,
	storage_key  TEXT NULL
);
CREATE INDEX IF NOT EXISTS attachments_part_key ON attachments(part_key);
CREATE INDEX IF NOT EXISTS parts_created_at_key ON parts(created_at, key);
`

// errNotFound is returned by the queries below for a missing row.
var errNotFound = errors.New("not found")

// openDB opens the SQLite database at path and creates the schema. WAL lets
// readers run beside the single writer; immediate transactions and a busy
// timeout make concurrent writers wait for each other instead of failing.
func openDB(ctx context.Context, path string) (*sql.DB, error) {
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() +
		"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("inventory: open database: %w", err)
	}
	db.SetMaxOpenConns(4)
	// Keep them all open: a connection (and its WAL files) reopened while
	// the process is short of file descriptors would fail the request.
	db.SetMaxIdleConns(4)
	if _, err := db.ExecContext(ctx, schema); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("inventory: create schema: %w", err)
	}
	return db, nil
}

// part is a row of parts.
type part struct {
	Key         string
	Description string
	CoverID     sql.NullInt64
	CreatedAt   time.Time
	// created is created_at as stored: the sort key of the parts' order.
	created string
	// Cover is the cover attachment, joined in by the queries.
	Cover *attachment
}

// attachment is a row of attachments. A file attachment has Filename,
// ContentType, FileSize and StorageKey; a URL attachment has URL.
type attachment struct {
	ID          int64
	PartKey     string
	Title       string
	Filename    sql.NullString
	ContentType sql.NullString
	FileSize    sql.NullInt64
	URL         sql.NullString
	StorageKey  sql.NullString
}

const attachmentColumns = `a.id, a.part_key, a.title, a.filename, a.content_type, a.file_size, a.url, a.storage_key`

func scanAttachment(sc interface{ Scan(...any) error }) (attachment, error) {
	var a attachment
	err := sc.Scan(&a.ID, &a.PartKey, &a.Title, &a.Filename, &a.ContentType, &a.FileSize, &a.URL, &a.StorageKey)
	return a, err
}

// partQuery selects parts with their cover attachment (if any).
const partQuery = `SELECT p.key, p.description, p.cover_attachment_id, p.created_at,
	c.content_type, c.storage_key
	FROM parts p LEFT JOIN attachments c ON c.id = p.cover_attachment_id`

func scanPart(sc interface{ Scan(...any) error }) (part, error) {
	var (
		p       part
		ct, key sql.NullString
	)
	if err := sc.Scan(&p.Key, &p.Description, &p.CoverID, &p.created, &ct, &key); err != nil {
		return p, err
	}
	t, err := time.Parse(time.RFC3339Nano, p.created)
	if err != nil {
		return p, fmt.Errorf("part %s: created_at: %w", p.Key, err)
	}
	p.CreatedAt = t
	if p.CoverID.Valid {
		p.Cover = &attachment{ID: p.CoverID.Int64, ContentType: ct, StorageKey: key}
	}
	return p, nil
}

func getPart(ctx context.Context, q querier, key string) (part, error) {
	p, err := scanPart(q.QueryRowContext(ctx, partQuery+` WHERE p.key = ?`, key))
	if errors.Is(err, sql.ErrNoRows) {
		return p, fmt.Errorf("part %q: %w", key, errNotFound)
	}
	return p, err
}

// partCursor is a position in the order of parts, which is by created_at
// (as stored), then key. The zero cursor is before the first part.
type partCursor struct {
	created, key string
}

// cursor is the position of p.
func (p part) cursor() partCursor { return partCursor{created: p.created, key: p.Key} }

// listParts returns at most limit parts after the cursor, in order: keyset
// pagination, so a page costs the same however deep it is, and parts
// created while a client pages through are neither skipped nor repeated.
func listParts(ctx context.Context, q querier, after partCursor, limit int) ([]part, error) {
	rows, err := q.QueryContext(ctx, partQuery+` WHERE (p.created_at, p.key) > (?, ?)
		ORDER BY p.created_at, p.key LIMIT ?`, after.created, after.key, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	parts := []part{}
	for rows.Next() {
		p, err := scanPart(rows)
		if err != nil {
			return nil, err
		}
		parts = append(parts, p)
	}
	return parts, rows.Err()
}

// createdAtLayout is how created_at is stored: RFC 3339 in UTC with all
// nine fractional digits, so that the text sorts in time order
// (time.RFC3339Nano drops trailing zeros: ".5Z" would sort after ".51Z").
const createdAtLayout = "2006-01-02T15:04:05.000000000Z07:00"

func insertPart(ctx context.Context, q querier, description string, now time.Time) (part, error) {
	p := part{Key: newPartKey(), Description: description, CreatedAt: now.UTC()}
	p.created = p.CreatedAt.Format(createdAtLayout)
	_, err := q.ExecContext(ctx, `INSERT INTO parts (key, description, created_at) VALUES (?, ?, ?)`,
		p.Key, p.Description, p.created)
	return p, err
}

func getAttachment(ctx context.Context, q querier, partKey string, id int64) (attachment, error) {
	a, err := scanAttachment(q.QueryRowContext(ctx,
		`SELECT `+attachmentColumns+` FROM attachments a WHERE a.part_key = ? AND a.id = ?`, partKey, id))
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("attachment %d of part %q: %w", id, partKey, errNotFound)
	}
	return a, err
}

func listAttachments(ctx context.Context, q querier, partKey string) ([]attachment, error) {
	rows, err := q.QueryContext(ctx,
		`SELECT `+attachmentColumns+` FROM attachments a WHERE a.part_key = ? ORDER BY a.id`, partKey)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	atts := []attachment{}
	for rows.Next() {
		a, err := scanAttachment(rows)
		if err != nil {
			return nil, err
		}
		atts = append(atts, a)
	}
	return atts, rows.Err()
}

// listAttachmentsOf returns the attachments of the given parts, by part
// key, each part's in id order: one query for a whole page.
func listAttachmentsOf(ctx context.Context, q querier, partKeys []string) (map[string][]attachment, error) {
	out := make(map[string][]attachment, len(partKeys))
	if len(partKeys) == 0 {
		return out, nil
	}
	args := make([]any, len(partKeys))
	for i, k := range partKeys {
		args[i] = k
	}
	rows, err := q.QueryContext(ctx, `SELECT `+attachmentColumns+` FROM attachments a
		WHERE a.part_key IN (?`+strings.Repeat(",?", len(partKeys)-1)+`) ORDER BY a.part_key, a.id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		a, err := scanAttachment(rows)
		if err != nil {
			return nil, err
		}
		out[a.PartKey] = append(out[a.PartKey], a)
	}
	return out, rows.Err()
}

// insertAttachment inserts a and sets a.ID. The part must exist.
func insertAttachment(ctx context.Context, q querier, a *attachment) error {
	res, err := q.ExecContext(ctx, `INSERT INTO attachments
		(part_key, title, filename, content_type, file_size, url, storage_key)
		SELECT key, ?, ?, ?, ?, ?, ? FROM parts WHERE key = ?`,
		a.Title, a.Filename, a.ContentType, a.FileSize, a.URL, a.StorageKey, a.PartKey)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return fmt.Errorf("part %q: %w", a.PartKey, errNotFound)
	}
	a.ID, err = res.LastInsertId()
	return err
}

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// newPartKey returns a short random part key: 10 characters of lowercase
// base32 (50 bits), plenty for an inventory.
func newPartKey() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	var b [10]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	for i := range b {
		b[i] = alphabet[b[i]%32]
	}
	return string(b[:])
}
