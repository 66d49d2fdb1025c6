package main

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite", pure Go

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/fsstore"
	"github.com/casa-go/casa/cashttp"
	"github.com/casa-go/casa/casurl"
	"github.com/casa-go/casa/thumbnail"
)

// DefaultMaxUpload is the largest file an upload may carry unless
// Config.MaxUpload says otherwise.
const DefaultMaxUpload = 50 << 20

// thumbSize is the edge, in pixels, of every thumbnail the app links to.
const thumbSize = 150

// Config is everything NewApp needs. Only DataDir is required.
type Config struct {
	// DataDir holds the SQLite database (inventory.db) unless DB is set,
	// the local thumbnail cache (thumbnails/), upload temp files and,
	// unless Backend is set, the blobs (blobs/).
	DataDir string
	// DB is the database: a postgres:// (or postgresql://) URL, a
	// mysql://USER:PASSWORD@HOST[:PORT]/DATABASE (or mariadb://) URL, or
	// the path of a SQLite file. Empty means DataDir/inventory.db. Several
	// replicas may share one PostgreSQL or MySQL database (and one
	// Backend).
	DB string
	// Backend stores the blobs. Nil means an fsstore under DataDir/blobs.
	Backend cas.Backend
	// SignKey, when non-empty, signs every /api/cas URL with HMAC and makes
	// the blob handler refuse unsigned ones.
	SignKey []byte
	// MaxUpload limits the size of an uploaded file; zero means
	// DefaultMaxUpload.
	MaxUpload int64
	// SeedLegacy creates that many parts whose attachments are stored the
	// pre-CAS way, under UUID keys, before the startup migration runs.
	SeedLegacy int
	// Cleanup deletes legacy objects nobody references once the migration
	// is complete (migrate.Cleanup).
	Cleanup bool
	// Migrate is the migration mode: MigrateBlocking (the default when
	// empty: migrate everything, then serve, refusing to start when a
	// file fails), MigrateOnline (serve at once, migrate in the
	// background) or MigrateOff (serve, do not migrate). In the online and
	// off modes waiting attachments get signed, short-lived legacy URLs.
	Migrate string
	// MigrateRate limits the background migration, in attachments per
	// second; zero means no limit.
	MigrateRate float64
	// Compress stores compressible uploads zstd-compressed
	// (cas.WithCompression with the default policy); compressed blobs are
	// served as they are to clients that accept zstd.
	Compress bool
	// Final marks the migration final (migrate.Finalize) once it is
	// complete: it can no longer be reverted, and Cleanup may delete the
	// legacy objects. Cleanup without Final refuses until some run was
	// given Final.
	Final bool
	// GC collects garbage once at start-up (migrate.Collect): blobs no
	// attachment references, older than GCMinAge (zero: a day). In the
	// blocking mode it runs after the migration, before serving; otherwise
	// in the background while the app serves. See gc.go.
	GC       bool
	GCMinAge time.Duration
	// Progress receives the migration's progress lines; nil discards them.
	Progress io.Writer
	// Logger logs; nil discards.
	Logger *slog.Logger
	// BodyStall is how long a request body may send no bytes before it is
	// cut off (408, connection closed, temp file removed); zero means
	// DefaultBodyStall.
	BodyStall time.Duration
	// SmallBodyTimeout is how long a JSON or form body has to arrive
	// whole; zero means DefaultSmallBodyTimeout.
	SmallBodyTimeout time.Duration
	// ThumbTimeout is the deadline of one thumbnail generation; zero means
	// thumbnail.DefaultTimeout.
	ThumbTimeout time.Duration
	// ThumbCache says where thumbnails are cached: ThumbCacheLocal (the
	// default when empty: DataDir/thumbnails only) or ThumbCacheShared
	// (DataDir/thumbnails first, then the blob Backend under
	// "thumbnails/", so that replicas over one bucket generate each
	// thumbnail once).
	ThumbCache string
}

// Thumbnail cache modes (Config.ThumbCache, -thumb-cache).
const (
	// ThumbCacheLocal caches thumbnails in the data directory only.
	ThumbCacheLocal = "local"
	// ThumbCacheShared caches them in the data directory and in the blob
	// Backend, shared by every replica over it.
	ThumbCacheShared = "shared"
)

// App is the inventory application: a database of parts and attachments
// (SQLite or PostgreSQL), a cas.Store for the files, and the HTTP handlers.
type App struct {
	db        *appDB
	store     *cas.Store // serves and migrates
	uploads   *cas.Store // the same Backend, with the upload size limit
	urls      casurl.Builder
	blobs     http.Handler
	maxUpload int64
	bodyStall time.Duration // Config.BodyStall
	smallBody time.Duration // Config.SmallBodyTimeout
	log       *slog.Logger
	page      *template.Template
	// Migration is the report of the startup migration (blocking mode).
	Migration MigrationResult
	online    online
	gc        gcRun
}

