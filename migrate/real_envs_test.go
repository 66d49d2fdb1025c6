package migrate_test

import (
	"testing"
)

// realEnvs returns the configurations on real backends: the S3 test server
// and a local directory.
func realEnvs(t testing.TB) []env {
	t.Helper()
	return nil
}
