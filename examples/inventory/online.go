package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/casurl"
	"github.com/casa-go/casa/migrate"
	"github.com/casa-go/casa/migrate/sqlmigrator"
)

// Migration modes (Config.Migrate, -migrate).
const (
	// MigrateBlocking migrates every attachment before serving and
	// refuses to start when one fails (the zero Config's mode).
	MigrateBlocking = "blocking"
	// MigrateOnline serves at once and migrates in the background;
	// waiting rows get short-lived signed URLs to the legacy route.
	MigrateOnline = "online"
	// MigrateOff serves without migrating: waiting rows get legacy URLs.
	MigrateOff = "off"
)

// LegacyTTL is how long a legacy URL stays valid.
const LegacyTTL = 5 * time.Minute

// legacyMaxAge caps the private max-age of a legacy response.
const legacyMaxAge = 60 * time.Second

// online is the state of the online mode: the background migration and
// the legacy route.
type online struct {
	mode     string
	migrator *sqlmigrator.Migrator
	signer   *casurl.Signer // signs legacy URLs
	skew     atomic.Int64   // added to the clock of the legacy route (tests)
	// status is the Status of the background run in progress (one per
	// round, see backgroundMigration); nil before the first.
	status atomic.Pointer[migrate.Status]
	// prior and priorConflicts count the records migrated, and the
	// conflicts, of earlier rounds.
	prior, priorConflicts atomic.Int64
	// running is set while the background migration goes on.
	running atomic.Bool

	cancel context.CancelFunc
	done   chan struct{} // closed when the background work has ended

	mu     sync.Mutex
	final  bool
	bgErr  error // why the background work stopped early, if it did
	report *migrate.CleanupReport
}

// newMigrator returns the attachments table's Migrator (journal:
// attachments_casa_journal): the keys are in the storage_key column, one
// row per file.
func newMigrator(db *appDB) (*sqlmigrator.Migrator, error) {
	// SQLite and MySQL take sqlmigrator's default SQL (? placeholders,
	// `quoted` names); PostgreSQL its own.
	var opts []sqlmigrator.Option
	if db.dialect == dialectPostgres {
		opts = append(opts, sqlmigrator.WithDollarPlaceholders())
	}
	m, err := sqlmigrator.New(db.DB, sqlmigrator.Table{Name: "attachments", IDColumn: "id", KeyColumn: "storage_key"}, opts...)
	if err != nil {
		return nil, fmt.Errorf("inventory: migrator: %w", err)
	}
	return m, nil
}

// legacySigner is the Signer of legacy URLs: the app's sign key, or a
// random key for this process (legacy URLs live minutes; a restart only
// makes the outstanding ones 403).
func legacySigner(key []byte) (*casurl.Signer, error) {
	if len(key) > 0 {
		return casurl.NewSigner(key), nil
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("inventory: legacy URL key: %w", err)
	}
	return casurl.NewSigner(k), nil
}

// startOnline starts the background migration, then Final and Cleanup
// as cfg asks once it has completed. It runs until Close.
func (a *App) startOnline(cfg Config, log *slog.Logger) {
	ctx, cancel := context.WithCancel(context.Background())
	a.online.cancel = cancel
	a.online.done = make(chan struct{})
	a.online.running.Store(true)
	go func() {
		defer close(a.online.done)
		err := a.backgroundMigration(ctx, cfg, log)
		a.online.running.Store(false)
		if err != nil && ctx.Err() == nil {
			log.Error("background migration stopped; waiting attachments keep legacy URLs until a restart", "err", err)
		}
		a.online.mu.Lock()
		a.online.bgErr = err
		a.online.mu.Unlock()
	}()
}

// maxConflictRounds bounds backgroundMigration's reruns after conflicts.
const maxConflictRounds = 10

