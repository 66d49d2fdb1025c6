package main

import (
	"bytes"
	"embed"
	"errors"
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

// page renders GET /: every part with its cover thumbnail, its attachments
// with download links and thumbnails, and an upload form.
func (a *App) renderPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	parts, err := listParts(ctx, a.db)
	if err != nil {
		a.pageError(w, r, err)
		return
	}
	data := struct{ Parts []pagePart }{}
	for _, p := range parts {
		atts, err := listAttachments(ctx, a.db, p.Key)
		if err != nil {
			a.pageError(w, r, err)
			return
		}
		pp := pagePart{partJSON: a.partJSON(p)}
		for _, at := range atts {
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
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		http.Error(w, ae.msg, ae.status)
	case errors.Is(err, errNotFound):
		http.Error(w, err.Error(), http.StatusNotFound)
	default:
		a.log.ErrorContext(r.Context(), "page request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
	}
}
