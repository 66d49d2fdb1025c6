// Package testutil holds the small generic helpers shared by casa's tests:
// deterministic pseudo-random bytes (Bytes, Reader) and SkipMissing. The
// larger test scaffolding lives in its sub-packages, one job each:
//
//   - s3test: an in-process S3 server (gofakes3 behind the real aws-sdk-go-v2
//     client) that can hang, count and seed;
//   - faulty: a fault-injecting, call-counting cas.Backend wrapper;
//   - imagetest: image fixtures, including hostile ones;
//   - backendtest: the matrix of real Backends (memstore, fsstore, s3store)
//     that package tests run over.
package testutil
