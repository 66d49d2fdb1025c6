package testutil_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/internal/testutil"
)

// TestSkipMissing runs a test that calls SkipMissing in a child process,
// with and without CI=true: it skips locally and fails under CI.
func TestSkipMissing(t *testing.T) {
	if os.Getenv("CASA_SKIPMISSING_CHILD") == "1" {
		testutil.SkipMissing(t, "widget server not installed")
		t.Fatal("SkipMissing returned")
	}
	for _, tc := range []struct {
		ci      string
		wantErr bool
		want    string
	}{
		{"", false, "SKIP: TestSkipMissing"},
		{"true", true, "CI=true and a required dependency is missing: widget server not installed"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSkipMissing$", "-test.v")
		cmd.Env = append(os.Environ(), "CASA_SKIPMISSING_CHILD=1", "CI="+tc.ci)
		out, err := cmd.CombinedOutput()
		if tc.wantErr {
			require.Error(t, err, "CI=%q: %s", tc.ci, out)
		} else {
			require.NoError(t, err, "CI=%q: %s", tc.ci, out)
		}
		require.True(t, strings.Contains(string(out), tc.want), "CI=%q: output %s", tc.ci, out)
	}
}
