package cas_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/fsstore"
)

var fsCase = backendCase{
	name: "fs",
	new: func(t testing.TB) (cas.Backend, []string) {
		dir := t.TempDir()
		b, err := fsstore.New(dir)
		require.NoError(t, err)
		return b, []string{filepath.Join(dir, ".tmp")}
	},
	corrupt: func(t testing.TB, b cas.Backend, key string, data []byte) {
		// Rewrite the file on disk, behind fsstore's back.
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
	},
}
