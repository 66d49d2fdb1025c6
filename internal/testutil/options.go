package testutil

import (
	"fmt"
	"strings"
	"testing"
)

// BadOption is an option made with a value outside its documented range:
// Make must panic, with a message that contains Want (the package, the
// option's name and the value, as the module's options rule says).
type BadOption struct {
	Want string
	Make func()
}

// RequireOptionPanics runs each case as a subtest named by its Want and
// fails it unless Make panics with a message that contains Want.
func RequireOptionPanics(t *testing.T, cases []BadOption) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.Want, func(t *testing.T) {
			defer func() {
				p := recover()
				if p == nil {
					t.Fatalf("%s: no panic", tc.Want)
				}
				if msg := fmt.Sprint(p); !strings.Contains(msg, tc.Want) {
					t.Fatalf("panic %q does not name %q", msg, tc.Want)
				}
			}()
			tc.Make()
		})
	}
}