// NewApp opens (or creates) the database in cfg.DataDir, creates the schema
// if it is missing, seeds legacy data when asked, and runs the startup
// migration. It fails, and serves nothing, when any attachment is still on
// a legacy key afterwards.
func NewApp(ctx context.Context, cfg Config) (*App, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("inventory: no data directory")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	maxUpload := cfg.MaxUpload
	if maxUpload <= 0 {
		maxUpload = DefaultMaxUpload
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("inventory: data directory: %w", err)
	}
	backend := cfg.Backend
	if backend == nil {
		fs, err := fsstore.New(filepath.Join(cfg.DataDir, "blobs"))
		if err != nil {
			return nil, fmt.Errorf("inventory: blob directory: %w", err)
		}
		backend = fs
	}
	thumbCache := cfg.ThumbCache
	if thumbCache == "" {
		thumbCache = ThumbCacheLocal
	}
	if thumbCache != ThumbCacheLocal && thumbCache != ThumbCacheShared {
		return nil, fmt.Errorf("inventory: unknown thumbnail cache mode %q", cfg.ThumbCache)
	}
	dbSpec := cfg.DB
	if dbSpec == "" {
		dbSpec = filepath.Join(cfg.DataDir, "inventory.db")
	}
	db, err := openDB(ctx, dbSpec)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	migrator, err := newMigrator(db)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	// Two Stores over one Backend: the migration copies legacy objects of
	// any size, uploads are capped. Both touch every blob they store or
	// deduplicate against (gc.go), so that a collection never deletes it.
	storeOpts := []cas.Option{cas.WithLogger(log), gcHook(migrator)}
	if cfg.Compress {
		enc, err := compressionEncoder()
		if err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("compression: %w", err)
		}
		storeOpts = append(storeOpts, cas.WithCompression(cas.Compression{Encoder: enc}))
	}
	store := cas.New(backend, storeOpts...)
	uploads := cas.New(backend, append(storeOpts, cas.WithMaxSize(maxUpload))...)
	page, err := parsePage()
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("inventory: page template: %w", err)
	}
	app := &App{db: db, store: store, uploads: uploads, maxUpload: maxUpload, log: log, page: page,
		bodyStall: positiveOr(cfg.BodyStall, DefaultBodyStall), smallBody: positiveOr(cfg.SmallBodyTimeout, DefaultSmallBodyTimeout)}
	ok := false
	defer func() {
		if !ok {
			_ = db.Close()
		}
	}()

	mode := cfg.Migrate
	if mode == "" {
		mode = MigrateBlocking
	}
	if mode != MigrateBlocking && mode != MigrateOnline && mode != MigrateOff {
		return nil, fmt.Errorf("inventory: unknown migration mode %q", cfg.Migrate)
	}
	app.online.mode = mode
	app.online.migrator = migrator
	if cfg.Cleanup && !cfg.Final {
		final, err := app.online.migrator.Final(ctx)
		if err != nil {
			return nil, fmt.Errorf("inventory: journal: %w", err)
		}
		if !final {
			return nil, errors.New("inventory: cleanup refused: the migration is not final (check the migrated data, then pass -final with -cleanup)")
		}
	}

	if cfg.SeedLegacy > 0 {
		if err := SeedLegacy(ctx, db, backend, cfg.SeedLegacy); err != nil {
			return nil, err
		}
		log.Info("seeded legacy parts", "parts", cfg.SeedLegacy)
	}
	if mode == MigrateBlocking {
		app.Migration, err = startupMigration(ctx, app.online.migrator, store, cfg.Cleanup, cfg.Final, cfg.Progress, log)
		if err != nil {
			return nil, err
		}
	} else if app.online.signer, err = legacySigner(cfg.SignKey); err != nil {
		return nil, err
	}

	// Thumbnails are generated on first request and cached on local disk;
	// shared, also beside the blobs, where every replica finds them. The
	// local cache comes first: a hit there costs no request to the
	// Backend, and a hit in the Backend fills it.
	cache, err := thumbnail.NewDirCache(filepath.Join(cfg.DataDir, "thumbnails"), 256<<20)
	if err != nil {
		return nil, fmt.Errorf("inventory: thumbnail cache: %w", err)
	}
	thumbOpts := []thumbnail.Option{thumbnail.WithCache(cache), thumbnail.WithLogger(log),
		thumbnail.WithTimeout(positiveOr(cfg.ThumbTimeout, thumbnail.DefaultTimeout))}
	if thumbCache == ThumbCacheShared {
		thumbOpts = append(thumbOpts, thumbnail.WithCache(thumbnail.NewBackendCache(backend)))
	}
	thumbs := thumbnail.NewService(store, thumbOpts...)
	opts := []cashttp.Option{
		cashttp.WithThumbnails(thumbs),
		cashttp.WithThumbnailSizes(thumbSize), // the only size the app links to
		cashttp.WithLogger(log),
	}
	if len(cfg.SignKey) > 0 {
		signer := casurl.NewSigner(cfg.SignKey)
		app.urls.Signer = signer
		opts = append(opts, cashttp.WithSigner(signer))
	}
	app.blobs = cashttp.NewHandler(store, opts...)
	if cfg.GC {
		if err := app.startGC(ctx, cfg, mode == MigrateBlocking, log); err != nil {
			return nil, err
		}
	}
	if mode == MigrateOnline {
		app.startOnline(cfg, log)
	}
	ok = true
	return app, nil
}

