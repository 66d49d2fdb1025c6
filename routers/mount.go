package routers

import (
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/go-chi/chi/v5"
	"github.com/labstack/echo/v4"

	"github.com/casa-go/casa/cashttp"
)

// Each function below holds, between its README markers, a snippet that
// README.md shows verbatim (TestREADMEShowsTheseSnippets checks it).

// Chi mounts h on a chi router at /api/cas/{hash}, for GET and HEAD.
func Chi(h *cashttp.Handler) http.Handler {
	// README chi
	r := chi.NewRouter()
	r.Get("/api/cas/{hash}", h.ServeHTTP)
	r.Head("/api/cas/{hash}", h.ServeHTTP) // chi answers HEAD with 405 unless it is registered
	// END
	return r
}

// Gin mounts h on a gin engine at /api/cas/:hash and at /files/:hash/:name
// (the hash then comes from c.Param, through ServeHash), for GET and HEAD.
func Gin(h *cashttp.Handler) http.Handler {
	// README gin
	r := gin.New()
	r.GET("/api/cas/:hash", gin.WrapH(h))
	r.HEAD("/api/cas/:hash", gin.WrapH(h)) // gin answers HEAD with 404 unless it is registered
	// The hash is not the last segment here: pass it in with ServeHash.
	byName := func(c *gin.Context) { h.ServeHash(c.Writer, c.Request, c.Param("hash")) }
	r.GET("/files/:hash/:name", byName)
	r.HEAD("/files/:hash/:name", byName)
	// END
	return r
}

// Echo mounts h on an echo server at /api/cas/:hash, for GET and HEAD.
func Echo(h *cashttp.Handler) http.Handler {
	// README echo
	e := echo.New()
	e.GET("/api/cas/:hash", echo.WrapHandler(h))
	e.HEAD("/api/cas/:hash", echo.WrapHandler(h)) // echo answers HEAD with 405 unless it is registered
	// END
	return e
}
