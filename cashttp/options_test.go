package cashttp_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
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

// TestTelemetryOptionsKeepEarlierOnNil: on both handlers, a nil logger
// or MeterProvider given after a real one keeps the real one: the
// handler logs to the logger and records to the provider given first.
func TestTelemetryOptionsKeepEarlierOnNil(t *testing.T) {
	t.Parallel()
	store := cas.New(memstore.New())
	hash := cas.SumBytes([]byte("x")).String()
	for name, tc := range map[string]struct {
		make func(l *slog.Logger, mp metric.MeterProvider) http.Handler
		req  *http.Request
		log  string
	}{
		"Handler": {
			make: func(l *slog.Logger, mp metric.MeterProvider) http.Handler {
				// memstore cannot presign: WithRedirect warns at construction.
				return cashttp.NewHandler(store, cashttp.WithLogger(l), cashttp.WithLogger(nil),
					cashttp.WithMeterProvider(mp), cashttp.WithMeterProvider(nil),
					cashttp.WithRedirect(0, cashttp.MinRedirectLifetime))
			},
			req: httptest.NewRequest(http.MethodGet, "/"+hash, nil),
			log: "cannot presign",
		},
		"UploadHandler": {
			make: func(l *slog.Logger, mp metric.MeterProvider) http.Handler {
				return cashttp.NewUploadHandler(store, cashttp.WithUploadLogger(l), cashttp.WithUploadLogger(nil),
					cashttp.WithUploadMeterProvider(mp), cashttp.WithUploadMeterProvider(nil))
			},
			// Bytes that are not "x": refused, logged at Debug.
			req: httptest.NewRequest(http.MethodPut, "/"+hash, strings.NewReader("y")),
			log: "level=DEBUG",
		},
	} {
		t.Run(name, func(t *testing.T) {
			var logs syncBuffer
			reader := sdkmetric.NewManualReader()
			h := tc.make(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
				sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
			h.ServeHTTP(httptest.NewRecorder(), tc.req)
			require.Contains(t, logs.String(), tc.log)
			var rm metricdata.ResourceMetrics
			require.NoError(t, reader.Collect(context.Background(), &rm))
			var requests int64
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "casa.http.requests" {
						for _, dp := range sum.DataPoints {
							requests += dp.Value
						}
					}
				}
			}
			require.Equal(t, int64(1), requests)
		})
	}
}
