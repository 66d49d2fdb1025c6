package cli

import (
	"fmt"
	"io"
	"strings"
)

// help runs `casa help [COMMAND]`.
func help(sys IO, args []string) int {
	switch len(args) {
	case 0:
		writeOverview(sys.Stdout)
		return ExitOK
	case 1:
		c, ok := lookup(args[0])
		if !ok {
			fmt.Fprintf(sys.Stderr, "casa help: unknown command %q (run 'casa help')\n", args[0])
			return ExitUsage
		}
		writeCommandHelp(sys.Stdout, c)
		return ExitOK
	}
	fmt.Fprintln(sys.Stderr, "casa help: want at most one COMMAND")
	return ExitUsage
}

// writeOverview writes `casa help`: the commands, the store, the
// environment and the exit codes.
func writeOverview(w io.Writer) {
	var b strings.Builder
	b.WriteString(`casa: inspect, verify, serve and migrate a casa content-addressed store.

Usage: casa COMMAND [flags] [arguments]    (flags may follow the arguments)

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-8s %s\n", c.name, c.short)
	}
	fmt.Fprintf(&b, "  %-8s %s\n", "help", "this text, or 'casa help COMMAND' for one command's flags")
	b.WriteString(`
The store is a local directory (-dir) or an S3 bucket (-s3-bucket, with
-s3-endpoint, -s3-region, -s3-path-style, -s3-prefix for S3-compatible
services), from flags or the environment. A -dir must be a store root: a
directory that does not exist yet or is empty, or one holding the .tmp
directory casa creates in every store, whose other top-level entries are
files and directories a store could hold (cas/ only its shard
directories). Any other directory is refused, so that cleanup can never
take another application's files (a database, a cache) for legacy objects.
Only put and migrate create a -dir that does not exist; the other commands
refuse it, so a mistyped path is an error rather than an empty store.
To adopt a directory of legacy uploads as a store, create DIR/.tmp.

Environment (a flag given on the command line wins):
`)
	b.WriteString(envDescriptions)
	b.WriteString(`
Every command takes -json: its result as JSON on standard output (ls: one
object per line). Errors are one line on standard error. Long work (verify,
migrate, gc) shows a progress bar when standard error is a terminal, and
plain progress lines otherwise.

Exit codes:
  0  success
  1  failure: storage, network or database error, rows that failed to migrate,
     objects gc could not delete
  2  usage: unknown command or flag, malformed hash, bad -db URL, -dir not a store root
  3  corruption: verify or get found bytes that do not hash to their name
  4  not found: a blob named on the command line is not stored
`)
	io.WriteString(w, b.String())
}

// writeCommandHelp writes `casa help COMMAND`.
func writeCommandHelp(w io.Writer, c command) {
	fs, _, _ := newFlagSet(c, IO{Getenv: func(string) string { return "" }})
	var b strings.Builder
	usage := "casa " + c.name + " [flags]"
	if c.args != "" {
		usage += " " + c.args
	}
	fmt.Fprintf(&b, "Usage: %s\n\n%s\n\nFlags:\n", usage, c.long)
	fs.SetOutput(&b)
	fs.PrintDefaults()
	io.WriteString(w, b.String())
}
