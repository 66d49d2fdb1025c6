// Command inventory is an electronics-inventory web app that shows casa's
// whole integration: uploads stored by hash (fsstore or S3), URLs built with
// casurl, blobs and thumbnails served by cashttp, and a startup migration
// from UUID keys with migrate and sqlmigrator.
//
//	go run ./examples/inventory
//
// serves http://127.0.0.1:8080 and keeps its data in ./inventory-data: the
// SQLite database, the blobs and a thumbnail cache. With -s3-bucket the
// blobs live in S3 (or any S3-compatible service) instead; credentials come
// from the standard AWS environment variables and config files. With -db
// postgres://... the database is PostgreSQL, with -db mysql://... MySQL or
// MariaDB; with a server database and S3, any number of replicas can run
// behind a load balancer (README: "Deploying at scale").
//
// Flags:
//
//	-addr          listen address (default 127.0.0.1:8080)
//	-data          data directory (default ./inventory-data)
//	-db            database: a postgres:// URL (pgx), a
//	               mysql://USER:PASSWORD@HOST[:PORT]/DATABASE URL (MySQL or
//	               MariaDB; mariadb:// too), or a SQLite file
//	               (default: inventory.db in the data directory)
//	-s3-bucket     store blobs in this S3 bucket instead of the data directory
//	-s3-endpoint   S3 endpoint URL, for S3-compatible services (MinIO, R2, ...)
//	-s3-region     S3 region (default: from the AWS config, else us-east-1)
//	-s3-path-style address buckets by path, not by host name
//	-s3-create-bucket create the -s3-bucket at start-up if it is missing (demos)
//	-s3-op-timeout, -s3-stall-timeout
//	               bound S3 metadata calls and stalled transfers
//	               (default: s3store's, 10 s and 30 s)
//	-thumb-cache   where thumbnails are cached: local (the data directory)
//	               or shared (the data directory, then the blob store, so
//	               replicas share them); default shared with -s3-bucket,
//	               else local
//	-sign-key      sign every blob URL with this HMAC key and refuse unsigned
//	               ones; replicas must all have the same key
//	-max-upload    largest upload in bytes (default 50 MiB)
//	-body-stall    cut off a request body that sends nothing for this long
//	               (default 30s): 408, connection closed, temp file removed
//	-thumb-timeout give up a thumbnail generation after this long (default 10s)
//	-seed-legacy N create N parts whose files are stored the pre-CAS way,
//	               under UUID keys, to show the startup migration
//	-final         after a complete migration, mark it final: it can no
//	               longer be reverted, and -cleanup may delete legacy objects
//	-cleanup       after a complete, final migration, delete legacy objects
//	               no row uses; refused unless the migration is final (or
//	               -final is given too); online, it runs once the
//	               background migration has completed
//	-migrate MODE  online (default): serve at once and migrate in the
//	               background, waiting files served through signed legacy
//	               URLs that expire; blocking: migrate, then serve, refuse
//	               to start if a file fails; off: serve, do not migrate
//	-migrate-rate  limit the background migration to N attachments/s
//	-revert        put every migrated attachment back on its legacy key
//	               (journal), report and exit; stop other replicas first
//	-migrate-only  migrate, report and exit
//
// Request bodies must keep arriving: an upload may take as long as it needs
// while bytes flow, but one that sends nothing for -body-stall is cut off,
// and a JSON or form body must arrive whole within 10 s. Request headers
// must arrive within 10 s. A declared Content-Length over the limit is
// answered 413 before the body is read (no "100 Continue"). A full disk
// answers 507 and a storage backend that does not answer in time 503 with
// Retry-After; neither leaves a row or a temp file behind. GET / and
// GET /api/parts show a page of parts at a time (100 unless ?limit= says
// otherwise, at most 1000), with a link to the next page.
//
// At startup the app creates its schema. Online (the default), it serves
// at once and migrates attachments still stored under legacy keys in the
// background; GET /api/migration and the page show how far it is. Blocking
// (and -migrate-only), it migrates every attachment first, printing
// progress, and if any cannot be migrated it logs why and exits non-zero
// without serving.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/s3store"
	"github.com/casa-go/casa/thumbnail"
)

