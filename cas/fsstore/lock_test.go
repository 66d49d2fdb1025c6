//go:build linux

package fsstore_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas/fsstore"
)

const stageHelperEnv = "FSSTORE_STAGE_HELPER_DIR"

// TestStageHelperProcess is not a test: it is the writer process of
// TestCrashedWriterSwept (the test binary run again). It stages a write in
// the directory named by the environment, says so, and waits, never
// committing, until its stdin closes or it is killed.
func TestStageHelperProcess(t *testing.T) {
	dir := os.Getenv(stageHelperEnv)
	if dir == "" {
		return
	}
	b, err := fsstore.New(dir)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	st, err := b.Stage(t.Context())
	if err == nil {
		_, err = st.Write(bytes.Repeat([]byte("x"), 1<<20))
	}
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("staged")
	_, _ = io.Copy(io.Discard, os.Stdin)
	os.Exit(0) // dies without committing or aborting
}

// writer is a live writer process with a staged write in a directory.
type writer struct {
	cmd   *exec.Cmd
	stdin io.Closer
	temp  string // its temporary file
}

func startWriter(t *testing.T, dir string) *writer {
	t.Helper()
	before := temps(t, dir)
	cmd := exec.Command(os.Args[0], "-test.run=^TestStageHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), stageHelperEnv+"="+dir)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "staged\n", line)
	var added []string
	for _, name := range temps(t, dir) {
		if !slices.Contains(before, name) {
			added = append(added, name)
		}
	}
	require.Len(t, added, 1, "the writer's temporary file")
	return &writer{cmd: cmd, stdin: stdin, temp: filepath.Join(dir, ".tmp", added[0])}
}

// kill ends the writer as a crash would: SIGKILL, no clean-up.
func (w *writer) kill(t *testing.T) {
	t.Helper()
	require.NoError(t, w.cmd.Process.Kill())
	_ = w.cmd.Wait()
}

func temps(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(filepath.Join(dir, ".tmp"))
	require.NoError(t, err)
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func setAge(t *testing.T, path string, age time.Duration) {
	t.Helper()
	mt := time.Now().Add(-age)
	require.NoError(t, os.Chtimes(path, mt, mt))
}

// TestCrashedWriterSwept is the crash-loop defect: temporary files of
// writes interrupted by a crash stayed until they were 24 hours old. With
// real writer processes sharing the directory: a live writer's file
// survives New however old it is, and a killed writer's file is removed by
// the next New however fresh it is.
func TestCrashedWriterSwept(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, err := fsstore.New(dir)
	require.NoError(t, err)
	a := startWriter(t, dir)
	b := startWriter(t, dir)

	// Both alive, their files two days old: New keeps them.
	setAge(t, a.temp, 48*time.Hour)
	setAge(t, b.temp, 48*time.Hour)
	_, err = fsstore.New(dir)
	require.NoError(t, err)
	require.FileExists(t, a.temp, "a live writer's file survives New, however old")
	require.FileExists(t, b.temp, "a live writer's file survives New, however old")

	// a crashes; its file is a second old.
	a.kill(t)
	setAge(t, a.temp, time.Second)
	setAge(t, b.temp, time.Second)
	_, err = fsstore.New(dir)
	require.NoError(t, err)
	require.NoFileExists(t, a.temp, "a killed writer's file is removed at once")
	require.FileExists(t, b.temp, "the live writer's file stays")

	// b exits without cleaning up: the next New removes its file too.
	require.NoError(t, b.stdin.Close())
	require.NoError(t, b.cmd.Wait())
	_, err = fsstore.New(dir)
	require.NoError(t, err)
	require.Empty(t, temps(t, dir))
}
