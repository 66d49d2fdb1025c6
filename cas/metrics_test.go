package cas_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/internal/testutil"
)

// collectSums returns every int64 sum the reader has, by metric name and
// then by the deduplicated attribute ("" when absent).
func collectSums(t *testing.T, r sdkmetric.Reader) map[string]map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, r.Collect(context.Background(), &rm))
	out := map[string]map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		require.Equal(t, "github.com/casa-go/casa/cas", sm.Scope.Name)
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			require.True(t, ok, "%s is an int64 sum", m.Name)
			require.True(t, sum.IsMonotonic, m.Name)
			byAttr := map[string]int64{}
			for _, dp := range sum.DataPoints {
				v, _ := dp.Attributes.Value(attribute.Key("deduplicated"))
				byAttr[v.String()] += dp.Value
			}
			out[m.Name] = byAttr
		}
	}
	return out
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	s := cas.New(memstore.New(), cas.WithMeterProvider(mp), cas.WithMaxSize(5000))

	a, b := testutil.Bytes(60, 1000), testutil.Bytes(61, 3000)
	for _, data := range [][]byte{a, b, a, a} {
		_, err := s.Put(ctx, bytes.NewReader(data))
		require.NoError(t, err)
	}
	_, err := s.Put(ctx, bytes.NewReader(testutil.Bytes(62, 6000)))
	require.ErrorIs(t, err, cas.ErrTooLarge)
	_, err = s.PutVerified(ctx, cas.SumBytes(a), bytes.NewReader(b))
	require.ErrorIs(t, err, cas.ErrDigestMismatch)

	want := map[string]map[string]int64{
		"casa.store.puts":       {"false": 2, "true": 2},
		"casa.store.put.bytes":  {"": int64(len(a) + len(b) + 2*len(a))},
		"casa.store.put.errors": {"": 2},
	}
	require.Empty(t, cmp.Diff(want, collectSums(t, reader)))
}

func TestMetricsDefaultNoop(t *testing.T) {
	t.Parallel()
	// Without a MeterProvider nothing is recorded and nothing breaks; a nil
	// MeterProvider keeps the default.
	s := cas.New(memstore.New(), cas.WithMeterProvider(nil))
	data := testutil.Bytes(63, 10)
	res, err := s.Put(t.Context(), bytes.NewReader(data))
	require.NoError(t, err)
	require.Equal(t, cas.SumBytes(data), res.Hash)
}
