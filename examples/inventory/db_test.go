package main

import (
	"bytes"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/internal/testutil"
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

// TestRewrite: the app's SQL, written with ? and "quoted" identifiers,
// as each engine gets it.
func TestRewrite(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, dollar, mysql string }{
		{`SELECT 1`, `SELECT 1`, `SELECT 1`},
		{`SELECT a FROM t WHERE b = ? AND c IN (?,?)`, `SELECT a FROM t WHERE b = $1 AND c IN ($2,$3)`, `SELECT a FROM t WHERE b = ? AND c IN (?,?)`},
		{`SELECT '?', "a?b", ? FROM t`, `SELECT '?', "a?b", $1 FROM t`, "SELECT '?', `a?b`, ? FROM t"},
		{`SELECT 'it''s ?', ?`, `SELECT 'it''s ?', $1`, `SELECT 'it''s ?', ?`},
		{`INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, `INSERT INTO t VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`, `INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{`UPDATE parts SET c = ? WHERE "key" = ?`, `UPDATE parts SET c = $1 WHERE "key" = $2`, "UPDATE parts SET c = ? WHERE `key` = ?"},
		{`SELECT '"key"', "key" FROM parts`, `SELECT '"key"', "key" FROM parts`, "SELECT '\"key\"', `key` FROM parts"},
	}
	for _, c := range cases {
		require.Equal(t, c.in, dialectSQLite.rewrite(c.in), "SQLite takes the query as it is")
		require.Equal(t, c.dollar, dialectPostgres.rewrite(c.in))
		require.Equal(t, c.mysql, dialectMySQL.rewrite(c.in))
	}
}

// TestBadDB: a -db value that cannot work stops the app at start-up with
// one line that names the database (never its password) and the problem.
// The server subtests also reach the real servers with a database that
// does not exist and (MySQL) a wrong password.
func TestBadDB(t *testing.T) {
	t.Parallel()
	cases := []struct{ db, want string }{
		{"postgres://casa:s3cret@127.0.0.1:1/inventory", "cannot connect"},
		{"postgresql://casa:s3cret@127.0.0.1:1/inventory", "cannot connect"},
		{"postgres://casa:s3cret@127.0.0.1:notaport/inventory", "invalid PostgreSQL URL"},
		{"postgres://casa@127.0.0.1/inventory?sslmode=sometimes", "invalid PostgreSQL URL"},
		{"mysql://casa:s3cret@127.0.0.1:1/inventory", "cannot connect"},
		{"mariadb://casa:s3cret@127.0.0.1:1/inventory", "cannot connect"},
		{"mysql://casa:s3cret@127.0.0.1:notaport/inventory", "malformed MySQL URL"},
		{"mysql://casa:s3cret@127.0.0.1", "invalid MySQL URL: want mysql://USER:PASSWORD@HOST[:PORT]/DATABASE"},
		{"mysql://casa:s3cret@127.0.0.1/inventory?tls=sometimes", "invalid MySQL URL"},
		{"oracle://casa:s3cret@127.0.0.1/inventory", "unsupported; -db takes a postgres:// or mysql:// URL, or a SQLite file path"},
		{filepath.Join(t.TempDir(), "missing-dir", "inventory.db"), "create schema"},
	}
	check := func(t *testing.T, db, want string) {
		t.Helper()
		var out bytes.Buffer
		err := run(t.Context(), []string{"-data", t.TempDir(), "-db", db, "-migrate-only"}, &out)
		require.Error(t, err, db)
		msg := err.Error()
		require.Contains(t, msg, "database ", db)
		require.Contains(t, msg, want, db)
		require.NotContains(t, msg, "\n", "one line")
		require.NotContains(t, msg, "s3cret", "no password")
	}
	for _, c := range cases {
		check(t, c.db, c.want)
	}
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		u, err := url.Parse(testutil.NewPostgres(t).URL())
		require.NoError(t, err)
		u.Path = "/casa_no_such_database"
		check(t, u.String(), "cannot connect")
	})
	t.Run("mysql", func(t *testing.T) {
		t.Parallel()
		u, err := url.Parse(testutil.NewMySQL(t).URL())
		require.NoError(t, err)
		missing := *u
		missing.Path = "/casa_no_such_database"
		check(t, missing.String(), "cannot connect")
		wrong := *u
		wrong.User = url.UserPassword(u.User.Username(), "not-the-s3cret")
		check(t, wrong.String(), "Access denied")
	})
}
