package main

import (
	"net/http"

	"github.com/casa-go/casa/cashttp"
)

// uploadPrefix is where the upload protocol (cashttp.NewUploadHandler)
// lives: a prefix of its own, apart from the serving prefix /api/cas, so
// that the serving route answers nothing about which blobs exist.
const uploadPrefix = "/api/uploads"

// mountUploads mounts the upload protocol on mux: PUT and HEAD
// /api/uploads/{hash}, POST /api/uploads/missing. cashttp leaves
// authorization to the application; these routes are protected the way
// the app's other writes are (Handler wraps the whole mux): cross-origin
// browser requests are refused (http.CrossOriginProtection, which also
// covers PUT and POST), every body must keep making progress (guardBodies),
// and a PUT is capped at the app's upload limit (the uploads Store's
// WithMaxSize, and WithMaxUploadSize). The app has no user accounts; a
// deployment that has them puts these routes behind the same
// authentication as POST /api/parts/{key}/attachments.
func (a *App) mountUploads(mux *http.ServeMux) {
	h := cashttp.NewUploadHandler(a.uploads,
		cashttp.WithMaxUploadSize(a.maxUpload),
		cashttp.WithUploadLogger(a.log))
	mux.Handle("PUT "+uploadPrefix+"/{hash}", h)
	mux.Handle("HEAD "+uploadPrefix+"/{hash}", h)
	mux.Handle("POST "+uploadPrefix+"/"+cashttp.MissingPath, h)
}
