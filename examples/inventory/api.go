package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/casurl"
)

// partJSON is a part as the API returns it.
type partJSON struct {
	Key         string    `json:"key"`
	Description string    `json:"description"`
	CoverURL    *string   `json:"cover_url"` // thumbnail URL of the cover, or null
	CreatedAt   time.Time `json:"created_at"`
}

// attachmentJSON is an attachment as the API returns it. The storage key
// is not in it: clients get URLs, never backend keys.
type attachmentJSON struct {
	ID             int64   `json:"id"`
	Title          string  `json:"title"`
	AttachmentType string  `json:"attachment_type"` // image, pdf, url or file
	Filename       *string `json:"filename"`
	ContentType    *string `json:"content_type"`
	FileSize       *int64  `json:"file_size"`
	URL            *string `json:"url"`           // URL attachments only
	DownloadURL    *string `json:"download_url"`  // casurl Download URL; null for URL attachments
	ThumbnailURL   *string `json:"thumbnail_url"` // casurl Thumbnail URL for images, else null
}

// Limits on the text fields of a request.
const (
	maxDescription = 1000
	maxTitle       = 200
	maxFilename    = 255
	maxURL         = 2000
	maxJSONBody    = 64 << 10
	// multipartSlack is what a multipart body may carry beyond the file:
	// boundaries, part headers and the title field.
	multipartSlack = 64 << 10
)

// attachmentType classifies an attachment for the client.
func attachmentType(a attachment) string {
	if a.URL.Valid {
		return "url"
	}
	mt, _, _ := mime.ParseMediaType(a.ContentType.String)
	switch mt {
	case "image/jpeg", "image/png", "image/gif", "image/webp":
		return "image"
	case "application/pdf":
		return "pdf"
	}
	return "file"
}

// coverURL is the size-150 thumbnail URL of p's cover, or nil.
func (a *App) coverURL(p part) *string {
	if p.Cover == nil || attachmentType(*p.Cover) != "image" {
		return nil
	}
	h, err := cas.ParseKey(p.Cover.StorageKey.String)
	if err != nil {
		// Waiting for the migration: a legacy URL (online and off modes).
		return a.legacyThumbnailURL(p.CoverID.Int64, p.Cover.StorageKey.String)
	}
	u, err := a.urls.Thumbnail(h, thumbSize)
	if err != nil {
		return nil // not for the constant thumbSize
	}
	return &u
}

func (a *App) partJSON(p part) partJSON {
	return partJSON{Key: p.Key, Description: p.Description, CoverURL: a.coverURL(p), CreatedAt: p.CreatedAt}
}

func (a *App) attachmentJSON(at attachment) attachmentJSON {
	j := attachmentJSON{ID: at.ID, Title: at.Title, AttachmentType: attachmentType(at)}
	if at.URL.Valid {
		j.URL = &at.URL.String
		return j
	}
	j.Filename, j.ContentType, j.FileSize = &at.Filename.String, &at.ContentType.String, &at.FileSize.Int64
	h, err := cas.ParseKey(at.StorageKey.String)
	if err != nil {
		// Waiting for the migration (online and off modes): signed,
		// short-lived URLs to the legacy route; nil in blocking mode,
		// where startup refuses to serve a waiting row.
		j.DownloadURL = a.legacyDownloadURL(at)
		if j.AttachmentType == "image" {
			j.ThumbnailURL = a.legacyThumbnailURL(at.ID, at.StorageKey.String)
		}
		return j
	}
	d, err := a.urls.Download(h, at.ContentType.String, at.Filename.String)
	if err != nil {
		return j // a type or name no URL can carry (uploads check both): no URL rather than one that gets 400
	}
	j.DownloadURL = &d
	if j.AttachmentType == "image" {
		if t, err := a.urls.Thumbnail(h, thumbSize); err == nil {
			j.ThumbnailURL = &t
		}
	}
	return j
}

// --- handlers ---

// listParts answers one page of parts: at most limit (default 100, at
// most 1000) after the cursor in after, with a Link rel="next" header to
// the next page while more remain.
func (a *App) listParts(w http.ResponseWriter, r *http.Request) {
	pg, err := a.partsPage(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]partJSON, len(pg.parts))
	for i, p := range pg.parts {
		out[i] = a.partJSON(p)
	}
	if pg.next != "" {
		w.Header().Set("Link", "<"+pg.nextURL("/api/parts")+`>; rel="next"`)
	}
	writeJSON(w, http.StatusOK, out)
}