// backgroundMigration migrates every waiting attachment, then marks the
// migration final and cleans up as cfg asks.
//
// Replicas that start together all migrate the same rows: the first to
// commit a row wins, and the others' commits of it find the old key gone
// (sqlmigrator's UPDATE), which migrate.Run counts in Report.Conflicts,
// not as failures. A failure of a row that has moved or gone meanwhile
// (its legacy object deleted by the other replica's -cleanup) is a
// conflict too. When such a row is still pending (a user changed it to a
// new legacy key) the run is repeated. Only failures of another kind stop
// the migration. The journal holds one standing commit per row either way.
func (a *App) backgroundMigration(ctx context.Context, cfg Config, log *slog.Logger) error {
	m := a.online.migrator
	start := time.Now()
	var migrated, dedup, conflicts int
	for round := 1; ; round++ {
		st := new(migrate.Status)
		a.online.status.Store(st)
		a.online.prior.Store(int64(migrated))
		a.online.priorConflicts.Store(int64(conflicts))
		rep, err := migrate.Run(ctx, a.store, m, migrate.Options{
			Logger:           log,
			Status:           st,
			RecordsPerSecond: cfg.MigrateRate,
		})
		migrated += rep.Migrated
		dedup += rep.Deduplicated
		var failures []migrate.Failure
		moved := 0
		for _, f := range rep.Failures {
			if a.rowMoved(ctx, f.Record) {
				moved++
			} else {
				failures = append(failures, f)
			}
		}
		conflicts += rep.Conflicts + moved
		if err == nil && len(failures) > 0 {
			err = rep.Err()
		}
		if err != nil {
			for _, f := range failures {
				log.Error("attachment not migrated", "id", f.Record.ID, "key", f.Record.Key, "err", f.Err)
			}
			return err
		}
		// Rows that moved and may still be pending: look again.
		n := rep.ConflictsPending + moved
		if n == 0 {
			break
		}
		if round == maxConflictRounds {
			return fmt.Errorf("%d attachments changed concurrently in each of %d runs: %w", n, round, migrate.ErrConflict)
		}
		log.Info("attachments changed while being migrated (by another replica?); looking again", "conflicts", n, "round", round)
	}
	a.online.prior.Store(int64(migrated))
	a.online.priorConflicts.Store(int64(conflicts))
	a.online.status.Store(nil)
	log.Info("background migration complete", "migrated", migrated, "deduplicated", dedup, "conflicts", conflicts,
		"elapsed", time.Since(start))
	if cfg.Final {
		if err := migrate.Finalize(ctx, m); err != nil {
			return fmt.Errorf("final: %w", err)
		}
		a.online.mu.Lock()
		a.online.final = true
		a.online.mu.Unlock()
		log.Info("migration marked final")
	}
	if cfg.Cleanup {
		cr, err := migrate.Cleanup(ctx, a.store, m, migrate.CleanupOptions{Logger: log})
		a.online.mu.Lock()
		a.online.report = &cr
		a.online.mu.Unlock()
		if err != nil {
			return fmt.Errorf("cleanup: %w", err)
		}
		log.Info("cleanup complete", "deleted", cr.Deleted, "kept", cr.Kept, "notes", cr.Notes)
	}
	return nil
}

// rowMoved reports whether the attachment of rec no longer holds rec.Key,
// or is gone: another replica migrated it (and its -cleanup may have deleted the
// legacy object this run then failed to read). Such a failure is a
// conflict, not a failure of the migration.
func (a *App) rowMoved(ctx context.Context, rec migrate.Record) bool {
	id, err := strconv.ParseInt(rec.ID, 10, 64)
	if err != nil {
		return false
	}
	at, err := getAttachmentByID(ctx, a.db, id)
	if errors.Is(err, sql.ErrNoRows) {
		return true // deleted: nothing left to migrate
	}
	return err == nil && at.StorageKey.String != rec.Key
}

// stopOnline stops the background work and waits for it.
func (a *App) stopOnline() {
	if a.online.cancel != nil {
		a.online.cancel()
		<-a.online.done
	}
}

// legacyHash binds a legacy URL to the key its row held when the URL was
// made: a URL stops working once the row points elsewhere.
func legacyHash(key string) cas.Hash {
	return cas.SumBytes([]byte("inventory legacy key\x00" + key))
}

// legacyBuilder builds the legacy URLs of attachment id:
// /api/legacy/<id>/<binding>?...&expires=...&sig=...
func (a *App) legacyBuilder(id int64) casurl.Builder {
	return casurl.Builder{Prefix: "/api/legacy/" + strconv.FormatInt(id, 10), Signer: a.online.signer, TTL: LegacyTTL}
}

// legacyDownloadURL is the download URL of a waiting attachment, or nil.
func (a *App) legacyDownloadURL(at attachment) *string {
	if a.online.signer == nil || !waiting(at.StorageKey.String) {
		return nil
	}
	u, err := a.legacyBuilder(at.ID).Download(legacyHash(at.StorageKey.String), at.ContentType.String, at.Filename.String)
	if err != nil {
		return nil
	}
	return &u
}

// legacyThumbnailURL is the thumbnail URL of a waiting image attachment,
// or nil: the route migrates the row and redirects to the CAS thumbnail.
func (a *App) legacyThumbnailURL(id int64, key string) *string {
	if a.online.signer == nil || !waiting(key) {
		return nil
	}
	u, err := a.legacyBuilder(id).Thumbnail(legacyHash(key), thumbSize)
	if err != nil {
		return nil
	}
	return &u
}

// waiting reports whether key is a legacy key still to migrate.
func waiting(key string) bool { return key != "" && !cas.IsKey(key) }

// getAttachmentByID reads one attachment.
func getAttachmentByID(ctx context.Context, q querier, id int64) (attachment, error) {
	return scanAttachment(q.QueryRowContext(ctx, `SELECT `+attachmentColumns+` FROM attachments a WHERE a.id = ?`, id))
}

