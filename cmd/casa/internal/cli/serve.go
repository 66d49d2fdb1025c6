package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/casa-go/casa/cashttp"
	"github.com/casa-go/casa/casurl"
	"github.com/casa-go/casa/thumbnail"
)

func serveCommand() command {
	return command{
		name:  "serve",
		args:  "",
		short: "serve the blobs over HTTP (cashttp), with thumbnails",
		long: `Serve answers GET and HEAD for /api/cas/HASH?content_type=... and
/api/cas/HASH?thumbnail=N (see casurl), with ETags, ranges and immutable
caching, until it is interrupted (SIGINT, SIGTERM: requests in flight get
10 seconds). Thumbnails are generated on demand and cached in the store
under thumbnails/ (derived data, never legacy). With -sign-key every URL
must carry a valid casurl signature. The listening address is printed on
standard error ("casa serve: serving http://ADDR/api/cas/").`,
		setup: func(fs *flag.FlagSet, e *env) func(context.Context, []string) error {
			e.addStoreFlags(fs)
			addr := fs.String("addr", "127.0.0.1:8080", "listen `address` (port 0: any free port)")
			prefix := fs.String("prefix", casurl.DefaultPrefix, "URL path `prefix` the blobs are served under")
			signKey := fs.String("sign-key", "", "HMAC `key`: serve signed URLs only; env "+EnvSignKey)
			thumbs := fs.Bool("thumbnails", true, "serve ?thumbnail=N (cached in the store under thumbnails/)")
			e.bindEnv("sign-key", EnvSignKey)
			return func(ctx context.Context, args []string) error {
				if len(args) != 0 {
					return usagef("serve takes no arguments, got %q", args)
				}
				p := "/" + strings.Trim(*prefix, "/")
				if p == "/" || strings.ContainsAny(p, "{}") {
					return usagef("-prefix %q: want a path such as /api/cas", *prefix)
				}
				store, err := e.openStore(ctx)
				if err != nil {
					return err
				}
				log := slog.New(slog.NewTextHandler(e.Stderr, nil))
				opts := []cashttp.Option{cashttp.WithLogger(log)}
				if *signKey != "" {
					opts = append(opts, cashttp.WithSigner(casurl.NewSigner([]byte(*signKey))))
				}
				if *thumbs {
					svc := thumbnail.NewService(store,
						thumbnail.WithCache(thumbnail.NewBackendCache(store.Backend())),
						thumbnail.WithLogger(log))
					opts = append(opts, cashttp.WithThumbnails(svc))
				}
				mux := http.NewServeMux()
				mux.Handle(p+"/{hash}", cashttp.NewHandler(store, opts...))
				ln, err := net.Listen("tcp", *addr)
				if err != nil {
					return err
				}
				e.notef("serving http://%s%s/", ln.Addr(), p)
				return serveHTTP(ctx, ln, mux, log)
			}
		},
	}
}

// serveHTTP serves h on ln until ctx is cancelled, then shuts down,
// giving requests in flight ten seconds.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
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
