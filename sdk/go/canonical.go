// Package one is the ONE network's Go SDK: a small client for the OpenAI-compatible API of any ONE coordinator
// (chat, streamed chat, completions, embeddings, images) and the checks that make its replies worth having: every
// receipt's RFC 8785 hash, the coordinator's and the worker's Ed25519 signatures, the chain links, the request
// digest against the exact JSON sent (with the reply's request_salt), the output digest against what was received,
// and RFC 9162 inclusion proofs against a signed epoch head. Standard library only.
package one

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
)

// Decode parses JSON text the way the checks read it: objects as map[string]any, arrays as []any, numbers as
// json.Number (kept exact until they are serialised), strings, booleans and nil.
func Decode(text []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(text))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("unexpected data after the JSON value")
	}
	return v, nil
}

// Canonical returns the RFC 8785 (JCS) form of a JSON value: object keys sorted by their UTF-16 code units, no
// whitespace, numbers as IEEE doubles written the way ECMAScript's Number.prototype.toString writes them, strings
// with only the escapes JCS allows. It takes what Decode returns; any other Go value is first encoded with
// encoding/json.
func Canonical(v any) ([]byte, error) {
	var b bytes.Buffer
	if err := writeCanonical(&b, v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// CanonicalizeJSON is Canonical over JSON text.
func CanonicalizeJSON(text []byte) ([]byte, error) {
	v, err := Decode(text)
	if err != nil {
		return nil, err
	}
	return Canonical(v)
}

func writeCanonical(b *bytes.Buffer, v any) error {
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		if x {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case string:
		writeString(b, x)
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return fmt.Errorf("number %s is not an IEEE double: %w", x, err)
		}
		return writeNumber(b, f)
	case float64:
		return writeNumber(b, x)
	case float32:
		return writeNumber(b, float64(x))
	case int:
		return writeNumber(b, float64(x))
	case int64:
		return writeNumber(b, float64(x))
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sortKeys(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writeString(b, k)
			b.WriteByte(':')
			if err := writeCanonical(b, x[k]); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	case []any:
		b.WriteByte('[')
		for i, item := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeCanonical(b, item); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case json.RawMessage:
		d, err := Decode(x)
		if err != nil {
			return err
		}
		return writeCanonical(b, d)
	default:
		text, err := json.Marshal(v)
		if err != nil {
			return err
		}
		d, err := Decode(text)
		if err != nil {
			return err
		}
		return writeCanonical(b, d)
	}
	return nil
}

// sortKeys orders object keys by UTF-16 code units (RFC 8785 section 3.2.3), which differs from byte order for
// characters above U+FFFF against those from U+E000 to U+FFFF.
func sortKeys(keys []string) {
	ascii := true
	for _, k := range keys {
		for i := 0; i < len(k); i++ {
			if k[i] >= 0x80 {
				ascii = false
				break
			}
		}
	}
	if ascii {
		sort.Strings(keys)
		return
	}
	units := make(map[string][]uint16, len(keys))
	for _, k := range keys {
		units[k] = utf16.Encode([]rune(k))
	}
	sort.Slice(keys, func(i, j int) bool {
		a, c := units[keys[i]], units[keys[j]]
		for n := 0; n < len(a) && n < len(c); n++ {
			if a[n] != c[n] {
				return a[n] < c[n]
			}
		}
		return len(a) < len(c)
	})
}

const hexDigits = "0123456789abcdef"

func writeString(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if c < 0x20 {
				b.WriteString(`\u00`)
				b.WriteByte(hexDigits[c>>4])
				b.WriteByte(hexDigits[c&0xf])
			} else {
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('"')
}

// FormatNumber writes a double as ECMAScript's Number.prototype.toString does (RFC 8785 section 3.2.2.3): the
// shortest digits that round-trip, plain notation from 1e-6 up to 1e21, exponent notation (1e+21, 1e-7) outside.
func FormatNumber(f float64) (string, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "", fmt.Errorf("%v has no JSON form", f)
	}
	if f == 0 {
		return "0", nil // -0 too
	}
	if abs := math.Abs(f); abs < 1e-6 || abs >= 1e21 {
		s := strconv.FormatFloat(f, 'e', -1, 64) // Go writes e-07 and e+21; ECMAScript e-7 and e+21
		mantissa, exp, _ := strings.Cut(s, "e")
		digits := strings.TrimLeft(exp[1:], "0")
		return mantissa + "e" + exp[:1] + digits, nil
	}
	return strconv.FormatFloat(f, 'f', -1, 64), nil
}

func writeNumber(b *bytes.Buffer, f float64) error {
	s, err := FormatNumber(f)
	if err != nil {
		return err
	}
	b.WriteString(s)
	return nil
}