// serveLegacy answers GET/HEAD /api/legacy/{id}/{hash}: a signed,
// unexpired URL the app made for that attachment while it waited for the
// migration. The key is read from the row, never from the URL: the route
// serves nothing the app did not hand out. Anything wrong with the URL,
// an unknown attachment, or a row that has moved to another legacy key is
// 403 with no-store. A content request serves the legacy object (private,
// short max-age, never immutable; an ETag from the key, size and
// modification time); a thumbnail request migrates the row now and
// redirects to the CAS thumbnail. A row migrated meanwhile redirects to its
// CAS URL.
func (a *App) serveLegacy(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	deny := func(why string, err error) {
		a.log.InfoContext(ctx, "legacy URL refused", "path", r.URL.Path, "why", why, "err", err)
		w.Header().Set("Cache-Control", "no-store")
		writeError(w, http.StatusForbidden, "forbidden: invalid or expired link")
	}
	if a.online.signer == nil {
		// Blocking mode hands out no legacy URLs; without a Signer,
		// ParseAt would check nothing.
		deny("no legacy URLs in this mode", nil)
		return
	}
	req, err := casurl.ParseAt(r.PathValue("hash"), r.URL.RawQuery, a.online.signer, time.Now().Add(time.Duration(a.online.skew.Load())))
	if err != nil {
		deny("url", err)
		return
	}
	if req.Expires.IsZero() {
		deny("no expiry", nil)
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		deny("id", err)
		return
	}
	at, err := getAttachmentByID(ctx, a.db, id)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && !at.StorageKey.Valid) {
		deny("unknown attachment", err)
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	key := at.StorageKey.String
	if waiting(key) && legacyHash(key) != req.Hash {
		deny("the attachment points elsewhere now", nil)
		return
	}
	if req.IsThumbnail() && waiting(key) {
		if key, err = a.migrateNow(ctx, at); err != nil {
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("Retry-After", "1")
			a.log.WarnContext(ctx, "on-demand migration failed", "id", at.ID, "err", err)
			writeError(w, http.StatusServiceUnavailable, "the file is being migrated; retry shortly")
			return
		}
	}
	if !waiting(key) {
		a.redirectToCAS(w, r, req, key, at)
		return
	}
	a.serveLegacyObject(w, r, req, key)
}

// redirectToCAS sends the client to the CAS URL of a migrated row.
func (a *App) redirectToCAS(w http.ResponseWriter, r *http.Request, req casurl.Request, key string, at attachment) {
	h, err := cas.ParseKey(key)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	var u string
	if req.IsThumbnail() {
		u, err = a.urls.Thumbnail(h, thumbSize)
	} else {
		u, err = a.urls.Download(h, at.ContentType.String, at.Filename.String)
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u, http.StatusFound)
}

