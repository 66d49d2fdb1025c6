package fsstore_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/castest"
	"github.com/casa-go/casa/cas/fsstore"
)

func TestConformance(t *testing.T) {
	castest.Run(t, func(t *testing.T) cas.Backend {
		b, err := fsstore.New(t.TempDir())
		require.NoError(t, err)
		return b
	})
}
