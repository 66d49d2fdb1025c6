package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/logging"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/fsstore"
	"github.com/casa-go/casa/cas/s3store"
)

// storeFlags locate the store: a directory or an S3 bucket.
type storeFlags struct {
	dir        string
	bucket     string
	endpoint   string
	region     string
	pathStyle  bool
	prefix     string
	backendDir string // set by open: the fsstore root, for messages
}

// addStoreFlags registers the store flags on fs, each with its variable.
func (e *env) addStoreFlags(fs *flag.FlagSet) {
	s := &storeFlags{}
	e.store = s
	fs.StringVar(&s.dir, "dir", "", "the store is this local `directory`, a store root (see 'casa help'); env "+EnvDir)
	fs.StringVar(&s.bucket, "s3-bucket", "", "the store is this S3 `bucket`; env "+EnvS3Bucket)
	fs.StringVar(&s.endpoint, "s3-endpoint", "", "S3 endpoint `URL` for S3-compatible services; env "+EnvS3Endpoint)
	fs.StringVar(&s.region, "s3-region", "", "S3 `region` (default: the AWS config, else us-east-1); env "+EnvS3Region)
	fs.Var(boolValue{&s.pathStyle}, "s3-path-style", "address S3 buckets by path instead of host name; env "+EnvS3PathStyle)
	fs.StringVar(&s.prefix, "s3-prefix", "", "store every key under this `prefix` in the bucket (include a trailing / if you want one); env "+EnvS3Prefix)
	e.bindEnv("dir", EnvDir)
	e.bindEnv("s3-bucket", EnvS3Bucket)
	e.bindEnv("s3-endpoint", EnvS3Endpoint)
	e.bindEnv("s3-region", EnvS3Region)
	e.bindEnv("s3-path-style", EnvS3PathStyle)
	e.bindEnv("s3-prefix", EnvS3Prefix)
}

// addCompressFlag registers -compress, for the commands that write blobs
// (put, migrate), and returns the Store option it asks for (nil: none).
func addCompressFlag(fs *flag.FlagSet) func() []cas.Option {
	compress := fs.Bool("compress", false, "store compressible blobs zstd-compressed (cas.WithCompression); every store reads them")
	return func() []cas.Option {
		if !*compress {
			return nil
		}
		return []cas.Option{cas.WithCompression(cas.Compression{})}
	}
}

// openStore opens the existing store the flags name, with opts. A -dir
// must be a store root (checkStoreRoot) that exists: a mistyped path is an
// error, not an empty store; an S3 bucket must exist (CheckBucket).
func (e *env) openStore(ctx context.Context, opts ...cas.Option) (*cas.Store, error) {
	return e.openStoreMode(ctx, false, opts...)
}

// openNewStore is openStore for the commands that write blobs (put,
// migrate): a -dir that does not exist yet is created as a new store.
func (e *env) openNewStore(ctx context.Context, opts ...cas.Option) (*cas.Store, error) {
	return e.openStoreMode(ctx, true, opts...)
}

func (e *env) openStoreMode(ctx context.Context, create bool, opts ...cas.Option) (*cas.Store, error) {
	s := e.store
	switch {
	case s.dir != "" && s.bucket != "":
		return nil, usagef("give -dir or -s3-bucket, not both (%s=%q, %s=%q?)", EnvDir, e.Getenv(EnvDir), EnvS3Bucket, e.Getenv(EnvS3Bucket))
	case s.bucket == "" && (s.endpoint != "" || s.region != "" || s.pathStyle || s.prefix != ""):
		return nil, usagef("-s3-endpoint, -s3-region, -s3-path-style and -s3-prefix need -s3-bucket")
	case s.dir != "":
		if err := checkStoreRoot(s.dir); err != nil {
			return nil, err
		}
		if _, err := os.Stat(s.dir); !create && errors.Is(err, fs.ErrNotExist) {
			return nil, usagef("-dir %s: no such directory (casa put or casa migrate makes a new store)", s.dir)
		}
		b, err := fsstore.New(s.dir)
		if err != nil {
			return nil, err
		}
		s.backendDir = b.Dir()
		return cas.New(b, opts...), nil
	case s.bucket != "":
		b, err := openS3(ctx, s)
		if err != nil {
			return nil, err
		}
		return cas.New(b, opts...), nil
	}
	return nil, usagef("no store: give -dir DIR or -s3-bucket BUCKET (or set %s or %s)", EnvDir, EnvS3Bucket)
}

// openSourceDir opens -source-dir, the directory legacy objects are read
// (and, by cleanup, deleted) from when they are not in the store itself.
// It must be a store root like -dir. An empty dir means the store.
func openSourceDir(dir string) (cas.Backend, error) {
	if dir == "" {
		return nil, nil
	}
	if err := checkStoreRoot(dir); err != nil {
		return nil, usageError{errors.New(strings.Replace(err.Error(), "-dir ", "-source-dir ", 1))}
	}
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		return nil, usagef("-source-dir %s: no such directory", dir)
	}
	return fsstore.New(dir)
}

