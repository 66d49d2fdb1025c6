// Package routers mounts a cashttp.Handler on chi, gin and echo exactly as
// casa's README shows, so that the README's snippets are compiled and
// tested. It is a module of its own (github.com/casa-go/casa/routers), so
// that casa's go.mod requires no router.
//
// chi, gin and echo do not answer HEAD with a GET route: each needs HEAD
// registered too (without it gin answers HEAD with 404, echo and chi with
// 405).
package routers
