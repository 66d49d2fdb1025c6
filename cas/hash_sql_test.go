package cas_test

import (
	"database/sql"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"

	"github.com/casa-go/casa/cas"
)

func TestHashValue(t *testing.T) {
	t.Parallel()
	h := cas.SumBytes([]byte("value"))
	v, err := h.Value()
	require.NoError(t, err)
	require.Equal(t, h.String(), v)

	v, err = cas.Hash{}.Value()
	require.NoError(t, err)
	require.Nil(t, v, "the zero Hash is NULL")
}

func TestHashScan(t *testing.T) {
	t.Parallel()
	h := cas.SumBytes([]byte("scan"))
	good := []struct {
		name string
		src  any
		want cas.Hash
	}{
		{"text string", h.String(), h},
		{"text bytes", []byte(h.String()), h},
		{"raw bytes", h[:], h},
		{"NULL", nil, cas.Hash{}},
	}
	for _, tc := range good {
		t.Run(tc.name, func(t *testing.T) {
			got := cas.SumBytes([]byte("something else"))
			require.NoError(t, got.Scan(tc.src))
			require.Equal(t, tc.want, got)
		})
	}
	bad := []struct {
		name string
		src  any
	}{
		{"uppercase", strings.ToUpper(h.String())},
		{"short text", h.String()[:63]},
		{"long text", h.String() + "0"},
		{"31 raw bytes", h[:31]},
		{"33 raw bytes", append(h[:], 0)},
		{"empty", ""},
		{"CAS key", h.Key()},
		{"integer", int64(7)},
		{"float", 1.5},
		{"bool", true},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			before := cas.SumBytes([]byte("unchanged"))
			got := before
			require.ErrorIs(t, got.Scan(tc.src), cas.ErrInvalidHash)
			require.Equal(t, before, got, "a failed Scan leaves the Hash unchanged")
		})
	}
}

// TestHashDatabaseSQL stores and reads a Hash through database/sql with a
// real SQLite database, in a text column and in a binary one.
func TestHashDatabaseSQL(t *testing.T) {
	t.Parallel()
	db, err := sql.Open("sqlite", ":memory:")
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	db.SetMaxOpenConns(1)
	ctx := t.Context()
	_, err = db.ExecContext(ctx, `CREATE TABLE files (id INTEGER PRIMARY KEY, hash TEXT, raw BLOB)`)
	require.NoError(t, err)

	h := cas.SumBytes([]byte("stored through database/sql"))
	_, err = db.ExecContext(ctx, `INSERT INTO files (id, hash, raw) VALUES (1, ?, ?)`, h, h[:])
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, `INSERT INTO files (id, hash, raw) VALUES (2, ?, NULL)`, cas.Hash{})
	require.NoError(t, err)

	var text string
	require.NoError(t, db.QueryRowContext(ctx, `SELECT hash FROM files WHERE id = 1`).Scan(&text))
	require.Equal(t, h.String(), text, "a Hash is stored in its text form")

	var fromText, fromRaw cas.Hash
	require.NoError(t, db.QueryRowContext(ctx, `SELECT hash, raw FROM files WHERE id = 1`).Scan(&fromText, &fromRaw))
	require.Equal(t, h, fromText)
	require.Equal(t, h, fromRaw)

	var isNull bool
	require.NoError(t, db.QueryRowContext(ctx, `SELECT hash IS NULL FROM files WHERE id = 2`).Scan(&isNull))
	require.True(t, isNull, "the zero Hash is stored as NULL")
	got := h
	require.NoError(t, db.QueryRowContext(ctx, `SELECT hash FROM files WHERE id = 2`).Scan(&got))
	require.True(t, got.IsZero())

	// Lookups by Hash work as query arguments.
	var id int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT id FROM files WHERE hash = ?`, h).Scan(&id))
	require.Equal(t, 1, id)
}

// FuzzHashScan: Scan of any bytes either fails with ErrInvalidHash and
// leaves the Hash alone, or yields a Hash whose Value scans back to it.
func FuzzHashScan(f *testing.F) {
	h := cas.SumBytes([]byte("fuzz"))
	f.Add([]byte(h.String()))
	f.Add(h[:])
	f.Add([]byte(strings.ToUpper(h.String())))
	f.Add([]byte{})
	f.Add([]byte(h.Key()))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, src := range []any{b, string(b)} {
			var got cas.Hash
			if err := got.Scan(src); err != nil {
				if !errors.Is(err, cas.ErrInvalidHash) || !got.IsZero() {
					t.Fatalf("Scan(%q): %v, %v", b, got, err)
				}
				continue
			}
			v, err := got.Value()
			if err != nil {
				t.Fatal(err)
			}
			var back cas.Hash
			if err := back.Scan(v); err != nil || back != got {
				t.Fatalf("Scan(Value()) of %v = %v, %v", got, back, err)
			}
		}
	})
}
