package testutil

import (
	"fmt"
	"math/rand/v2"
)

// Text returns n deterministic bytes of text like an electronics
// inventory's attachments (Gerber and drill lines, BOM CSV rows, JSON
// records, datasheet prose), chosen by seed: the same (seed, n) always
// gives the same bytes, and different seeds give different texts. It
// compresses about as well as such files do (several times with zstd), so
// compression tests and benchmarks use it as their compressible corpus.
func Text(seed uint64, n int) []byte {
	r := rand.New(source(seed))
	b := make([]byte, 0, n+256)
	kind := r.IntN(4)
	for len(b) < n {
		switch kind {
		case 0: // Gerber
			b = fmt.Appendf(b, "X%06dY%06dD0%d*\n", r.IntN(300000), r.IntN(200000), 1+r.IntN(3))
			if r.IntN(40) == 0 {
				b = fmt.Appendf(b, "%%ADD%dC,0.%04d*%%\nD%d*\n", 10+r.IntN(40), r.IntN(10000), 10+r.IntN(40))
			}
		case 1: // BOM CSV
			ref := [...]string{"R", "C", "U", "D", "L", "Q", "J"}[r.IntN(7)]
			pkg := [...]string{"0402", "0603", "0805", "SOT-23", "SOIC-8", "QFN-32", "TSSOP-20"}[r.IntN(7)]
			mfr := [...]string{"Yageo", "Murata", "TI", "Vishay", "Samsung", "Nexperia", "STMicro"}[r.IntN(7)]
			b = fmt.Appendf(b, "%s%d,%d%s,%s,%s,%s-%05d,%d,\"in stock\"\n", ref, 1+r.IntN(400), 1+r.IntN(999),
				[...]string{"k", "n", "u", "M", ""}[r.IntN(5)], pkg, mfr, mfr[:2], r.IntN(100000), 1+r.IntN(10))
		case 2: // JSON
			b = fmt.Appendf(b, "{\"id\": %d, \"part\": \"P-%06d\", \"qty\": %d, \"location\": \"bin-%03d\", \"tags\": [\"smd\", \"rohs\"], \"price\": %d.%02d},\n",
				r.IntN(1000000), r.IntN(1000000), r.IntN(5000), r.IntN(500), r.IntN(100), r.IntN(100))
		default: // prose
			for range 8 + r.IntN(12) {
				b = append(b, words[r.IntN(len(words))]...)
				b = append(b, ' ')
			}
			b = append(b, ".\n"...)
		}
		if r.IntN(200) == 0 {
			kind = r.IntN(4)
		}
	}
	return b[:n]
}

var words = [...]string{
	"the", "supply", "voltage", "output", "current", "input", "maximum", "minimum", "typical", "temperature",
	"range", "package", "pin", "ground", "resistor", "capacitor", "device", "operating", "conditions", "shall",
	"not", "exceed", "rating", "absolute", "frequency", "clock", "register", "bit", "mode", "enable", "disable",
	"reset", "power", "low", "high", "level", "signal", "channel", "interface", "data", "sheet", "figure",
	"table", "note", "see", "section", "characteristics", "electrical", "thermal", "resistance", "junction",
}
