package cas_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
)

// TestOptionsRejectNonsense: a Store option given a value outside its
// documented range panics at construction, naming itself and the value.
func TestOptionsRejectNonsense(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		want string
		make func()
	}{
		{"cas: WithMaxSize(-1)", func() { cas.WithMaxSize(-1) }},
		{"cas: WithSpoolThreshold(0)", func() { cas.WithSpoolThreshold(0) }},
		{"cas: WithSpoolThreshold(-4096)", func() { cas.WithSpoolThreshold(-4096) }},
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
		cas.WithMaxSize(0)
		cas.WithMaxSize(1)
		cas.WithSpoolThreshold(1)
		cas.WithLogger(nil)
		cas.WithMeterProvider(nil)
	})
}
