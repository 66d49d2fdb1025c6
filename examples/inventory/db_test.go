package main

import (
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