// options are the command-line flags.
type options struct {
	addr        string
	data        string
	db          string
	s3Bucket    string
	s3Endpoint  string
	s3Region    string
	s3PathStyle bool
	s3Create    bool
	s3OpTimeout time.Duration
	s3Stall     time.Duration
	signKey     string
	maxUpload   int64
	bodyStall   time.Duration
	thumbTime   time.Duration
	thumbCache  string
	seedLegacy  int
	cleanup     bool
	final       bool
	migrateOnly bool
	migrate     string
	migrateRate float64
	revert      bool
	gc          bool
	compress    bool
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("inventory", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8080", "listen `address`")
	fs.StringVar(&o.data, "data", "inventory-data", "data `directory`: SQLite database, blobs, thumbnail cache")
	fs.StringVar(&o.db, "db", "", "`database`: a postgres:// URL, a mysql://USER:PASSWORD@HOST[:PORT]/DATABASE URL (MySQL/MariaDB), or a SQLite file (default: inventory.db in -data)")
	fs.StringVar(&o.s3Bucket, "s3-bucket", "", "store blobs in this S3 `bucket` instead of the data directory")
	fs.StringVar(&o.s3Endpoint, "s3-endpoint", "", "S3 endpoint `URL` for S3-compatible services")
	fs.StringVar(&o.s3Region, "s3-region", "", "S3 `region` (default: AWS config, else us-east-1)")
	fs.BoolVar(&o.s3PathStyle, "s3-path-style", false, "address S3 buckets by path instead of host name")
	fs.BoolVar(&o.s3Create, "s3-create-bucket", false, "create the -s3-bucket at start-up when it does not exist (for demos)")
	fs.DurationVar(&o.s3OpTimeout, "s3-op-timeout", 0, "fail an S3 metadata call after this `duration` (0: s3store's default)")
	fs.DurationVar(&o.s3Stall, "s3-stall-timeout", 0, "fail an S3 transfer after this `duration` without progress (0: s3store's default)")
	fs.StringVar(&o.signKey, "sign-key", "", "HMAC `key` that signs blob URLs; unsigned URLs are refused")
	fs.Int64Var(&o.maxUpload, "max-upload", DefaultMaxUpload, "largest upload in `bytes`")
	fs.DurationVar(&o.bodyStall, "body-stall", DefaultBodyStall, "cut off a request body that sends no bytes for this `duration`")
	fs.DurationVar(&o.thumbTime, "thumb-timeout", thumbnail.DefaultTimeout, "give up a thumbnail generation after this `duration` (500)")
	fs.StringVar(&o.thumbCache, "thumb-cache", "", "thumbnail cache `mode`: local (data directory) or shared (also the blob store; the default with -s3-bucket)")
	fs.IntVar(&o.seedLegacy, "seed-legacy", 0, "create `N` parts with files under legacy UUID keys before migrating")
	fs.BoolVar(&o.cleanup, "cleanup", false, "after a complete migration, delete every non-CAS object that no row references (the blob store must be this app's alone)")
	fs.BoolVar(&o.final, "final", false, "after a complete migration, mark it final (no revert; lets -cleanup delete legacy objects)")
	fs.StringVar(&o.migrate, "migrate", MigrateOnline, "migration `mode`: online (serve, migrate in the background), blocking (migrate, then serve) or off")
	fs.Float64Var(&o.migrateRate, "migrate-rate", 0, "limit the background migration to `N` attachments per second (0: no limit)")
	fs.BoolVar(&o.revert, "revert", false, "revert the migration (journal) and exit; stop other replicas first")
	fs.BoolVar(&o.gc, "gc", false, "collect garbage once at start-up: delete blobs no attachment references, older than a day (after a blocking migration; otherwise in the background)")
	fs.BoolVar(&o.compress, "compress", false, "store compressible files zstd-compressed (served as they are to clients that accept zstd)")
	fs.BoolVar(&o.migrateOnly, "migrate-only", false, "run the startup migration, report and exit")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	case o.maxUpload <= 0:
		return o, errors.New("-max-upload must be positive")
	case o.bodyStall <= 0:
		return o, errors.New("-body-stall must be positive")
	case o.thumbTime <= 0:
		return o, errors.New("-thumb-timeout must be positive")
	case o.thumbCache != "" && o.thumbCache != ThumbCacheLocal && o.thumbCache != ThumbCacheShared:
		return o, fmt.Errorf("-thumb-cache must be local or shared, not %q", o.thumbCache)
	case o.migrate != MigrateOnline && o.migrate != MigrateBlocking && o.migrate != MigrateOff:
		return o, fmt.Errorf("-migrate must be online, blocking or off, not %q", o.migrate)
	case o.migrateRate < 0:
		return o, errors.New("-migrate-rate must not be negative")
	case o.revert && (o.final || o.cleanup || o.migrateOnly || o.seedLegacy > 0 || o.gc):
		return o, errors.New("-revert runs alone: not with -final, -cleanup, -migrate-only, -seed-legacy or -gc")
	case o.seedLegacy < 0:
		return o, errors.New("-seed-legacy must not be negative")
	case o.s3Bucket == "" && (o.s3Endpoint != "" || o.s3Region != "" || o.s3PathStyle || o.s3Create):
		return o, errors.New("-s3-endpoint, -s3-region and -s3-path-style need -s3-bucket")
	}
	return o, nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		msg := err.Error() // most already say "inventory: ..."
		if !strings.HasPrefix(msg, "inventory: ") {
			msg = "inventory: " + msg
		}
		fmt.Fprintln(os.Stderr, msg)
		os.Exit(1)
	}
}

