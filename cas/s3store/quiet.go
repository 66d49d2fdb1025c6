package s3store

import "github.com/aws/aws-sdk-go-v2/service/s3"

// quietChecksumLog is a per-call option for GetObject. With the SDK's
// default ResponseChecksumValidation (WhenSupported), a response without a
// checksum header (every ranged GET, and any GET from a service that sends
// none, such as SeaweedFS) makes the SDK log "Response has no supported
// checksum. Not validating response payload." through the client's
// logger, which by default writes to the process's stderr: one line per
// read. s3store verifies what it reads against the Hash one layer up, so
// the line tells the application nothing; the option silences it (and the
// "Skipped validation of multipart checksum." warning) without changing
// which responses the SDK validates.
func quietChecksumLog(o *s3.Options) { o.DisableLogOutputChecksumValidationSkipped = true }
