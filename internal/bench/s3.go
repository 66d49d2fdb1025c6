package main

import (
	"time"

	"github.com/casa-go/casa/internal/testutil/s3test"
)

// startS3 starts the S3 test server (gofakes3 behind a real HTTP server,
// with a real aws-sdk-go-v2 client), optionally with latency per request.
func startS3(cfg *config, latency time.Duration) (*s3test.Server, error) {
	var opts []s3test.Option
	if latency > 0 {
		opts = append(opts, s3test.WithLatency(latency))
	}
	return s3test.Start(opts...)
}
