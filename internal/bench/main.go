// Command bench measures casa's performance figures, each beside its limit or
// peer measured in the same run, and prints a Markdown report (BENCHMARKS.md
// in the repository is its committed output).
//
//	go run ./internal/bench            # full run, a few minutes
//	go run ./internal/bench -quick     # about a minute
//	go run ./internal/bench -o BENCHMARKS.md
//
// Every figure is produced by the code path a user's call takes: cas.Store.Put
// into real backends (the S3 one is the real aws-sdk-go-v2 client against a
// gofakes3 server over loopback HTTP), cashttp.Handler behind a real
// net/http server, thumbnail.Service, migrate.Run, and the example app.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"runtime"
	"strings"
	"time"
)

// config is what the sections share.
type config struct {
	quick  bool
	minDur time.Duration // how long one throughput measurement runs at least
	tmp    string        // scratch directory, removed at the end
	log    *log.Logger
}

// row is one line of the report.
type row struct {
	Section string
	Name    string
	Figure  string
	Peer    string  // the limit or peer it is measured beside
	Ratio   float64 // figure / peer, in the direction the target reads; 0: none
	Target  string  // "" when the row only informs
	Pass    bool
}

func (r row) verdict() string {
	if r.Target == "" {
		return "info"
	}
	if r.Pass {
		return "pass"
	}
	return "FAIL"
}

type section struct {
	title string
	run   func(cfg *config) ([]row, error)
	note  string // printed under the title: how to read the rows; "" for none
}

func main() {
	quick := flag.Bool("quick", false, "a run of about a minute: shorter measurements, smaller data sets")
	out := flag.String("o", "", "write the report to this file as well as to standard output")
	only := flag.String("only", "", "run only sections whose title contains this text")
	flag.Parse()

	tmp, err := os.MkdirTemp("", "casa-bench-*")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	cfg := &config{quick: *quick, minDur: 2 * time.Second, tmp: tmp, log: log.New(os.Stderr, "bench: ", log.Ltime)}
	if cfg.quick {
		cfg.minDur = 400 * time.Millisecond
	}

	sections := []section{
		{"1. Store.Put throughput", putSection, putNote},
		{"2. Memory of a 1 GiB Put", heapSection, ""},
		{"3. Serving through cashttp", serveSection, ""},
		{"4. Thumbnails", thumbSection, ""},
		{"5. Migration", migrateSection, ""},
		{"6. Load on the example app", loadSection, ""},
		{"7. Online migration", onlineSection, ""},
		{"8. Memory of Cleanup and Collect", gcMemSection, ""},
		{"9. Compression", compressSection, compressNote},
		{"10. Upload protocol and redirects", uploadSection, ""},
		{"11. Listing blobs on S3", listSection, ""},
		{"12. Put's dedup check on fsstore", dedupSection, ""},
	}
	start := time.Now()
	var rows []row
	notes := map[string]string{}
	failed := false
	for _, s := range sections {
		if *only != "" && !strings.Contains(s.title, *only) {
			continue
		}
		cfg.log.Printf("%s ...", s.title)
		t0 := time.Now()
		rs, err := s.run(cfg)
		if err != nil {
			cfg.log.Printf("%s: %v", s.title, err)
			rs = append(rs, row{Section: s.title, Name: "section failed", Figure: err.Error(), Target: "runs", Pass: false})
		}
		for i := range rs {
			rs[i].Section = s.title
			if rs[i].Target != "" && !rs[i].Pass {
				failed = true
			}
		}
		rows = append(rows, rs...)
		notes[s.title] = s.note
		cfg.log.Printf("%s done in %s", s.title, time.Since(t0).Round(time.Second))
	}

	var w io.Writer = os.Stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		w = io.MultiWriter(os.Stdout, f)
	}
	report(w, cfg, rows, notes, time.Since(start))
	if failed {
		// os.Exit runs no deferred calls: remove the scratch directory here.
		os.RemoveAll(tmp)
		os.Exit(1)
	}
}

// report writes the Markdown report: a table per section, under the
// section's note (notes, by title) when it has one.
func report(w io.Writer, cfg *config, rows []row, notes map[string]string, took time.Duration) {
	mode := "full"
	if cfg.quick {
		mode = "quick (-quick)"
	}
	fmt.Fprintf(w, "# casa benchmarks\n\n")
	fmt.Fprintf(w, "- CPU: %s\n- Cores: %d (GOMAXPROCS %d)\n- Go: %s %s/%s\n- Run: %s, %s, %s\n\n",
		cpuModel(), runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH,
		mode, time.Now().UTC().Format("2006-01-02"), took.Round(time.Second))
	fmt.Fprintf(w, "Produced by `go run ./internal/bench` (one process; every figure beside its limit or peer measured in the same run; data generated from fixed seeds).\n")
	last := ""
	for _, r := range rows {
		if r.Section != last {
			fmt.Fprintf(w, "\n## %s\n\n", r.Section)
			if n := notes[r.Section]; n != "" {
				fmt.Fprintf(w, "%s\n\n", n)
			}
			fmt.Fprint(w, "| measurement | figure | limit or peer | ratio | target | result |\n|---|---|---|---|---|---|\n")
			last = r.Section
		}
		ratio := ""
		if r.Ratio != 0 {
			ratio = fmt.Sprintf("%.2f", r.Ratio)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", r.Name, r.Figure, r.Peer, ratio, r.Target, r.verdict())
	}
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}
