package migrate_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/migrate"
)

// FuzzRun migrates records with hostile keys and arbitrary bytes and checks
// the invariants: a record on a legacy key whose object exists (a key that
// cas.CheckKey accepts) ends on the
// hash of that object's bytes; a record without an object keeps its key
// and fails; CAS and empty keys are never touched; legacy objects survive.
func FuzzRun(f *testing.F) {
	f.Add("uploads/7f1e7a9e-3c2b-4f0e-9a53-0c6f0f3b8e11", []byte("hello"), "other", []byte("hello"), true)
	f.Add("", []byte{}, "cas/notahash", []byte{0}, false)
	f.Add(cas.SumBytes([]byte("x")).Key(), []byte("x"), "../../etc/passwd", []byte("root"), true)
	f.Add("cas/"+string(bytes.Repeat([]byte("A"), 64)), []byte("upper"), "\x00\xff", []byte{}, true)
	f.Add("thumbnails/x_200.jpg", bytes.Repeat([]byte{0xff}, 4096), "k", []byte("k"), false)
	f.Fuzz(func(t *testing.T, key1 string, data1 []byte, key2 string, data2 []byte, store2 bool) {
		ctx := context.Background()
		b := memstore.New()
		store := cas.New(b)
		type row struct {
			id, key string
			data    []byte
			stored  bool
		}
		// A key that cas.CheckKey refuses cannot be stored in a Backend
		// (Run reads its Source through cas.Checked), so no object exists
		// under it.
		valid := func(k string) bool { return cas.CheckKey(k) == nil }
		rows := []row{{"1", key1, data1, valid(key1)}, {"2", key2, data2, store2 && valid(key2)}}
		if key1 == key2 {
			rows[1].stored = false
			rows[1].data = data1
		}
		m := newMemMigrator(map[string]string{"1": key1, "2": key2})
		for _, r := range rows {
			if r.stored {
				put(t, b, r.key, r.data)
			}
		}
		before := map[string][]byte{}
		for info, err := range b.List(ctx, "") {
			require.NoError(t, err)
			before[info.Key] = read(t, b, info.Key)
		}

		rep, err := migrate.Run(ctx, store, m, migrate.Options{Concurrency: 2})
		require.NoError(t, err)

		pending := 0
		for _, r := range rows {
			got := m.key(r.id)
			legacy := r.key != "" && !cas.IsKey(r.key)
			if legacy {
				pending++
			}
			_, exists := before[r.key]
			switch {
			case !legacy:
				require.Equal(t, r.key, got, "non-legacy keys are never touched")
			case exists:
				h := cas.SumBytes(before[r.key])
				require.Equal(t, h.Key(), got)
				require.Equal(t, before[r.key], read(t, b, got))
			default:
				require.Equal(t, r.key, got, "a record without an object keeps its key")
			}
		}
		require.Equal(t, pending, rep.Seen)
		require.Equal(t, rep.Seen, rep.Migrated+rep.Conflicts+rep.Failed)
		require.Equal(t, rep.Failed == 0, rep.Err() == nil)
		for k, data := range before {
			require.Equal(t, data, read(t, b, k), "objects that existed are untouched")
		}
	})
}
