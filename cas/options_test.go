package cas_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/internal/testutil"
)

// TestOptionsRejectNonsense: a Store option given a value outside its
// documented range panics at construction, naming itself and the value.
func TestOptionsRejectNonsense(t *testing.T) {
	t.Parallel()
	testutil.RequireOptionPanics(t, []testutil.BadOption{
		{Want: "cas: WithMaxSize(-1)", Make: func() { cas.WithMaxSize(-1) }},
		{Want: "cas: WithSpoolThreshold(0)", Make: func() { cas.WithSpoolThreshold(0) }},
		{Want: "cas: WithSpoolThreshold(-4096)", Make: func() { cas.WithSpoolThreshold(-4096) }},
	})
	require.NotPanics(t, func() {
		cas.WithMaxSize(0)
		cas.WithMaxSize(1)
		cas.WithSpoolThreshold(1)
		cas.WithLogger(nil)
		cas.WithMeterProvider(nil)
	})
}
