// Command casa is the operator's tool for a casa content-addressed store:
// put, get, stat, list and verify blobs, serve them over HTTP with
// thumbnails, and migrate an application's table from legacy keys to CAS
// keys (with dry runs, reverts and cleanup), on a local directory or an S3
// bucket.
//
//	go install github.com/casa-go/casa/cmd/casa@latest
//	casa help
//
// The commands live in cmd/casa/internal/cli; `casa help COMMAND` describes
// each, the environment variables and the exit codes.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"

	"github.com/casa-go/casa/cmd/casa/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.IO{
		Stdin:          os.Stdin,
		Stdout:         os.Stdout,
		Stderr:         os.Stderr,
		Getenv:         os.Getenv,
		StderrTerminal: term.IsTerminal(int(os.Stderr.Fd())),
	})
	stop()
	os.Exit(code)
}
