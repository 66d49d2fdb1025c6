package cashttp

import (
	"context"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/casa-go/casa/casurl"
)

// Values of the "kind" metric attribute. The kind comes from the parsed
// request, never from a second look at the raw query.
const (
	kindContent   = "content"   // a content request that parsed
	kindThumbnail = "thumbnail" // a thumbnail request that parsed
	kindInvalid   = "invalid"   // refused before it parsed: 405, 400, 403
)

// requestKind is the kind of a parsed request.
func requestKind(req casurl.Request) string {
	if req.IsThumbnail() {
		return kindThumbnail
	}
	return kindContent
}

// metrics are the Handler's instruments.
type metrics struct {
	requests metric.Int64Counter
	duration metric.Float64Histogram
	bytes    metric.Int64Counter
}

func newMetrics(mp metric.MeterProvider) metrics {
	m := mp.Meter("github.com/casa-go/casa/cashttp")
	var ms metrics
	// The noop and SDK meters never fail for these static names.
	ms.requests, _ = m.Int64Counter("casa.http.requests",
		metric.WithDescription("Requests served, by kind (content, thumbnail or invalid) and HTTP status code."))
	ms.duration, _ = m.Float64Histogram("casa.http.duration", metric.WithUnit("s"),
		metric.WithDescription("Time to serve a request, by kind and HTTP status code."))
	ms.bytes, _ = m.Int64Counter("casa.http.bytes", metric.WithUnit("By"),
		metric.WithDescription("Body bytes of successful (2xx) responses, by kind."))
	return ms
}

// record records one finished request. A status of 0 (nothing written)
// is the 200 that net/http sends.
func (m metrics) record(ctx context.Context, kind string, status int, body int64, elapsed time.Duration) {
	if status == 0 {
		status = http.StatusOK
	}
	ctx = context.WithoutCancel(ctx)
	attrs := metric.WithAttributes(attribute.String("kind", kind), attribute.Int("http.response.status_code", status))
	m.requests.Add(ctx, 1, attrs)
	m.duration.Record(ctx, elapsed.Seconds(), attrs)
	if status < 300 {
		m.bytes.Add(ctx, body, metric.WithAttributes(attribute.String("kind", kind)))
	}
}
