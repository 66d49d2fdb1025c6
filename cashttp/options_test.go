package cashttp_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cashttp"
)

// TestOptionsRejectNonsense: an option given a value outside its
// documented range panics at construction, naming itself and the value.
func TestOptionsRejectNonsense(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		want string
		make func()
	}{
		{"cashttp: WithMaxThumbnailSize(0)", func() { cashttp.WithMaxThumbnailSize(0) }},
		{"cashttp: WithMaxThumbnailSize(-1)", func() { cashttp.WithMaxThumbnailSize(-1) }},
		{"cashttp: WithThumbnailSizes([64 0])", func() { cashttp.WithThumbnailSizes(64, 0) }},
		{"cashttp: WithThumbnailSizes(no sizes)", func() { cashttp.WithThumbnailSizes() }},
		{"cashttp: WithBackendTimeout(-1s)", func() { cashttp.WithBackendTimeout(-time.Second) }},
	} {
		t.Run(tc.want, func(t *testing.T) {
			defer func() {
				p := recover()
				require.NotNil(t, p, "no panic")
				require.Contains(t, fmt.Sprint(p), tc.want)
			}()
			tc.make()
		})
	}
	require.NotPanics(t, func() {
		cashttp.WithMaxThumbnailSize(1)
		cashttp.WithThumbnailSizes(1)
		cashttp.WithBackendTimeout(0)
		cashttp.WithLogger(nil)
		cashttp.WithMeterProvider(nil)
	})
}
