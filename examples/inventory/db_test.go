package main

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestListPartsInCreationOrder lists parts created within one second in
// creation order, whatever their fractional seconds look like.
func TestListPartsInCreationOrder(t *testing.T) {
	t.Parallel()
	db, err := openDB(t.Context(), filepath.Join(t.TempDir(), "inventory.db"))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	offsets := []time.Duration{0, 500_000_000, 512_345_678, 900_000_000, 900_000_001}
	var want []string
	for _, ns := range offsets {
		p, err := insertPart(t.Context(), db, "part", base.Add(ns))
		require.NoError(t, err)
		want = append(want, p.Key)
	}
	parts, err := listParts(t.Context(), db, partCursor{}, 100)
	require.NoError(t, err)
	var got []string
	for i, p := range parts {
		got = append(got, p.Key)
		require.True(t, p.CreatedAt.Equal(base.Add(offsets[i])), "created_at reads back: %v", p.CreatedAt)
	}
	require.Equal(t, want, got)
}

func TestBindVars(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, dollar string }{
		{`SELECT 1`, `SELECT 1`},
		{`SELECT a FROM t WHERE b = ? AND c IN (?,?)`, `SELECT a FROM t WHERE b = $1 AND c IN ($2,$3)`},
		{`SELECT '?', "a?b", ? FROM t`, `SELECT '?', "a?b", $1 FROM t`},
		{`SELECT 'it''s ?', ?`, `SELECT 'it''s ?', $1`},
		{`INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, `INSERT INTO t VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`},
	}
	for _, c := range cases {
		require.Equal(t, c.in, bindVars(c.in, false), "SQLite keeps ?")
		require.Equal(t, c.dollar, bindVars(c.in, true))
	}
}

// TestBadDB: a -db value that cannot work stops the app at start-up with
// one line that names the database (never its password) and the problem.
func TestBadDB(t *testing.T) {
	t.Parallel()
	cases := []struct{ db, want string }{
		{"postgres://casa:s3cret@127.0.0.1:1/inventory", "cannot connect"},
		{"postgresql://casa:s3cret@127.0.0.1:1/inventory", "cannot connect"},
		{"postgres://casa:s3cret@127.0.0.1:notaport/inventory", "invalid PostgreSQL URL"},
		{"postgres://casa@127.0.0.1/inventory?sslmode=sometimes", "invalid PostgreSQL URL"},
		{"mysql://casa:s3cret@127.0.0.1/inventory", "unsupported; -db takes a postgres:// URL or a SQLite file path"},
		{filepath.Join(t.TempDir(), "missing-dir", "inventory.db"), "create schema"},
	}
	for _, c := range cases {
		var out bytes.Buffer
		err := run(t.Context(), []string{"-data", t.TempDir(), "-db", c.db, "-migrate-only"}, &out)
		require.Error(t, err, c.db)
		msg := err.Error()
		require.Contains(t, msg, "database ", c.db)
		require.Contains(t, msg, c.want, c.db)
		require.NotContains(t, msg, "\n", "one line")
		require.NotContains(t, msg, "s3cret", "no password")
	}
}