// Page sizes of GET /api/parts and GET /.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// partsPage is one page of parts.
type partsPage struct {
	parts []part
	limit int
	next  string // cursor of the next page; empty on the last page
}

// nextURL is the URL of the next page at path.
func (pg partsPage) nextURL(path string) string {
	return path + "?" + url.Values{"after": {pg.next}, "limit": {strconv.Itoa(pg.limit)}}.Encode()
}

// partsPage reads the page that the after and limit query parameters ask
// for. It fetches one part more than the limit to know whether a next page
// exists.
func (a *App) partsPage(r *http.Request) (partsPage, error) {
	q := r.URL.Query()
	pg := partsPage{limit: defaultPageSize}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxPageSize {
			return pg, badRequest(fmt.Sprintf("limit must be a whole number from 1 to %d", maxPageSize))
		}
		pg.limit = n
	}
	var after partCursor
	if s := q.Get("after"); s != "" {
		var err error
		if after, err = parseCursor(s); err != nil {
			return pg, err
		}
	}
	parts, err := listParts(r.Context(), a.db, after, pg.limit+1)
	if err != nil {
		return pg, err
	}
	if len(parts) > pg.limit {
		parts = parts[:pg.limit]
		pg.next = encodeCursor(parts[len(parts)-1].cursor())
	}
	pg.parts = parts
	return pg, nil
}

// encodeCursor is the text form of c in an after parameter: opaque to
// clients, base64url of created_at and key.
func encodeCursor(c partCursor) string {
	return base64.RawURLEncoding.EncodeToString([]byte(c.created + " " + c.key))
}

// parseCursor parses an after parameter that encodeCursor wrote.
func parseCursor(s string) (partCursor, error) {
	bad := badRequest("after is not a cursor from a Link header of this API")
	if len(s) > 200 {
		return partCursor{}, bad
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return partCursor{}, bad
	}
	created, key, ok := strings.Cut(string(b), " ")
	if !ok || key == "" || !utf8.ValidString(key) || strings.ContainsFunc(key, unicode.IsSpace) ||
		strings.ContainsFunc(key, unicode.IsControl) {
		return partCursor{}, bad
	}
	if _, err := time.Parse(time.RFC3339Nano, created); err != nil {
		return partCursor{}, bad
	}
	return partCursor{created: created, key: key}, nil
}

func (a *App) getPart(w http.ResponseWriter, r *http.Request) {
	p, err := getPart(r.Context(), a.db, r.PathValue("key"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, a.partJSON(p))
}

func (a *App) createPart(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Description *string `json:"description"`
	}
	if err := a.decodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	if req.Description == nil {
		a.fail(w, r, badRequest("description is required"))
		return
	}
	p, err := a.newPart(r.Context(), *req.Description)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, a.partJSON(p))
}

func (a *App) newPart(ctx context.Context, description string) (part, error) {
	d, err := cleanText("description", description, maxDescription)
	if err != nil {
		return part{}, err
	}
	if d == "" {
		return part{}, badRequest("description must not be empty")
	}
	return insertPart(ctx, a.db, d, time.Now())
}

func (a *App) listAttachments(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	if _, err := getPart(r.Context(), a.db, key); err != nil {
		a.fail(w, r, err)
		return
	}
	atts, err := listAttachments(r.Context(), a.db, key)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	out := make([]attachmentJSON, len(atts))
	for i, at := range atts {
		out[i] = a.attachmentJSON(at)
	}
	writeJSON(w, http.StatusOK, out)
}

