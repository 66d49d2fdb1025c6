// Package cli is the casa command: its command table, flags, store and
// database set-up, output and exit codes. cmd/casa's main only wires the
// process (arguments, standard streams, environment, signals) to Main, so
// everything here can be tested in-process as well as through the built
// binary.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/casa-go/casa/cas"
)

// Exit codes of the casa command, as `casa help` documents them.
const (
	// ExitOK: the command did what was asked.
	ExitOK = 0
	// ExitFailure: the command failed (storage, database or network
	// error, a migration with failed records, ...).
	ExitFailure = 1
	// ExitUsage: the command line was wrong: unknown command or flag, a
	// malformed hash, a bad database URL, a -dir that is no store root.
	ExitUsage = 2
	// ExitCorrupt: verify (or get) found stored bytes that no longer hash
	// to their name.
	ExitCorrupt = 3
	// ExitNotFound: a blob named on the command line is not in the store.
	ExitNotFound = 4
)

// IO is what Main needs from the process.
type IO struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Getenv reads the environment (os.Getenv); nil reads nothing.
	Getenv func(string) string
	// StderrTerminal says that Stderr is a terminal: long work then shows
	// progress bars instead of plain progress lines.
	StderrTerminal bool
}

// command is one entry of the command table.
type command struct {
	name  string // as typed: "put"
	args  string // the positional arguments, for the usage line: "FILE..."
	short string // one line for `casa help`
	long  string // the description `casa help NAME` prints above the flags
	// setup registers the command's flags on fs (the shared ones through
	// e) and returns the function that runs it with the positional
	// arguments once fs is parsed.
	setup func(fs *flag.FlagSet, e *env) func(ctx context.Context, args []string) error
}

// commands is the command table, in the order `casa help` lists it. A
// command is one file that defines its constructor, plus its line here.
func commands() []command {
	return []command{
		putCommand(),
		getCommand(),
		statCommand(),
		lsCommand(),
		verifyCommand(),
		serveCommand(),
		migrateCommand(),
		cleanupCommand(),
		gcCommand(),
	}
}

func lookup(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// Main runs the casa command line args (without the program name) and
// returns the process's exit code. Errors are written to io.Stderr as one
// line, "casa: ..." or "casa COMMAND: ..."; a panic is reported the same
// way, without a stack trace.
func Main(ctx context.Context, args []string, sys IO) (code int) {
	if sys.Getenv == nil {
		sys.Getenv = func(string) string { return "" }
	}
	if sys.Stdin == nil {
		sys.Stdin = strings.NewReader("")
	}
	name := "casa"
	defer func() {
		if p := recover(); p != nil {
			fmt.Fprintf(sys.Stderr, "%s: internal error: %s\n", name, oneLine(fmt.Sprint(p)))
			code = ExitFailure
		}
	}()
	if len(args) == 0 {
		writeOverview(sys.Stderr)
		return ExitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		return help(sys, args[1:])
	}
	c, ok := lookup(args[0])
	if !ok {
		fmt.Fprintf(sys.Stderr, "casa: unknown command %q (run 'casa help')\n", args[0])
		return ExitUsage
	}
	name = "casa " + c.name
	err := runCommand(ctx, c, args[1:], sys)
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	if err != nil {
		fmt.Fprintf(sys.Stderr, "%s: %s\n", name, oneLine(err.Error()))
	}
	return exitCode(err)
}

// runCommand parses c's flags from args (flags may follow positional
// arguments; "--" ends them) and runs it.
func runCommand(ctx context.Context, c command, args []string, sys IO) error {
	fs, e, run := newFlagSet(c, sys)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			writeCommandHelp(sys.Stdout, c)
			return err
		}
		return usageError{err}
	}
	if err := e.finish(fs); err != nil {
		return err
	}
	return run(ctx, pos)
}

// newFlagSet builds c's flag set, quiet: Main reports parse errors itself.
func newFlagSet(c command, sys IO) (*flag.FlagSet, *env, func(context.Context, []string) error) {
	fs := flag.NewFlagSet("casa "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	e := &env{IO: sys, name: c.name}
	fs.BoolVar(&e.json, "json", false, "write the result as JSON on standard output")
	run := c.setup(fs, e)
	return fs, e, run
}

// parseInterspersed parses fs from args, allowing flags after positional
// arguments (casa get HASH -o FILE); everything after "--" is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// usageError marks an error in the command line: exit code 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// errCorrupt and errNotFound carry exit codes 3 and 4 through wrapped
// errors.
var (
	errCorrupt  = errors.New("corruption found")
	errNotFound = errors.New("not found")
)

// exitCode maps an error returned by a command to the exit code.
func exitCode(err error) int {
	var u usageError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &u):
		return ExitUsage
	case errors.Is(err, errCorrupt), errors.Is(err, cas.ErrDigestMismatch):
		return ExitCorrupt
	case errors.Is(err, errNotFound):
		return ExitNotFound
	}
	return ExitFailure
}

// oneLine folds an error message onto one line: some library errors
// (database drivers, the AWS SDK) span several.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " | ")), " ")
}

// parseHash parses a blob name from the command line: 64 lowercase hex
// digits, or the blob's key cas/<hex>.
func parseHash(s string) (cas.Hash, error) {
	h, err := cas.Parse(s)
	if err == nil {
		return h, nil
	}
	if h, err := cas.ParseKey(s); err == nil {
		return h, nil
	}
	return cas.Hash{}, usagef("malformed hash %q: want 64 lowercase hex digits (or cas/<hex>)", truncate(s, 80))
}

// truncate shortens s for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
