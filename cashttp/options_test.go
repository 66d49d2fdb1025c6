package cashttp_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cashttp"
	"github.com/casa-go/casa/internal/testutil"
)

// TestOptionsRejectNonsense: an option given a value outside its
// documented range panics at construction, naming itself and the value.
func TestOptionsRejectNonsense(t *testing.T) {
	t.Parallel()
	testutil.RequireOptionPanics(t, []testutil.BadOption{
		{Want: "cashttp: WithMaxThumbnailSize(0)", Make: func() { cashttp.WithMaxThumbnailSize(0) }},
		{Want: "cashttp: WithMaxThumbnailSize(-1)", Make: func() { cashttp.WithMaxThumbnailSize(-1) }},
		{Want: "cashttp: WithThumbnailSizes([64 0])", Make: func() { cashttp.WithThumbnailSizes(64, 0) }},
		{Want: "cashttp: WithThumbnailSizes(no sizes)", Make: func() { cashttp.WithThumbnailSizes() }},
		{Want: "cashttp: WithBackendTimeout(-1s)", Make: func() { cashttp.WithBackendTimeout(-time.Second) }},
	})
	require.NotPanics(t, func() {
		cashttp.WithMaxThumbnailSize(1)
		cashttp.WithThumbnailSizes(1)
		cashttp.WithBackendTimeout(0)
		cashttp.WithLogger(nil)
		cashttp.WithMeterProvider(nil)
	})
}
