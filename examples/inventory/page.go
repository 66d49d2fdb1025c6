package main

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"
	"net/url"
)

//go:embed templates/index.html
var templateFS embed.FS

// parsePage parses the page template.
func parsePage() (*template.Template, error) {
	return template.ParseFS(templateFS, "templates/index.html")
}

// pagePart is a part on the page: the same URLs the JSON API returns.
type pagePart struct {
	partJSON
	Attachments []attachmentJSON
}

// renderPage renders GET /: a page of parts (as GET /api/parts pages them,
// with the same after and limit parameters), each with its cover
// thumbnail, its attachments with download links and thumbnails, and an
// upload form, and a link to the next page while more remain.
func (a *App) renderPage(w http.ResponseWriter, r *http.Request) {
	pg, err := a.partsPage(r)
	if err != nil {
		a.pageError(w, r, err)
		return
	}
	keys := make([]string, len(pg.parts))
	for i, p := range pg.parts {
		keys[i] = p.Key
	}
	atts, err := listAttachmentsOf(r.Context(), a.db, keys)
	if err != nil {
		a.pageError(w, r, err)
		return
	}
	data := struct {
		Parts     []pagePart
		Next      string // URL of the next page, or empty
		Migration string // a status line while files wait for the migration
	}{}
	if st, err := a.migrationState(r.Context()); err == nil {
		data.Migration = st.statusLine()
	} else {
		a.log.WarnContext(r.Context(), "migration status", "err", err)
	}
	if pg.next != "" {
		data.Next = pg.nextURL("/")
	}
	for _, p := range pg.parts {
		pp := pagePart{partJSON: a.partJSON(p)}
		for _, at := range atts[p.Key] {
			pp.Attachments = append(pp.Attachments, a.attachmentJSON(at))
		}
		data.Parts = append(data.Parts, pp)
	}
	// Render into a buffer so that a template error becomes a clean 500.
	var buf bytes.Buffer
	if err := a.page.Execute(&buf, data); err != nil {
		a.pageError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = buf.WriteTo(w)
}

// pageCreatePart handles the "Add part" form.
func (a *App) pageCreatePart(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > maxJSONBody {
		refuseBody(w, r)
		a.pageError(w, r, &apiError{http.StatusRequestEntityTooLarge, "the form is too large"})
		return
	}
	wholeBodyWithin(r, a.smallBody)
	r.Body = http.MaxBytesReader(w, r.Body, maxJSONBody)
	if err := r.ParseForm(); err != nil {
		a.pageError(w, r, badRequest("bad form: "+err.Error()))
		return
	}
	p, err := a.newPart(r.Context(), r.PostForm.Get("description"))
	if err != nil {
		a.pageError(w, r, err)
		return
	}
	http.Redirect(w, r, "/#part-"+url.PathEscape(p.Key), http.StatusSeeOther)
}

// pageUpload handles a part's upload form: the same streaming upload as
// the API, then back to the page.
func (a *App) pageUpload(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	if _, err := getPart(r.Context(), a.db, key); err != nil {
		a.pageError(w, r, err)
		return
	}
	if _, err := a.upload(w, r, key); err != nil {
		a.pageError(w, r, err)
		return
	}
	http.Redirect(w, r, "/#part-"+url.PathEscape(key), http.StatusSeeOther)
}

// pageError answers a page request with a plain-text error.
func (a *App) pageError(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := a.errorAnswer(w, r, err)
	http.Error(w, msg, status)
}
