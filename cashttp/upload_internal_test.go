package cashttp

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/casa-go/casa/cas"
)

// FuzzParseBatch: the batch body parser never panics, and what it accepts
// is valid JSON of the one shape, at most max distinct hashes, that parses
// back to the same list once encoded again.
func FuzzParseBatch(f *testing.F) {
	h := cas.SumBytes([]byte("a")).String()
	for _, s := range []string{
		`{"hashes":[]}`,
		`{"hashes":["` + h + `"]}`,
		`{"hashes":["` + h + `","` + h + `"]}`,
		` { "hashes" : [ "` + h + `" ] } `,
		`{"hashes":["` + strings.ToUpper(h) + `"]}`,
		`{"hashes":[1,2]}`,
		`{"hashes":[],"hashes":[]}`,
		`{"hashes":[]}{}`,
		`["` + h + `"]`,
		`{"hashes":null}`,
		`{"hashes":["\u0000"]}`,
		`{"hashes":[` + strings.Repeat(`"`+h+`",`, 4) + `"` + h + `"]}`,
		``, `{`, `{"hashes":[`, `\xff`,
	} {
		f.Add([]byte(s))
	}
	const max = 4
	f.Fuzz(func(t *testing.T, body []byte) {
		hs, err := parseBatch(strings.NewReader(string(body)), max)
		if err != nil {
			if len(err.Error()) > 300 {
				t.Fatalf("reason of %d bytes: %.100q", len(err.Error()), err)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		if len(hs) > max {
			t.Fatalf("accepted %d hashes, max %d", len(hs), max)
		}
		if hasDup(hs) {
			t.Fatalf("repeats in %v", hs)
		}
		again, err := json.Marshal(struct {
			Hashes []cas.Hash `json:"hashes"`
		}{hs})
		if err != nil {
			t.Fatal(err)
		}
		back, err := parseBatch(strings.NewReader(string(again)), max)
		if err != nil || !slices.Equal(back, hs) {
			t.Fatalf("%q parsed to %v, re-encoded as %s: %v, %v", body, hs, again, back, err)
		}
	})
}

func hasDup(hs []cas.Hash) bool {
	seen := map[cas.Hash]bool{}
	for _, h := range hs {
		if seen[h] {
			return true
		}
		seen[h] = true
	}
	return false
}
