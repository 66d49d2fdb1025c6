package s3store_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/s3store"
)

// StorageConfig is how an application might configure its blob storage,
// e.g. from environment variables or a config file.
type StorageConfig struct {
	Endpoint  string // empty for AWS S3
	Region    string
	Bucket    string
	Prefix    string
	AccessKey string
	SecretKey string
	// Compatible marks an S3-compatible service (MinIO, R2, gofakes3):
	// path-style addressing, checksums only when required.
	Compatible bool
	// NoConditionalWrites for services without If-None-Match support.
	NoConditionalWrites bool
}

// newBackend builds an s3store.Backend from a StorageConfig. With AWS S3
// and its default credential chain, config.LoadDefaultConfig(ctx) is the
// usual start instead of the literal aws.Config here.
func newBackend(c StorageConfig) *s3store.Backend {
	cfg := aws.Config{
		Region:      c.Region,
		Credentials: credentials.NewStaticCredentialsProvider(c.AccessKey, c.SecretKey, ""),
	}
	if c.Compatible {
		cfg.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		cfg.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if c.Endpoint != "" {
			o.BaseEndpoint = aws.String(c.Endpoint)
		}
		o.UsePathStyle = c.Compatible
	})
	opts := []s3store.Option{s3store.WithKeyPrefix(c.Prefix)}
	if c.NoConditionalWrites {
		opts = append(opts, s3store.WithoutConditionalWrites())
	}
	return s3store.New(client, c.Bucket, opts...)
}

// startFakeS3 starts an in-process S3-compatible server with one bucket.
func startFakeS3(bucket string) *httptest.Server {
	mem := s3mem.New()
	if err := mem.CreateBucket(bucket); err != nil {
		log.Fatal(err)
	}
	return httptest.NewServer(gofakes3.New(mem).Server())
}

// Store blobs by hash in an S3 bucket built from application config.
func Example() {
	srv := startFakeS3("attachments")
	defer srv.Close()

	backend := newBackend(StorageConfig{
		Endpoint:   srv.URL, // e.g. http://minio:9000
		Region:     "us-east-1",
		Bucket:     "attachments",
		Prefix:     "inventory/",
		AccessKey:  "AKIDEXAMPLE",
		SecretKey:  "secret",
		Compatible: true,
	})
	store := cas.New(backend)
	ctx := context.Background()

	res, err := store.Put(ctx, strings.NewReader("datasheet v1\n"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Hash, res.Size, res.Deduplicated)

	again, err := store.Put(ctx, strings.NewReader("datasheet v1\n"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("second upload deduplicated:", again.Deduplicated)

	for info, err := range backend.List(ctx, cas.KeyPrefix) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(info.Key, info.Size)
	}
	// Output:
	// f41977c9ba9f1bfb3f61ebd3230680f883d5dfef91c23faaef531f56848b7de0 13 false
	// second upload deduplicated: true
	// cas/f41977c9ba9f1bfb3f61ebd3230680f883d5dfef91c23faaef531f56848b7de0 13
}

// Read part of a blob: Seek transfers nothing, and the Read after it
// fetches only the bytes from the new offset on (a ranged GetObject).
func ExampleBackend_Open() {
	srv := startFakeS3("blobs")
	defer srv.Close()
	backend := newBackend(StorageConfig{Endpoint: srv.URL, Region: "us-east-1", Bucket: "blobs", AccessKey: "AKIDEXAMPLE", SecretKey: "secret", Compatible: true})
	ctx := context.Background()

	text := "header|payload|trailer"
	if err := backend.Put(ctx, "legacy/doc.txt", strings.NewReader(text), int64(len(text)), cas.PutOptions{ContentType: "text/plain"}); err != nil {
		log.Fatal(err)
	}
	obj, err := backend.Open(ctx, "legacy/doc.txt")
	if err != nil {
		log.Fatal(err)
	}
	defer obj.Close()
	if _, err := obj.Seek(7, io.SeekStart); err != nil {
		log.Fatal(err)
	}
	part := make([]byte, 7)
	if _, err := io.ReadFull(obj, part); err != nil {
		log.Fatal(err)
	}
	fmt.Println(obj.Info().Size, string(part))
	// Output: 22 payload
}