// serveLegacyObject serves the legacy object under key as req says.
func (a *App) serveLegacyObject(w http.ResponseWriter, r *http.Request, req casurl.Request, key string) {
	ctx := r.Context()
	obj, err := cas.Checked(a.store.Backend()).Open(ctx, key)
	if errors.Is(err, cas.ErrNotFound) {
		w.Header().Set("Cache-Control", "no-store")
		writeError(w, http.StatusNotFound, "the file is missing")
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	defer obj.Close()
	info := obj.Info()
	hdr := w.Header()
	maxAge := min(legacyMaxAge, time.Until(req.Expires))
	if maxAge < time.Second {
		maxAge = 0
	}
	hdr.Set("Cache-Control", "private, max-age="+strconv.Itoa(int(maxAge/time.Second)))
	hdr.Set("ETag", legacyETag(key, info))
	hdr.Set("Content-Type", req.ContentType)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	disp := req.Disposition
	if disp == "" {
		disp = casurl.Inline
	}
	if req.Filename != "" {
		disp = mime.FormatMediaType(disp, map[string]string{"filename": req.Filename})
	}
	hdr.Set("Content-Disposition", disp)
	http.ServeContent(w, r, "", info.ModTime, obj)
}

// legacyETag is a strong ETag from what identifies a legacy object's
// bytes without reading them: its key, size and modification time
// (cas.Info has no backend ETag).
func legacyETag(key string, info cas.Info) string {
	s := sha256.Sum256([]byte(key + "\x00" + strconv.FormatInt(info.Size, 10) + "\x00" + strconv.FormatInt(info.ModTime.UnixNano(), 10)))
	return `"` + hex.EncodeToString(s[:16]) + `"`
}

// migrateNow migrates one attachment (the thumbnail of a waiting image)
// and returns its key afterwards. A background run that migrated it first
// is not an error.
func (a *App) migrateNow(ctx context.Context, at attachment) (string, error) {
	rec := migrate.Record{ID: strconv.FormatInt(at.ID, 10), Key: at.StorageKey.String}
	rep, err := migrate.Run(ctx, a.store, oneRecord{a.online.migrator, rec}, migrate.Options{Concurrency: 1, Logger: a.log})
	if err != nil {
		return "", err
	}
	now, err := getAttachmentByID(ctx, a.db, at.ID)
	if err != nil {
		return "", err
	}
	if waiting(now.StorageKey.String) {
		if err := rep.Err(); err != nil {
			return "", err
		}
		return "", errors.New("still waiting")
	}
	return now.StorageKey.String, nil
}

// oneRecord is the attachments Migrator narrowed to one record, so that
// an on-demand migration goes through migrate.Run and the journal.
type oneRecord struct {
	*sqlmigrator.Migrator
	rec migrate.Record
}

func (o oneRecord) Pending(context.Context) iter.Seq2[migrate.Record, error] {
	return func(yield func(migrate.Record, error) bool) { yield(o.rec, nil) }
}

// migrationJSON is GET /api/migration.
type migrationJSON struct {
	Mode     string `json:"mode"`
	State    string `json:"state"` // running, complete, stopped, off
	Pending  int    `json:"pending"`
	Migrated int    `json:"migrated"`
	// Conflicts counts rows another writer (replica) changed first: not
	// failures.
	Conflicts int     `json:"conflicts"`
	Failed    int     `json:"failed"`
	Rate      float64 `json:"rate"`        // records per second
	ETA       float64 `json:"eta_seconds"` // 0 when unknown or done
	Final     bool    `json:"final"`
}

// migrationState is the migration's state as the API and the page show it.
func (a *App) migrationState(ctx context.Context) (migrationJSON, error) {
	j := migrationJSON{Mode: a.online.mode}
	if err := a.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM attachments
		WHERE storage_key IS NOT NULL AND storage_key <> '' AND substr(storage_key, 1, ?) <> ?`,
		len(cas.KeyPrefix), cas.KeyPrefix).Scan(&j.Pending); err != nil {
		return j, fmt.Errorf("inventory: count pending: %w", err)
	}
	final, err := a.online.migrator.Final(ctx)
	if err != nil {
		return j, err
	}
	j.Final = final
	var p migrate.Progress
	if st := a.online.status.Load(); st != nil {
		p = st.Progress()
	}
	j.Migrated, j.Failed, j.Rate = int(a.online.prior.Load())+p.Migrated, p.Failed, p.Rate()
	j.Conflicts = int(a.online.priorConflicts.Load()) + p.Conflicts
	switch {
	case j.Pending == 0:
		j.State = "complete"
	case a.online.mode == MigrateOnline && a.online.running.Load():
		j.State = "running"
		if j.Rate > 0 {
			j.ETA = float64(j.Pending) / j.Rate
		}
	case a.online.mode == MigrateOnline:
		j.State = "stopped"
	default:
		j.State = "off"
	}
	return j, nil
}

// getMigration answers GET /api/migration.
func (a *App) getMigration(w http.ResponseWriter, r *http.Request) {
	j, err := a.migrationState(r.Context())
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, j)
}

// statusLine is the page's line about a migration in progress, or "".
func (j migrationJSON) statusLine() string {
	if j.Pending == 0 {
		return ""
	}
	s := fmt.Sprintf("Files are being migrated to content-addressed storage: %d waiting, %d migrated", j.Pending, j.Migrated)
	if j.Failed > 0 {
		s += fmt.Sprintf(", %d failed", j.Failed)
	}
	if j.ETA > 0 {
		s += fmt.Sprintf(", about %s left", (time.Duration(j.ETA) * time.Second).Round(time.Second))
	}
	if j.State != "running" {
		s += " (migration " + j.State + ")"
	}
	return s + "."
}

// Revert reverts the migration of every journaled attachment whose legacy
// object still exists, writes a summary to out, and returns an error when
// any revert failed. Run it with the migration off everywhere.
func (a *App) Revert(ctx context.Context, out io.Writer) error {
	rep, err := migrate.Revert(ctx, a.store, a.online.migrator, migrate.RevertOptions{Logger: a.log})
	fmt.Fprintf(out, "revert: %d reverted, %d skipped, %d failed in %s\n",
		rep.Reverted, len(rep.Skipped), rep.Failed, rep.Elapsed.Round(time.Millisecond))
	for _, s := range rep.Skipped {
		fmt.Fprintf(out, "revert: skipped attachment %s: %v\n", s.Entry.ID, s.Reason)
	}
	if err != nil {
		return fmt.Errorf("inventory: revert: %w", err)
	}
	if rep.Failed > 0 {
		return fmt.Errorf("inventory: revert: %d attachments failed, first: %w", rep.Failed, rep.Failures[0])
	}
	return nil
}
