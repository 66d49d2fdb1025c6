package cas_test

import (
	"testing"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/s3store"
	"github.com/casa-go/casa/internal/testutil/s3test"
)

// s3Case runs the Store tests over s3store, with the real SDK client
// against the gofakes3 server of internal/testutil/s3test.
var s3Case = backendCase{
	name: "s3",
	new: func(t testing.TB) (cas.Backend, []string) {
		srv := s3test.New(t)
		return s3store.New(srv.Client, srv.Bucket), nil
	},
	corrupt: memCase.corrupt, // an overwrite without IfAbsent
}