// run is main without the process: it returns when ctx is cancelled (after a
// graceful shutdown), when -migrate-only is done, or on error.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))

	cfg := Config{
		DataDir:      o.data,
		DB:           o.db,
		ThumbCache:   o.thumbCache,
		SignKey:      []byte(o.signKey),
		MaxUpload:    o.maxUpload,
		BodyStall:    o.bodyStall,
		ThumbTimeout: o.thumbTime,
		SeedLegacy:   o.seedLegacy,
		Cleanup:      o.cleanup,
		Final:        o.final,
		GC:           o.gc,
		Migrate:      o.migrate,
		MigrateRate:  o.migrateRate,
		Compress:     o.compress,
		Progress:     stderr,
		Logger:       log,
	}
	if o.s3Bucket != "" {
		if cfg.Backend, err = s3Backend(ctx, o); err != nil {
			return err
		}
		if cfg.ThumbCache == "" {
			cfg.ThumbCache = ThumbCacheShared // replicas over one bucket share thumbnails
		}
	}
	switch {
	case o.migrateOnly:
		cfg.Migrate = MigrateBlocking // -migrate-only keeps its meaning
	case o.revert:
		cfg.Migrate = MigrateOff
	}
	app, err := NewApp(ctx, cfg)
	if err != nil {
		return err
	}
	defer app.Close()
	if o.revert {
		return app.Revert(ctx, stderr)
	}
	if o.migrateOnly {
		return nil
	}
	return serve(ctx, o.addr, app.Handler(), log)
}

// s3Backend connects to the bucket with the standard AWS configuration
// chain (environment, shared config and credentials files, instance role).
func s3Backend(ctx context.Context, o options) (cas.Backend, error) {
	var loadOpts []func(*config.LoadOptions) error
	if o.s3Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(o.s3Region))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("aws config: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(awsCfg, func(so *s3.Options) {
		if o.s3Endpoint != "" {
			so.BaseEndpoint = aws.String(o.s3Endpoint)
		}
		so.UsePathStyle = o.s3PathStyle
	})
	var opts []s3store.Option
	if o.s3OpTimeout > 0 {
		opts = append(opts, s3store.WithOpTimeout(o.s3OpTimeout))
	}
	if o.s3Stall > 0 {
		opts = append(opts, s3store.WithStallTimeout(o.s3Stall))
	}
	b := s3store.New(client, o.s3Bucket, opts...)
	// Fail at start-up, naming the bucket, rather than at the first upload.
	err = b.CheckBucket(ctx)
	if errors.Is(err, cas.ErrNotFound) && o.s3Create {
		if _, cerr := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(o.s3Bucket)}); cerr != nil {
			return nil, fmt.Errorf("creating S3 bucket %q: %w", o.s3Bucket, cerr)
		}
		err = b.CheckBucket(ctx)
	}
	switch {
	case errors.Is(err, cas.ErrNotFound):
		return nil, fmt.Errorf("S3 bucket %q does not exist: create it, or pass -s3-create-bucket for a demo: %w", o.s3Bucket, err)
	case err != nil:
		return nil, fmt.Errorf("S3 bucket %q is not usable: %w", o.s3Bucket, err)
	}
	return b, nil
}

// serve serves h on addr until ctx is cancelled, then shuts down
// gracefully, giving requests in flight ten seconds to finish.
//
// Request headers must arrive within ReadHeaderTimeout; bodies are timed
// by the handler (guardBodies), not by ReadTimeout, which would cut off a
// large upload that is still making progress. When the process runs out of
// file descriptors, http.Server retries accept with a backoff (5 ms up to
// 1 s) and logs it; connections wait in the listen backlog until stalled
// bodies are cut off and their descriptors are free again.
func serve(ctx context.Context, addr string, h http.Handler, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("serving", "url", "http://"+ln.Addr().String()+"/")
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