// createAttachment takes a multipart upload (fields file and title) or a
// JSON URL attachment {"title", "url"}.
func (a *App) createAttachment(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	if _, err := getPart(r.Context(), a.db, key); err != nil {
		a.fail(w, r, err)
		return
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var (
		at  attachment
		err error
	)
	switch mt {
	case "multipart/form-data":
		at, err = a.upload(w, r, key)
	case "application/json":
		at, err = a.urlAttachment(w, r, key)
	default:
		err = &apiError{http.StatusUnsupportedMediaType, "send multipart/form-data (file, title) or application/json (title, url)"}
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, a.attachmentJSON(at))
}

func (a *App) urlAttachment(w http.ResponseWriter, r *http.Request, partKey string) (attachment, error) {
	var req struct {
		Title string `json:"title"`
		URL   string `json:"url"`
	}
	if err := a.decodeJSON(w, r, &req); err != nil {
		return attachment{}, err
	}
	title, err := cleanText("title", req.Title, maxTitle)
	if err != nil {
		return attachment{}, err
	}
	u, err := url.Parse(req.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(req.URL) > maxURL {
		return attachment{}, badRequest("url must be an absolute http or https URL of at most 2000 bytes")
	}
	if title == "" {
		title = u.Host
	}
	at := attachment{PartKey: partKey, Title: title, URL: sql.NullString{String: u.String(), Valid: true}}
	return at, insertAttachment(r.Context(), a.db, &at)
}

// upload streams the multipart file part into the store, then inserts the
// row. The body is never held in memory; a failure before the insert can
// leave at most an orphan CAS object, which is harmless.
//
// A declared Content-Length over the limit is refused before the body is
// read, so a client that sent "Expect: 100-continue" gets 413, never
// "100 Continue".
func (a *App) upload(w http.ResponseWriter, r *http.Request, partKey string) (attachment, error) {
	limit := a.maxUpload + multipartSlack
	if r.ContentLength > limit {
		refuseBody(w, r)
		return attachment{}, errUploadTooLarge
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	mr, err := r.MultipartReader()
	if err != nil {
		return attachment{}, badRequest("bad multipart body: " + err.Error())
	}
	var (
		at      = attachment{PartKey: partKey}
		title   string
		gotFile bool
	)
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return attachment{}, bodyError(err)
		}
		switch p.FormName() {
		case "file":
			if gotFile {
				return attachment{}, badRequest("more than one file")
			}
			gotFile = true
			if err := a.storeFile(r.Context(), p, &at); err != nil {
				return attachment{}, err
			}
		case "title":
			b, err := io.ReadAll(io.LimitReader(p, maxTitle*4+1))
			if err != nil {
				return attachment{}, bodyError(err)
			}
			if title, err = cleanText("title", string(b), maxTitle); err != nil {
				return attachment{}, err
			}
		default:
			// Unknown fields are drained by NextPart.
		}
	}
	if !gotFile {
		return attachment{}, badRequest(`the form has no "file" field`)
	}
	if title == "" {
		title = at.Filename.String
	}
	at.Title = title
	return at, insertAttachment(r.Context(), a.db, &at)
}

// storeFile stores one file part and fills in the file columns of at.
func (a *App) storeFile(ctx context.Context, p *multipart.Part, at *attachment) error {
	name, err := cleanFilename(p.FileName())
	if err != nil {
		return err
	}
	// Peek at the first 512 bytes to sniff the type; the buffered reader
	// then streams them and the rest into the store.
	br := bufio.NewReaderSize(&clientReader{r: p}, 512)
	head, err := br.Peek(512)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return bodyError(err)
	}
	res, err := a.uploads.Put(ctx, br)
	if err != nil {
		return uploadError(err)
	}
	at.Filename = sql.NullString{String: name, Valid: true}
	at.ContentType = sql.NullString{String: contentType(p.Header.Get("Content-Type"), head), Valid: true}
	at.FileSize = sql.NullInt64{Int64: res.Size, Valid: true}
	at.StorageKey = sql.NullString{String: res.Hash.Key(), Valid: true}
	return nil
}

// contentType is the declared type of a file part when it is a specific
// media type that a casurl URL can carry, else the sniffed type of its
// first bytes.
func contentType(declared string, head []byte) string {
	if mt, params, err := mime.ParseMediaType(declared); err == nil && mt != "application/octet-stream" {
		if s := mime.FormatMediaType(mt, params); s != "" && validURLContentType(s) {
			return s
		}
	}
	return http.DetectContentType(head)
}

// validURLContentType reports whether casurl accepts ct in a URL.
func validURLContentType(ct string) bool {
	return casurl.CheckContentType(ct) == nil
}

// cleanFilename checks an uploaded file's name: the base name only (as
// multipart.Part.FileName gives it), and one that a download URL can carry
// (casurl.CheckFilename: no control or bidirectional formatting
// characters, at most casurl.MaxFilenameLength bytes). An empty name
// becomes "file".
func cleanFilename(name string) (string, error) {
	name, err := cleanText("filename", name, maxFilename)
	if err != nil {
		return "", err
	}
	if name == "" || name == "." || name == ".." {
		name = "file"
	}
	if err := casurl.CheckFilename(name); err != nil {
		return "", badRequest("filename: " + strings.TrimPrefix(err.Error(), casurl.ErrInvalidRequest.Error()+": filename: "))
	}
	return name, nil
}

