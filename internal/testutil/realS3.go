package testutil

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Environment variables that locate a real S3-compatible server (CI runs
// SeaweedFS, see .ci/start-servers.sh).
const (
	// S3EndpointEnv holds the server's endpoint URL, e.g.
	// http://127.0.0.1:8333.
	S3EndpointEnv = "CASA_TEST_S3_ENDPOINT"
	// S3BucketEnv names an existing bucket on it; the default is
	// DefaultRealS3Bucket.
	S3BucketEnv = "CASA_TEST_S3_BUCKET"
	// DefaultRealS3Bucket is the bucket used when S3BucketEnv is unset.
	DefaultRealS3Bucket = "casa-test"
	// S3AccessKeyEnv and S3SecretKeyEnv hold the credentials of the
	// server's identity: .ci/start-servers.sh configures SeaweedFS with
	// one (-s3.config), so that it checks every signature, presigned URLs
	// included. The defaults are DefaultRealS3AccessKey and
	// DefaultRealS3SecretKey, the script's own defaults.
	S3AccessKeyEnv = "CASA_TEST_S3_ACCESS_KEY"
	S3SecretKeyEnv = "CASA_TEST_S3_SECRET_KEY"
	// DefaultRealS3AccessKey and DefaultRealS3SecretKey are the
	// credentials used when the variables are unset.
	DefaultRealS3AccessKey = "AKIDCASATEST"
	DefaultRealS3SecretKey = "SECRETCASATEST"
)

// RealS3 is a real S3-compatible server shared by the tests: one bucket,
// and a key prefix of the test's own (so tests do not see each other's
// objects; pass it to s3store.WithKeyPrefix).
type RealS3 struct {
	Endpoint string
	Bucket   string
	// Prefix is unique to the test and ends with "/".
	Prefix string
	// Client is the real aws-sdk-go-v2 client, configured as NewRealS3Client
	// does.
	Client *s3.Client
}

// NewRealS3 locates the server named by CASA_TEST_S3_ENDPOINT, or skips t
// (fails it under CI=true) when the variable is unset. It does no I/O.
func NewRealS3(t testing.TB) *RealS3 {
	t.Helper()
	endpoint := os.Getenv(S3EndpointEnv)
	if endpoint == "" {
		SkipMissing(t, "no S3-compatible server: set %s (eval \"$(.ci/start-servers.sh start)\" starts SeaweedFS)", S3EndpointEnv)
	}
	bucket := os.Getenv(S3BucketEnv)
	if bucket == "" {
		bucket = DefaultRealS3Bucket
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	return &RealS3{
		Endpoint: endpoint,
		Bucket:   bucket,
		Prefix:   "t-" + hex.EncodeToString(rnd[:]) + "/",
		Client:   NewRealS3Client(endpoint),
	}
}

// RealS3Credentials returns the access key and secret key of the real
// server's identity: CASA_TEST_S3_ACCESS_KEY and CASA_TEST_S3_SECRET_KEY,
// or the defaults of .ci/start-servers.sh.
func RealS3Credentials() (accessKey, secretKey string) {
	accessKey, secretKey = os.Getenv(S3AccessKeyEnv), os.Getenv(S3SecretKeyEnv)
	if accessKey == "" {
		accessKey = DefaultRealS3AccessKey
	}
	if secretKey == "" {
		secretKey = DefaultRealS3SecretKey
	}
	return accessKey, secretKey
}

// NewRealS3Client returns an S3 client for endpoint the way an
// application would build one for an S3-compatible service: static
// credentials (RealS3Credentials: the real server checks them; gofakes3
// accepts any), region
// us-east-1, path-style addressing, request checksums only when required.
// Response checksum validation stays at the SDK's default
// (WhenSupported), as in an application that did not turn it down. opts
// adjust the client further.
func NewRealS3Client(endpoint string, opts ...func(*s3.Options)) *s3.Client {
	accessKey, secretKey := RealS3Credentials()
	cfg := aws.Config{
		Region:                     "us-east-1",
		Credentials:                credentials.NewStaticCredentialsProvider(accessKey, secretKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
	}
	opts = append([]func(*s3.Options){func(o *s3.Options) {
		o.UsePathStyle = true
		o.BaseEndpoint = aws.String(endpoint)
	}}, opts...)
	return s3.NewFromConfig(cfg, opts...)
}
