package sqlmigrator_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/migrate"
	"github.com/casa-go/casa/migrate/sqlmigrator"
)

// TestMySQLSideTablesUTF8MB4: in a database whose default character set is
// latin1 (MariaDB's own default), the journal and the touch table are made
// utf8mb4 with the binary collation. Before, they took latin1: the
// journal insert of a commit whose old key is outside cp1252 failed
// (Incorrect string value), so those rows never migrated; and touches of
// keys that differ only in case were one row.
func TestMySQLSideTablesUTF8MB4(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := testutil.NewMySQL(t)
	_, err := db.ExecContext(ctx, "ALTER DATABASE "+db.Schema+" CHARACTER SET latin1 COLLATE latin1_swedish_ci")
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, "CREATE TABLE files (id BIGINT PRIMARY KEY, k VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin)")
	require.NoError(t, err)
	b := memstore.New()
	keys := []string{"uploads/😀.png", "uploads/日本.pdf", "uploads/plain.txt"}
	for i, k := range keys {
		data := []byte(k)
		require.NoError(t, b.Put(ctx, k, bytes.NewReader(data), int64(len(data)), cas.PutOptions{}))
		_, err := db.ExecContext(ctx, "INSERT INTO files VALUES (?, ?)", i+1, k)
		require.NoError(t, err)
	}
	m, err := sqlmigrator.New(db.DB, sqlmigrator.Table{Name: "files", IDColumn: "id", KeyColumn: "k"})
	require.NoError(t, err)
	rep, err := migrate.Run(ctx, cas.New(b), m, migrate.Options{})
	require.NoError(t, err)
	require.Equal(t, len(keys), rep.Migrated, "%+v", rep)

	var n int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+m.JournalTable()+" WHERE old_key = ?", "uploads/😀.png").Scan(&n))
	require.Equal(t, 1, n, "the journal holds the key as it was")

	for _, k := range []string{"cas/ABC", "cas/abc", "cas/😀"} {
		require.NoError(t, m.Touch(ctx, k))
	}
	require.NoError(t, db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+m.GCTable()).Scan(&n))
	require.Equal(t, 3, n, "touches of keys that differ in case are rows of their own")
	deleted, err := m.CollectKey(ctx, "cas/abc", time.Now().Add(-time.Hour), func(ctx context.Context) error {
		return errors.New("must not delete a recently touched key")
	})
	require.NoError(t, err)
	require.False(t, deleted, "the touch (case-distinct from cas/ABC) protects cas/abc")

	for _, table := range []string{m.JournalTable(), m.GCTable()} {
		var latin int
		require.NoError(t, db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.COLUMNS
			WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLLATION_NAME IS NOT NULL
			AND COLLATION_NAME <> 'utf8mb4_bin'`, table).Scan(&latin))
		require.Zero(t, latin, "%s: every text column utf8mb4_bin", table)
	}
}
