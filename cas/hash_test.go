package cas_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
)

// helloHex is the SHA-256 of "hello", computed independently of cas.
var helloHex = func() string {
	s := sha256.Sum256([]byte("hello"))
	return hex.EncodeToString(s[:])
}()

// hostileHashes are strings that are not the text form of a Hash.
var hostileHashes = []struct {
	name string
	in   string
}{
	{"empty", ""},
	{"uppercase", strings.ToUpper(helloHex)},
	{"one uppercase char", "A" + helloHex[1:]},
	{"63 chars", helloHex[:63]},
	{"65 chars", helloHex + "0"},
	{"128 chars", helloHex + helloHex},
	{"non-hex g", "g" + helloHex[1:]},
	{"non-hex z at end", helloHex[:63] + "z"},
	{"leading space", " " + helloHex[1:]},
	{"trailing space", helloHex[:63] + " "},
	{"trailing newline", helloHex[:63] + "\n"},
	{"appended newline", helloHex + "\n"},
	{"tab", helloHex[:32] + "\t" + helloHex[33:]},
	{"NUL", helloHex[:10] + "\x00" + helloHex[11:]},
	{"all NUL", strings.Repeat("\x00", 64)},
	{"slash", helloHex[:10] + "/" + helloHex[11:]},
	{"backslash", helloHex[:10] + "\\" + helloHex[11:]},
	{"dot dot", "../" + helloHex[3:]},
	{"cas prefix", "cas/" + helloHex[4:]},
	{"0x prefix", "0x" + helloHex[2:]},
	{"unicode fullwidth digit", "\uff10" + helloHex[3:]}, // 3 bytes, total 64 bytes
	{"unicode e acute", "\u00e9" + helloHex[2:]},         // 2 bytes, total 64 bytes
	{"invalid utf8", "\xff" + helloHex[1:]},
	{"sha256: prefix", "sha256:" + helloHex},
	{"base64ish", strings.Repeat("+", 64)},
	{"minus", "-" + helloHex[1:]},
}

func TestParseValid(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		helloHex,
		strings.Repeat("0", 64),
		strings.Repeat("f", 64),
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	} {
		h, err := cas.Parse(s)
		require.NoError(t, err, s)
		require.Equal(t, s, h.String())
		want, _ := hex.DecodeString(s)
		require.Equal(t, want, h[:])
	}
}

func TestParseHostile(t *testing.T) {
	t.Parallel()
	for _, tc := range hostileHashes {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, err := cas.Parse(tc.in)
			require.ErrorIs(t, err, cas.ErrInvalidHash)
			require.True(t, h.IsZero(), "a failed Parse returns the zero Hash")
		})
	}
}

func TestParseKey(t *testing.T) {
	t.Parallel()
	want := cas.SumBytes([]byte("hello"))
	h, err := cas.ParseKey("cas/" + helloHex)
	require.NoError(t, err)
	require.Equal(t, want, h)
	require.True(t, cas.IsKey("cas/"+helloHex))

	hostileKeys := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"prefix only", "cas/"},
		{"bare hex", helloHex},
		{"uuid", "6f1c3a1e-8b7d-4f0e-9a55-0c1d2e3f4a5b"},
		{"legacy path", "uploads/2024/report.pdf"},
		{"thumbnail", "thumbnails/" + helloHex + "_200.jpg"},
		{"upper prefix", "CAS/" + helloHex},
		{"no slash", "cas" + helloHex},
		{"double slash", "cas//" + helloHex},
		{"dot dot", "cas/../" + helloHex},
		{"dot dot inside", "cas/../" + helloHex[3:]},
		{"leading slash", "/cas/" + helloHex},
		{"trailing slash", "cas/" + helloHex + "/"},
		{"trailing newline", "cas/" + helloHex + "\n"},
		{"leading space", " cas/" + helloHex},
		{"uppercase hex", "cas/" + strings.ToUpper(helloHex)},
		{"63 chars", "cas/" + helloHex[:63]},
		{"65 chars", "cas/" + helloHex + "0"},
		{"NUL", "cas/" + helloHex[:63] + "\x00"},
		{"suffix", "cas/" + helloHex + ".jpg"},
		{"nested", "cas/ab/" + helloHex},
		{"unicode", "cas/\u00e9" + helloHex[2:]},
	}
	for _, tc := range hostileKeys {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, err := cas.ParseKey(tc.in)
			require.ErrorIs(t, err, cas.ErrInvalidHash)
			require.True(t, h.IsZero())
			require.False(t, cas.IsKey(tc.in))
		})
	}
	// Every hostile hash is also a hostile key.
	for _, tc := range hostileHashes {
		_, err := cas.ParseKey("cas/" + tc.in)
		require.ErrorIs(t, err, cas.ErrInvalidHash, tc.name)
		require.False(t, cas.IsKey("cas/"+tc.in), tc.name)
	}
}

func TestHashStringKeyRoundTrip(t *testing.T) {
	t.Parallel()
	for i := range 64 {
		h := cas.SumBytes(bytes.Repeat([]byte{byte(i)}, i))
		s := h.String()
		require.Len(t, s, 64)
		require.Equal(t, strings.ToLower(s), s)
		p, err := cas.Parse(s)
		require.NoError(t, err)
		require.Equal(t, h, p)

		k := h.Key()
		require.Equal(t, cas.KeyPrefix+s, k)
		require.True(t, cas.IsKey(k))
		pk, err := cas.ParseKey(k)
		require.NoError(t, err)
		require.Equal(t, h, pk)
	}
}