// positiveOr is d if it is positive, else def.
func positiveOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Close stops the background migration, if any, and closes the database.
func (a *App) Close() error {
	a.stopGC()
	a.stopOnline()
	return a.db.Close()
}

// Handler returns the application's routes: the JSON API under /api, the
// blob handler under /api/cas and the HTML page at /.
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()

	// Blobs: everything the URL needs is in the URL, no database lookup.
	mux.Handle("GET /api/cas/{hash}", a.blobs)
	mux.Handle("HEAD /api/cas/{hash}", a.blobs)

	// Waiting attachments (online and off modes): signed, short-lived.
	mux.HandleFunc("GET /api/legacy/{id}/{hash}", a.serveLegacy)
	mux.HandleFunc("HEAD /api/legacy/{id}/{hash}", a.serveLegacy)
	mux.HandleFunc("GET /api/migration", a.getMigration)

	mux.HandleFunc("GET /api/parts", a.listParts)
	mux.HandleFunc("POST /api/parts", a.createPart)
	mux.HandleFunc("GET /api/parts/{key}", a.getPart)
	mux.HandleFunc("PUT /api/parts/{key}/cover", a.setCover)
	mux.HandleFunc("GET /api/parts/{key}/attachments", a.listAttachments)
	mux.HandleFunc("POST /api/parts/{key}/attachments", a.createAttachment)
	mux.HandleFunc("DELETE /api/parts/{key}/attachments/{id}", a.deleteAttachment)
	mux.HandleFunc("POST /api/parts/{key}/attachments/{id}/copy", a.copyAttachment)
	a.mountUploads(mux) // uploads.go: PUT/HEAD /api/uploads/{hash}, POST /api/uploads/missing

	// The pre-CAS endpoints that streamed blobs through the database.
	mux.HandleFunc("GET /api/parts/{key}/attachments/{id}/download", gone("download_url"))
	mux.HandleFunc("GET /api/parts/{key}/attachments/{id}/thumbnail", gone("thumbnail_url"))
	mux.HandleFunc("GET /api/parts/{key}/cover/thumbnail", gone("cover_url"))

	// The HTML page and its two forms.
	mux.HandleFunc("GET /{$}", a.renderPage)
	mux.HandleFunc("POST /parts", a.pageCreatePart)
	mux.HandleFunc("POST /parts/{key}/attachments", a.pageUpload)

	// Forms post from the page itself; refuse cross-site form posts.
	// Every request body must keep making progress.
	return guardBodies(http.NewCrossOriginProtection().Handler(jsonNotFound(mux)), a.bodyStall)
}

// jsonNotFound makes the mux's own 404 and 405 answers under /api/ JSON
// errors like every other API error.
func jsonNotFound(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" || !strings.HasPrefix(r.URL.Path, "/api/") {
			mux.ServeHTTP(w, r)
			return
		}
		// No route: h answers 404, or 405 with an Allow header. Keep its
		// status and headers, replace its plain-text body.
		sw := &statusOnly{header: w.Header(), status: http.StatusOK}
		h.ServeHTTP(sw, r)
		writeError(w, sw.status, http.StatusText(sw.status)+": "+r.Method+" "+r.URL.Path)
	})
}

// statusOnly is a ResponseWriter that keeps the status and discards the
// body.
type statusOnly struct {
	header http.Header
	status int
}

func (s *statusOnly) Header() http.Header         { return s.header }
func (s *statusOnly) Write(b []byte) (int, error) { return len(b), nil }
func (s *statusOnly) WriteHeader(status int)      { s.status = status }