// openS3 connects to the bucket with the standard AWS configuration chain
// and checks that the bucket exists.
func openS3(ctx context.Context, s *storeFlags) (*s3store.Backend, error) {
	// The SDK's own log lines (an IMDS fallback warning, say) would break
	// the one-line error rule; its errors carry what matters.
	// Responses are not checksummed by the SDK: casa re-hashes what it
	// reads with SHA-256 (verify, get), which reports a mismatch as
	// corruption (exit code 3), where the SDK's check would fail the read
	// with an error of its own.
	loadOpts := []func(*config.LoadOptions) error{
		config.WithLogger(logging.Nop{}),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	}
	if s.region != "" {
		loadOpts = append(loadOpts, config.WithRegion(s.region))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if s.endpoint != "" {
			o.BaseEndpoint = aws.String(s.endpoint)
		}
		o.UsePathStyle = s.pathStyle
	})
	var opts []s3store.Option
	if s.prefix != "" {
		opts = append(opts, s3store.WithKeyPrefix(s.prefix))
	}
	b := s3store.New(client, s.bucket, opts...)
	err = b.CheckBucket(ctx)
	switch {
	case errors.Is(err, cas.ErrNotFound):
		return nil, fmt.Errorf("S3 bucket %q does not exist%s", s.bucket, endpointNote(s))
	case errors.Is(err, cas.ErrUnavailable):
		return nil, fmt.Errorf("S3 bucket %q: the service did not answer in time%s", s.bucket, endpointNote(s))
	case err != nil:
		return nil, fmt.Errorf("S3 bucket %q is not usable%s: %w", s.bucket, endpointNote(s), err)
	}
	return b, nil
}

func endpointNote(s *storeFlags) string {
	if s.endpoint == "" {
		return ""
	}
	return " at " + s.endpoint
}

// storeMarker is the directory fsstore.New creates in every store root
// (its temporary files). Its presence is what makes a non-empty directory
// a store root.
const storeMarker = ".tmp"

// checkStoreRoot refuses a directory that is not a casa store root, so
// that no command (cleanup above all) treats another application's files
// as legacy objects. A store root is:
//
//   - a path that does not exist yet (fsstore creates it), or an empty
//     directory; or
//   - a directory holding fsstore's marker, the directory .tmp, whose other
//     top-level entries are all regular files or directories named as key
//     segments (cas.CheckKey), and whose cas entry, if any, is a directory
//     of two-hex-digit shard directories only.
//
// Everything else is refused with a usage error that says why, for example
// the example app's data directory (inventory.db, blobs/, thumbnails/, no
// .tmp: its store root is blobs/). A directory of legacy uploads that is
// meant to become a store is adopted by creating DIR/.tmp.
func checkStoreRoot(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return usagef("-dir %s: %v", dir, err)
	}
	if !fi.IsDir() {
		return usagef("-dir %s is not a directory", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return usagef("-dir %s: %v", dir, err)
	}
	if len(entries) == 0 {
		return nil
	}
	refuse := func(why string) error {
		msg := fmt.Sprintf("-dir %s is not a casa store root: %s", dir, why)
		if sub := childStoreRoot(dir, entries); sub != "" {
			msg += fmt.Sprintf("; did you mean -dir %s?", sub)
		} else {
			msg += fmt.Sprintf(" (a store root is empty or made by casa; to adopt a directory of legacy uploads, create %s first)", filepath.Join(dir, storeMarker))
		}
		return usageError{errors.New(msg)}
	}
	i := slices.IndexFunc(entries, func(de fs.DirEntry) bool { return de.Name() == storeMarker })
	if i < 0 || !entries[i].IsDir() {
		names := make([]string, 0, 3)
		for _, de := range entries[:min(3, len(entries))] {
			names = append(names, de.Name())
		}
		return refuse(fmt.Sprintf("it holds %q and no %s directory", names, storeMarker))
	}
	for _, de := range entries {
		name := de.Name()
		switch {
		case name == storeMarker:
			continue
		case name == "cas":
			if !de.IsDir() {
				return refuse("cas is not a directory")
			}
			if err := checkShards(filepath.Join(dir, name)); err != nil {
				return refuse(err.Error())
			}
		case !de.IsDir() && !de.Type().IsRegular():
			return refuse(fmt.Sprintf("%q is neither a file nor a directory", name))
		case cas.CheckKey(name+"/x") != nil:
			return refuse(fmt.Sprintf("%q is no key a store could hold", name))
		}
	}
	return nil
}

// checkShards checks fsstore's cas directory: two-hex-digit directories.
func checkShards(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, de := range entries {
		n := de.Name()
		if !de.IsDir() || len(n) != 2 || !isHex(n[0]) || !isHex(n[1]) {
			return fmt.Errorf("cas/%s is not a shard directory of fsstore's layout", n)
		}
	}
	return nil
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }

// childStoreRoot returns a subdirectory of dir that is a store root (holds
// .tmp), for the hint in a refusal.
func childStoreRoot(dir string, entries []fs.DirEntry) string {
	for _, de := range entries {
		if !de.IsDir() {
			continue
		}
		sub := filepath.Join(dir, de.Name())
		if fi, err := os.Stat(filepath.Join(sub, storeMarker)); err == nil && fi.IsDir() {
			return sub
		}
	}
	return ""
}