func TestSumBytesMatchesSum(t *testing.T) {
	t.Parallel()
	inputs := [][]byte{
		nil,
		[]byte("hello"),
		bytes.Repeat([]byte("casa"), 100_000),
	}
	for _, in := range inputs {
		want := sha256.Sum256(in)
		require.Equal(t, cas.Hash(want), cas.SumBytes(in))

		// OneByteReader makes Sum work across many short reads.
		h, n, err := cas.Sum(iotest.OneByteReader(bytes.NewReader(in)))
		require.NoError(t, err)
		require.Equal(t, int64(len(in)), n)
		require.Equal(t, cas.Hash(want), h)
	}
	require.Equal(t, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824", helloHex,
		"the well-known SHA-256 of \"hello\"")
	require.Equal(t, helloHex, cas.SumBytes([]byte("hello")).String())
}

func TestSumReaderError(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader("abc"), iotest.ErrReader(boom))
	h, n, err := cas.Sum(r)
	require.ErrorIs(t, err, boom)
	require.True(t, h.IsZero(), "no Hash of a partial read")
	require.Equal(t, int64(3), n)
}

func TestIsZero(t *testing.T) {
	t.Parallel()
	var zero cas.Hash
	require.True(t, zero.IsZero())
	require.False(t, cas.SumBytes(nil).IsZero(), "the hash of no bytes is not the zero Hash")
	var oneBit cas.Hash
	oneBit[31] = 1
	require.False(t, oneBit.IsZero())
}

func TestHashText(t *testing.T) {
	t.Parallel()
	h := cas.SumBytes([]byte("hello"))
	b, err := h.MarshalText()
	require.NoError(t, err)
	require.Equal(t, helloHex, string(b))

	var got cas.Hash
	require.NoError(t, got.UnmarshalText(b))
	require.Equal(t, h, got)

	for _, tc := range hostileHashes {
		orig := h
		err := orig.UnmarshalText([]byte(tc.in))
		require.ErrorIs(t, err, cas.ErrInvalidHash, tc.name)
		require.Equal(t, h, orig, "%s: a failed UnmarshalText leaves the Hash unchanged", tc.name)
	}
}

func TestHashJSON(t *testing.T) {
	t.Parallel()
	type doc struct {
		Name string   `json:"name"`
		Hash cas.Hash `json:"hash"`
		Map  map[cas.Hash]int
	}
	h := cas.SumBytes([]byte("hello"))
	in := doc{Name: "x", Hash: h, Map: map[cas.Hash]int{h: 1}}
	b, err := json.Marshal(in)
	require.NoError(t, err)
	require.Equal(t, `{"name":"x","hash":"`+helloHex+`","Map":{"`+helloHex+`":1}}`, string(b))

	var out doc
	require.NoError(t, json.Unmarshal(b, &out))
	require.Equal(t, in, out)

	for _, bad := range []string{
		`{"hash":"` + strings.ToUpper(helloHex) + `"}`,
		`{"hash":"` + helloHex[:63] + `"}`,
		`{"hash":"../etc/passwd"}`,
		`{"hash":""}`,
		`{"hash":"cas/` + helloHex + `"}`,
		`{"hash":"` + helloHex + `\n"}`,
	} {
		var d doc
		err := json.Unmarshal([]byte(bad), &d)
		require.ErrorIs(t, err, cas.ErrInvalidHash, bad)
	}
	// Non-string JSON is a type error, not a panic.
	var d doc
	require.Error(t, json.Unmarshal([]byte(`{"hash":12}`), &d))
	require.Error(t, json.Unmarshal([]byte(`{"hash":[1,2]}`), &d))
}

func FuzzParse(f *testing.F) {
	f.Add(helloHex)
	f.Add(strings.ToUpper(helloHex))
	f.Add("")
	f.Add(helloHex[:63])
	f.Add(helloHex + "0")
	f.Add("cas/" + helloHex)
	f.Add(helloHex[:63] + "\x00")
	f.Add("\uff10" + helloHex[3:])
	for _, tc := range hostileHashes {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := cas.Parse(s)
		if err != nil {
			if !errors.Is(err, cas.ErrInvalidHash) {
				t.Fatalf("Parse(%q): error %v does not wrap ErrInvalidHash", s, err)
			}
			if !h.IsZero() {
				t.Fatalf("Parse(%q) failed but returned non-zero %v", s, h)
			}
			return
		}
		if h.String() != s {
			t.Fatalf("Parse(%q).String() = %q", s, h.String())
		}
		var u cas.Hash
		if err := u.UnmarshalText([]byte(s)); err != nil || u != h {
			t.Fatalf("UnmarshalText(%q) = %v, %v; Parse gave %v", s, u, err, h)
		}
		if k, err := cas.ParseKey(h.Key()); err != nil || k != h {
			t.Fatalf("ParseKey(Key()) = %v, %v", k, err)
		}
	})
}

func FuzzParseKey(f *testing.F) {
	f.Add("cas/" + helloHex)
	f.Add(helloHex)
	f.Add("cas/")
	f.Add("cas/../" + helloHex)
	f.Add("cas/" + helloHex + "\n")
	f.Add("thumbnails/" + helloHex + "_200.jpg")
	f.Add("6f1c3a1e-8b7d-4f0e-9a55-0c1d2e3f4a5b")
	f.Fuzz(func(t *testing.T, key string) {
		h, err := cas.ParseKey(key)
		isKey := cas.IsKey(key)
		if err != nil {
			if !errors.Is(err, cas.ErrInvalidHash) {
				t.Fatalf("ParseKey(%q): error %v does not wrap ErrInvalidHash", key, err)
			}
			if isKey {
				t.Fatalf("IsKey(%q) is true but ParseKey failed: %v", key, err)
			}
			return
		}
		if !isKey {
			t.Fatalf("ParseKey(%q) succeeded but IsKey is false", key)
		}
		if h.Key() != key {
			t.Fatalf("ParseKey(%q).Key() = %q", key, h.Key())
		}
	})
}
