package thumbnail_test

import (
	"bytes"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/thumbnail"
)

// TestOptionsRejectNonsense: an option given a value outside its
// documented range panics at construction, naming itself and the value.
func TestOptionsRejectNonsense(t *testing.T) {
	t.Parallel()
	testutil.RequireOptionPanics(t, []testutil.BadOption{
		{Want: "thumbnail: WithMaxPixels(0)", Make: func() { thumbnail.WithMaxPixels(0) }},
		{Want: "thumbnail: WithMaxPixels(-5)", Make: func() { thumbnail.WithMaxPixels(-5) }},
		{Want: "thumbnail: WithMaxSourceBytes(0)", Make: func() { thumbnail.WithMaxSourceBytes(0) }},
		{Want: "thumbnail: WithMaxMemory(-1)", Make: func() { thumbnail.WithMaxMemory(-1) }},
		{Want: "thumbnail: WithMemoryBudget(0)", Make: func() { thumbnail.WithMemoryBudget(0) }},
		{Want: "thumbnail: WithTimeout(0s)", Make: func() { thumbnail.WithTimeout(0) }},
		{Want: "thumbnail: WithTimeout(-1s)", Make: func() { thumbnail.WithTimeout(-time.Second) }},
		{Want: "thumbnail: WithFailureCacheSize(-1)", Make: func() { thumbnail.WithFailureCacheSize(-1) }},
		{Want: "thumbnail: WithQuality(0)", Make: func() { thumbnail.WithQuality(0) }},
		{Want: "thumbnail: WithQuality(101)", Make: func() { thumbnail.WithQuality(101) }},
		{Want: "thumbnail: WithConcurrency(0)", Make: func() { thumbnail.WithConcurrency(0) }},
		{Want: "thumbnail: WithCache(<nil>)", Make: func() { thumbnail.WithCache(nil) }},
	})
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
