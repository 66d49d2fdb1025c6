package migrate_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/cas/s3store"
	"github.com/casa-go/casa/internal/testutil/s3test"
	"github.com/casa-go/casa/migrate"
)

// realLegacyKeys are keys that real buckets hold and that cas.CheckKey
// refuses for a write: a Backend holds them, so migrate must read, migrate
// and delete them.
func realLegacyKeys() []string {
	return []string{
		"/uploads/a.pdf",
		"uploads//b.pdf",
		`C:\scans\c.pdf`,
		".well-known/x",
		"Cas/readme.txt",
		"uploads/" + strings.Repeat("n", cas.MaxSegmentLen+45) + ".pdf",
	}
}

// TestLegacyKeysMigrateAndCleanUp: records on keys that cas.CheckKey
// refuses (leading slash, empty segment, backslashes, a dot first
// segment, "Cas/" in another letter case, a segment over MaxSegmentLen)
// all migrate, and Cleanup deletes their legacy objects once nothing
// references them, while a referenced one stays. Over memstore and over
// s3store on the S3 test server, each seeded behind the checked layer's
// back, as a bucket written before casa would be.
func TestLegacyKeysMigrateAndCleanUp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		new  func(t *testing.T) (cas.Backend, func(key string, body []byte))
	}{
		{"memstore", func(t *testing.T) (cas.Backend, func(string, []byte)) {
			b := memstore.New()
			return b, func(key string, body []byte) {
				// memstore is thin: it stores any key it is given.
				require.NoError(t, b.Put(context.Background(), key, bytes.NewReader(body), int64(len(body)), cas.PutOptions{}))
			}
		}},
		{"s3store", func(t *testing.T) (cas.Backend, func(string, []byte)) {
			srv := s3test.New(t)
			return s3store.New(srv.Client, srv.Bucket), func(key string, body []byte) { srv.Seed(t, key, body) }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			b, seed := tc.new(t)
			store := cas.New(b)

			rows := make(map[string]string)
			want := make(map[string][]byte)
			legacy := realLegacyKeys()
			for i, key := range legacy {
				id := fmt.Sprintf("r%d", i)
				body := []byte("legacy bytes of " + key)
				seed(key, body)
				rows[id] = key
				want[id] = body
			}
			m := newMemMigrator(rows)
			// Another table still points at this legacy key: Cleanup keeps it.
			const referenced = "/uploads/still-referenced.pdf"
			seed(referenced, []byte("kept"))
			m.extra = []string{referenced}

			rep, err := migrate.Run(ctx, store, m, migrate.Options{})
			require.NoError(t, err)
			require.NoError(t, rep.Err(), "failures: %v", rep.Failures)
			require.Equal(t, len(legacy), rep.Migrated, "every legacy key migrates")
			require.Zero(t, rep.Failed)
			require.Zero(t, m.pendingCount())
			for id, key := range m.snapshot() {
				require.True(t, cas.IsKey(key), "record %s", id)
				h, err := cas.ParseKey(key)
				require.NoError(t, err)
				require.Equal(t, cas.SumBytes(want[id]), h, "record %s", id)
				require.NoError(t, store.Verify(ctx, h), "record %s", id)
			}

			crep, deleted, err := cleanup(ctx, store, m, migrate.CleanupOptions{})
			require.NoError(t, err)
			wantDeleted := slices.Sorted(slices.Values(legacy))
			require.Equal(t, wantDeleted, deleted, "every unreferenced legacy key is deleted")
			require.Equal(t, len(legacy), crep.Deleted)

			left := keys(t, b, "")
			require.Contains(t, left, referenced, "a referenced legacy key is kept")
			for _, key := range legacy {
				require.NotContains(t, left, key)
			}
			require.Len(t, left, len(legacy)+1, "the blobs and the referenced key remain")
		})
	}
}
