package testutil

import (
	"os"
	"testing"
)

// SkipMissing skips t because something it needs (a server, a browser) is
// not on this machine, with a message that says how to get it. Under CI=true
// a missing dependency is a failure instead: CI installs and starts
// everything the tests use, so a skip there would hide a broken set-up.
func SkipMissing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and a required dependency is missing: "+format, args...)
	}
	t.Skipf(format, args...)
}
