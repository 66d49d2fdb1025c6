package thumbnail_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/thumbnail"
)

// TestOptionsRejectNonsense: an option given a value outside its
// documented range panics at construction, naming itself and the value.
func TestOptionsRejectNonsense(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		want string
		make func()
	}{
		{"WithMaxPixels(0)", func() { thumbnail.WithMaxPixels(0) }},
		{"WithMaxPixels(-5)", func() { thumbnail.WithMaxPixels(-5) }},
		{"WithMaxSourceBytes(0)", func() { thumbnail.WithMaxSourceBytes(0) }},
		{"WithMaxMemory(-1)", func() { thumbnail.WithMaxMemory(-1) }},
		{"WithMemoryBudget(0)", func() { thumbnail.WithMemoryBudget(0) }},
		{"WithTimeout(0s)", func() { thumbnail.WithTimeout(0) }},
		{"WithTimeout(-1s)", func() { thumbnail.WithTimeout(-time.Second) }},
		{"WithFailureCacheSize(-1)", func() { thumbnail.WithFailureCacheSize(-1) }},
		{"WithQuality(0)", func() { thumbnail.WithQuality(0) }},
		{"WithQuality(101)", func() { thumbnail.WithQuality(101) }},
		{"WithConcurrency(0)", func() { thumbnail.WithConcurrency(0) }},
		{"WithCache(<nil>)", func() { thumbnail.WithCache(nil) }},
	} {
		t.Run(tc.want, func(t *testing.T) {
			defer func() {
				p := recover()
				require.NotNil(t, p, "no panic")
				require.Equal(t, "thumbnail: ", fmt.Sprint(p)[:11])
				require.Contains(t, fmt.Sprint(p), tc.want)
			}()
			tc.make()
		})
	}
	// The edges of each range are accepted.
	require.NotPanics(t, func() {
		thumbnail.WithQuality(1)
		thumbnail.WithQuality(100)
		thumbnail.WithFailureCacheSize(0)
		thumbnail.WithConcurrency(1)
		thumbnail.WithMaxPixels(1)
	})
}

// TestServiceWithoutCacheWarns: NewService without a cache says so.
func TestServiceWithoutCacheWarns(t *testing.T) {
	t.Parallel()
	store := cas.New(memstore.New())
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	thumbnail.NewService(store, thumbnail.WithLogger(log))
	require.Contains(t, buf.String(), "level=WARN")
	require.Contains(t, buf.String(), "without a cache")

	buf.Reset()
	thumbnail.NewService(store, thumbnail.WithLogger(log), thumbnail.WithCache(thumbnail.NewBackendCache(store.Backend())))
	require.False(t, strings.Contains(buf.String(), "without a cache"), buf.String())
}

// TestGenerateTakesOnlyGenerationOptions: the options that only a Service
// uses are not GenerateOptions, so Generate cannot be given one it would
// silently ignore (a compile error), while every generation setting is.
func TestGenerateTakesOnlyGenerationOptions(t *testing.T) {
	t.Parallel()
	genType := reflect.TypeFor[thumbnail.GenerateOption]()
	store := cas.New(memstore.New())
	for name, o := range map[string]thumbnail.Option{
		"WithCache":            thumbnail.WithCache(thumbnail.NewBackendCache(store.Backend())),
		"WithConcurrency":      thumbnail.WithConcurrency(2),
		"WithMemoryBudget":     thumbnail.WithMemoryBudget(1 << 20),
		"WithFailureCacheSize": thumbnail.WithFailureCacheSize(8),
		"WithLogger":           thumbnail.WithLogger(nil),
		"WithMeterProvider":    thumbnail.WithMeterProvider(nil),
	} {
		require.False(t, reflect.TypeOf(o).Implements(genType), "%s is a GenerateOption", name)
	}
	for name, o := range map[string]thumbnail.Option{
		"WithMaxPixels":      thumbnail.WithMaxPixels(1),
		"WithMaxSourceBytes": thumbnail.WithMaxSourceBytes(1),
		"WithMaxMemory":      thumbnail.WithMaxMemory(1),
		"WithTimeout":        thumbnail.WithTimeout(time.Second),
		"WithQuality":        thumbnail.WithQuality(50),
	} {
		require.True(t, reflect.TypeOf(o).Implements(genType), "%s is not a GenerateOption", name)
	}
}