func (a *App) setCover(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	var req struct {
		AttachmentID *int64 `json:"attachment_id"`
	}
	if err := a.decodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	ctx := r.Context()
	tx, err := a.db.BeginTx(ctx, nil)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if _, err := getPart(ctx, tx, key); err != nil {
		a.fail(w, r, err)
		return
	}
	var cover sql.NullInt64
	if req.AttachmentID != nil {
		at, err := getAttachment(ctx, tx, key, *req.AttachmentID)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if attachmentType(at) != "image" {
			a.fail(w, r, badRequest(fmt.Sprintf("attachment %d is not an image", at.ID)))
			return
		}
		cover = sql.NullInt64{Int64: at.ID, Valid: true}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE parts SET cover_attachment_id = ? WHERE "key" = ?`, cover, key); err != nil {
		a.serverError(w, r, err)
		return
	}
	p, err := getPart(ctx, tx, key)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	if err := tx.Commit(); err != nil {
		a.serverError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, a.partJSON(p))
}

// reuseBlob makes sure that the blob at's row points at stays for a new
// row that points at it too: it touches the blob through the collector's
// guard (Store.Touch), then checks that it is still stored. Between reading
// the source row and inserting the copy, the source may be deleted and a
// collection (-gc, on any replica) may take its blob; touched first, the
// blob is either kept for the grace period or found gone here, and the
// copy is refused instead of pointing at nothing. Rows without a blob
// (links, legacy keys, which Collect never deletes) need nothing.
func (a *App) reuseBlob(ctx context.Context, at attachment) error {
	if !at.StorageKey.Valid {
		return nil
	}
	h, err := cas.ParseKey(at.StorageKey.String)
	if err != nil {
		return nil
	}
	if err := a.store.Touch(ctx, h); err != nil {
		return err
	}
	ok, err := a.store.Has(ctx, h)
	switch {
	case err != nil:
		return err
	case !ok:
		return &apiError{http.StatusConflict, "the attachment's file is no longer stored"}
	}
	return nil
}

// copyAttachment copies an attachment row to another part. The copy points
// at the same CAS key: no bytes are read or written.
func (a *App) copyAttachment(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	id, err := attachmentID(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var req struct {
		TargetPartKey string `json:"target_part_key"`
	}
	if err := a.decodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	if req.TargetPartKey == "" {
		a.fail(w, r, badRequest("target_part_key is required"))
		return
	}
	ctx := r.Context()
	at, err := getAttachment(ctx, a.db, key, id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.reuseBlob(ctx, at); err != nil {
		a.fail(w, r, err)
		return
	}
	at.PartKey = req.TargetPartKey
	if err := insertAttachment(ctx, a.db, &at); err != nil {
		if errors.Is(err, errNotFound) {
			err = badRequest(fmt.Sprintf("target part %q does not exist", req.TargetPartKey))
		}
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, a.attachmentJSON(at))
}

// deleteAttachment deletes the row (and clears the cover that pointed at
// it). The file stays: other rows may share its CAS key.
func (a *App) deleteAttachment(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	id, err := attachmentID(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	res, err := a.db.ExecContext(r.Context(), `DELETE FROM attachments WHERE part_key = ? AND id = ?`, key, id)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	if n, err := res.RowsAffected(); err != nil {
		a.serverError(w, r, err)
		return
	} else if n == 0 {
		a.fail(w, r, fmt.Errorf("attachment %d of part %q: %w", id, key, errNotFound))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// gone answers a pre-CAS blob endpoint: its bytes are now behind the URL
// in the named field of the API's JSON.
func gone(field string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusGone, map[string]string{
			"error":       "this endpoint is gone: use the URL in the " + field + " field",
			"replaced_by": field,
		})
	}
}

// --- helpers ---

// apiError is an error with the status and message a client should see.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(msg string) error { return &apiError{http.StatusBadRequest, msg} }

// errUploadTooLarge answers an upload over the size limit.
var errUploadTooLarge error = &apiError{http.StatusRequestEntityTooLarge, "the upload is larger than the limit"}

// bodyError maps an error from reading the multipart body itself (the next
// part's header, a small field): apart from the size limit, a cut-off body
// and a cancelled request, it is the client's malformed body. That covers
// textproto's "malformed MIME header line" for a part header with a NUL.
func bodyError(err error) error {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return errUploadTooLarge
	case errors.Is(err, errBodyTimeout), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return badRequest("bad multipart body: " + err.Error())
}

// clientReader tags the errors of reading the client's body, so that
// uploadError can tell them from the store's: only the client's own
// malformed body is a 400 whose message quotes the error. A backend's error
// (which can name a bucket, an endpoint or a path, and may itself wrap
// io.ErrUnexpectedEOF) never reaches the client's message.
type clientReader struct{ r io.Reader }

func (c *clientReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err != nil && err != io.EOF {
		err = &clientBodyError{err}
	}
	return n, err
}

// clientBodyError is an error from reading the client's request body.
type clientBodyError struct{ err error }

func (e *clientBodyError) Error() string { return e.err.Error() }
func (e *clientBodyError) Unwrap() error { return e.err }

// uploadError maps an error from storing an upload: a failure to read the
// body (the client's, tagged by clientReader) or to store it (the
// backend's, answered by errorAnswer without its text).
func uploadError(err error) error {
	var cbe *clientBodyError
	switch {
	case errors.Is(err, cas.ErrTooLarge):
		return errUploadTooLarge
	case errors.As(err, &cbe):
		return bodyError(cbe.err)
	}
	return err
}

// retryAfter is the Retry-After, in seconds, of a 503 for a backend that
// did not answer in time.
const retryAfter = "10"

// errorAnswer decides how a failed request is answered: the status and the
// message the client sees. It logs what an operator needs to know and sets
// the headers the answer needs (Connection: close, Retry-After).
func (a *App) errorAnswer(w http.ResponseWriter, r *http.Request, err error) (int, string) {
	ctx := r.Context()
	var ae *apiError
	switch {
	case bodyTimedOut(r) || errors.Is(err, errBodyTimeout):
		// The connection's read deadline has passed: it cannot carry
		// another request.
		w.Header().Set("Connection", "close")
		a.log.InfoContext(ctx, "request body timed out", "method", r.Method, "path", r.URL.Path,
			"remote", r.RemoteAddr, "err", err)
		return http.StatusRequestTimeout, "the request body stopped arriving or took too long"
	case errors.As(err, &ae):
		return ae.status, ae.msg
	case errors.Is(err, errNotFound):
		return http.StatusNotFound, err.Error()
	case errors.Is(err, cas.ErrNoSpace):
		a.log.ErrorContext(ctx, "storage full", "method", r.Method, "path", r.URL.Path, "err", err)
		return http.StatusInsufficientStorage, "insufficient storage: the server has no room for this file; nothing was stored"
	case errors.Is(err, cas.ErrUnavailable), errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		// The backend's error names the backend and the operation.
		w.Header().Set("Retry-After", retryAfter)
		a.log.WarnContext(ctx, "storage backend did not answer in time", "method", r.Method, "path", r.URL.Path, "err", err)
		return http.StatusServiceUnavailable, "the storage backend did not answer in time; nothing was stored; try again later"
	}
	a.log.ErrorContext(ctx, "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	return http.StatusInternalServerError, "internal error"
}

// fail writes err as a JSON error with the status it calls for.
func (a *App) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := a.errorAnswer(w, r, err)
	writeError(w, status, msg)
}

// serverError logs err and writes a 500 that does not leak it.
func (a *App) serverError(w http.ResponseWriter, r *http.Request, err error) {
	a.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	writeError(w, http.StatusInternalServerError, "internal error")
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // URLs keep their "&"; the type is JSON with nosniff
	_ = enc.Encode(v)        // an error means the client went away
}

// decodeJSON decodes one JSON object from a small request body, which must
// arrive whole within the small-body timeout.
func (a *App) decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return &apiError{http.StatusUnsupportedMediaType, "send application/json"}
	}
	if r.ContentLength > maxJSONBody {
		refuseBody(w, r)
		return errJSONTooLarge // before reading: no "100 Continue"
	}
	wholeBodyWithin(r, a.smallBody)
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJSONBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errJSONTooLarge
		}
		if errors.Is(err, errBodyTimeout) {
			return err
		}
		return badRequest("bad JSON body: " + err.Error())
	}
	if dec.More() {
		return badRequest("bad JSON body: more than one value")
	}
	return nil
}

// errJSONTooLarge answers a JSON body over maxJSONBody.
var errJSONTooLarge error = &apiError{http.StatusRequestEntityTooLarge, "the JSON body is too large"}

func attachmentID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("attachment %q: %w", r.PathValue("id"), errNotFound)
	}
	return id, nil
}

// cleanText trims s and rejects invalid UTF-8, control characters and
// strings longer than max runes.
func cleanText(field, s string, max int) (string, error) {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) {
		return "", badRequest(field + " is not valid UTF-8")
	}
	if strings.ContainsFunc(s, unicode.IsControl) {
		return "", badRequest(field + " contains control characters")
	}
	if utf8.RuneCountInString(s) > max {
		return "", badRequest(fmt.Sprintf("%s is longer than %d characters", field, max))
	}
	return s, nil
}
