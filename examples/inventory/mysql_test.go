package main

import (
	"context"
	"database/sql"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/internal/testutil"
)

// TestMySQLBinaryKeys: on a MySQL/MariaDB database whose default
// character set is latin1 (MariaDB's own default), the app's tables are
// utf8mb4 with the binary collation anyway: legacy keys that differ only
// in case, or hold characters latin1 lacks, are distinct rows that
// migrate and journal, and a part key from a URL with such characters is
// a 404 (an ascii or latin1 key column refuses to compare with it: a 500).
func TestMySQLBinaryKeys(t *testing.T) {
	t.Parallel()
	tdb := testutil.NewMySQL(t)
	_, err := tdb.ExecContext(t.Context(), "ALTER DATABASE "+tdb.Schema+" CHARACTER SET latin1 COLLATE latin1_swedish_ci")
	require.NoError(t, err)

	db, err := openDB(t.Context(), tdb.URL())
	require.NoError(t, err)
	var cols []string
	rows, err := db.QueryContext(t.Context(), `SELECT CONCAT(TABLE_NAME, '.', COLUMN_NAME, ' ', COLLATION_NAME)
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND COLLATION_NAME IS NOT NULL
		AND TABLE_NAME IN ('parts', 'attachments') ORDER BY 1`)
	require.NoError(t, err)
	for rows.Next() {
		var c string
		require.NoError(t, rows.Scan(&c))
		cols = append(cols, c)
	}
	require.NoError(t, rows.Err())
	require.Contains(t, cols, "attachments.storage_key utf8mb4_bin")
	require.Contains(t, cols, "parts.key utf8mb4_bin")
	require.Contains(t, cols, "attachments.part_key utf8mb4_bin")

	b := memstore.New()
	legacy := []string{"legacy/Photo.jpg", "legacy/photo.jpg", "legacy/日本-ü.pdf", "legacy/emoji-😀"}
	p, err := insertPart(t.Context(), db, "ünïcode ✓ part", time.Now())
	require.NoError(t, err)
	for i, k := range legacy {
		data := testutil.Bytes(uint64(10+i), 300+i)
		require.NoError(t, b.Put(t.Context(), k, strings.NewReader(string(data)), int64(len(data)), cas.PutOptions{}))
		at := attachment{PartKey: p.Key, Title: k, StorageKey: sql.NullString{String: k, Valid: true}}
		require.NoError(t, insertAttachment(t.Context(), db, &at))
		require.Positive(t, at.ID)
	}
	require.NoError(t, db.Close())
	before := storageKeys(t, tdb.URL())
	require.ElementsMatch(t, legacy, mapValues(before), "case-distinct and non-latin1 keys are rows of their own")

	ta := newTestApp(t, Config{DB: tdb.URL(), Backend: b, Migrate: MigrateBlocking})
	r := ta.Migration.Report
	require.Equal(t, len(legacy), r.Migrated, "%+v", r)
	require.Zero(t, r.Failed)
	for id, k := range storageKeys(t, tdb.URL()) {
		require.True(t, cas.IsKey(k), "row %d: %s", id, k)
	}
	var journaled int
	require.NoError(t, ta.db.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM attachments_casa_journal WHERE old_key = ?`, "legacy/日本-ü.pdf").Scan(&journaled))
	require.Equal(t, 1, journaled, "the journal holds the non-latin1 key as it was")

	var got partJSON
	ta.doJSON("GET", "/api/parts/"+p.Key, nil, http.StatusOK, &got)
	require.Equal(t, "ünïcode ✓ part", got.Description)
	for _, key := range []string{"ü-日本", "😀", strings.ToUpper(p.Key)} {
		status, body := ta.do("GET", "/api/parts/"+url.PathEscape(key), "", nil)
		require.Equal(t, http.StatusNotFound, status, "%s: %s", key, body)
	}
}

func mapValues[K comparable, V any](m map[K]V) []V {
	vs := make([]V, 0, len(m))
	for _, v := range m {
		vs = append(vs, v)
	}
	return vs
}

// TestMySQLSchemaLockHeld: an opener waits for the schema lock that
// another session (a replica creating the schema) holds, within the
// start-up bound; it fails with one line naming the lock when the holder
// does not let go, and opens once it has.
func TestMySQLSchemaLockHeld(t *testing.T) {
	t.Parallel()
	tdb := testutil.NewMySQL(t)
	holder, err := tdb.Conn(t.Context())
	require.NoError(t, err)
	defer holder.Close()
	var got int
	require.NoError(t, holder.QueryRowContext(t.Context(), `SELECT GET_LOCK(`+mysqlSchemaLock+`, 0)`).Scan(&got))
	require.Equal(t, 1, got)

	ctx, cancel := context.WithTimeout(t.Context(), 2500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = openDB(ctx, tdb.URL())
	require.Error(t, err)
	require.Less(t, time.Since(start), 10*time.Second)
	require.Contains(t, err.Error(), "create schema: lock")
	require.NotContains(t, err.Error(), "\n")

	require.NoError(t, holder.QueryRowContext(t.Context(), `SELECT RELEASE_LOCK(`+mysqlSchemaLock+`)`).Scan(&got))
	require.Equal(t, 1, got)
	db, err := openDB(t.Context(), tdb.URL())
	require.NoError(t, err)
	require.Equal(t, 0, countRows(t, db, "parts"))
	require.NoError(t, db.Close())
}
