package main

import (
	"time"

	"github.com/casa-go/casa/internal/testutil"
)

// startS3 starts the S3 test server (gofakes3 behind a real HTTP server,
// with a real aws-sdk-go-v2 client), optionally with latency per request.
func startS3(cfg *config, latency time.Duration) (*testutil.S3, error) {
	var opts []testutil.S3Option
	if latency > 0 {
		opts = append(opts, testutil.WithS3Latency(latency))
	}
	return testutil.StartS3(opts...)
}
