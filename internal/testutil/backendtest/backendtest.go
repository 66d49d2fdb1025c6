// Package backendtest is the matrix of real Backends that casa's package
// tests and benchmarks run over: memstore, fsstore in a temporary
// directory, and s3store with the real aws-sdk-go-v2 client against the
// s3test server. A test ranges over All (or Each, EachParallel) instead of keeping its own
// list, so adding a Backend here adds it to every such test.
package backendtest

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/fsstore"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/cas/s3store"
	"github.com/casa-go/casa/internal/testutil/s3test"
)

// Case makes fresh Backends of one kind for a test.
type Case struct {
	// Name names the case in subtest names: "memstore", "fsstore" or
	// "s3store" unless the caller renames a variant.
	Name string
	// New returns a new, empty Backend; t's cleanup releases what it holds
	// (directories, servers). It works with a *testing.B too.
	New func(t testing.TB) cas.Backend
	// TempDirs returns the directories in which b, made by New, keeps the
	// temporary files of Puts in progress: they must be empty between Puts.
	// It returns nil for a Backend with no such directory.
	TempDirs func(b cas.Backend) []string
	// Corrupt replaces the stored bytes of key in b, made by New, behind the
	// Backend's back (no digest check can stop it), as bit rot would.
	Corrupt func(t testing.TB, b cas.Backend, key string, data []byte)
}

// All returns the default matrix: Mem(), FS() and S3().
func All() []Case { return []Case{Mem(), FS(), S3()} }

// Each runs f in a subtest per case of All, named by the case.
func Each(t *testing.T, f func(t *testing.T, c Case)) {
	t.Helper()
	for _, c := range All() {
		t.Run(c.Name, func(t *testing.T) { f(t, c) })
	}
}

// EachParallel is Each with parallel subtests: each calls t.Parallel
// before f, so the cases run beside each other (and beside the caller's
// other parallel tests) once the caller's test function returns.
func EachParallel(t *testing.T, f func(t *testing.T, c Case)) {
	t.Helper()
	for _, c := range All() {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			f(t, c)
		})
	}
}

// Mem is memstore.
func Mem() Case {
	return Case{
		Name:     "memstore",
		New:      func(testing.TB) cas.Backend { return memstore.New() },
		TempDirs: noTempDirs,
		Corrupt:  overwrite, // memstore keeps what it is given
	}
}

// FS is fsstore in a new directory under t.TempDir(), made with opts (by
// default fsstore syncs, as in production; fsstore.WithoutSync() is faster).
func FS(opts ...fsstore.Option) Case {
	return Case{
		Name: "fsstore",
		New: func(t testing.TB) cas.Backend {
			b, err := fsstore.New(t.TempDir(), opts...)
			require.NoError(t, err)
			return b
		},
		TempDirs: func(b cas.Backend) []string {
			return []string{filepath.Join(b.(*fsstore.Backend).Dir(), ".tmp")}
		},
		Corrupt: corruptFile,
	}
}

// S3 is s3store, made with opts, over a new s3test server (in-process
// gofakes3, real aws-sdk-go-v2 client) per Backend.
func S3(opts ...s3store.Option) Case {
	return Case{
		Name: "s3store",
		New: func(t testing.TB) cas.Backend {
			srv := s3test.New(t)
			return s3store.New(srv.Client, srv.Bucket, opts...)
		},
		TempDirs: noTempDirs,
		Corrupt:  overwrite, // a PutObject without If-None-Match replaces
	}
}

func noTempDirs(cas.Backend) []string { return nil }

// overwrite corrupts by a plain (not create-only) Put of the same key.
func overwrite(t testing.TB, b cas.Backend, key string, data []byte) {
	t.Helper()
	err := b.Put(context.Background(), key, bytes.NewReader(data), int64(len(data)), cas.PutOptions{})
	require.NoError(t, err)
}

// corruptFile rewrites fsstore's file of key on disk, found without
// assuming fsstore's layout beyond the file name being the hash.
func corruptFile(t testing.TB, b cas.Backend, key string, data []byte) {
	t.Helper()
	root := b.(*fsstore.Backend).Dir()
	name := strings.TrimPrefix(key, cas.KeyPrefix)
	var found []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && d.Name() == name {
			found = append(found, path)
		}
		return nil
	})
	require.NoError(t, err)
	require.Len(t, found, 1, "the file of %s", key)
	require.NoError(t, os.Chmod(found[0], 0o644))
	require.NoError(t, os.WriteFile(found[0], data, 0o644))
	require.NoError(t, os.Chmod(found[0], 0o444))
}
