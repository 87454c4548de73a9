package classifier

import (
	"math/rand/v2"
	"testing"
	"unicode/utf8"
)

// TestDecodeRune checks the inline decoder against the standard library on every three-byte
// lead and continuation pattern and on random bytes.
func TestDecodeRune(t *testing.T) {
	check := func(s string) {
		for i := 0; i < len(s); i++ {
			r, n := decodeRune(s, i)
			wr, wn := utf8.DecodeRuneInString(s[i:])
			if r != wr || n != wn {
				t.Fatalf("% x at %d: got %U/%d, want %U/%d", s, i, r, n, wr, wn)
			}
		}
	}
	for b0 := 0xE0; b0 <= 0xEF; b0++ {
		for b1 := 0x70; b1 <= 0xC5; b1++ {
			for _, b2 := range []byte{0x00, 0x7F, 0x80, 0xA5, 0xBF, 0xC0} {
				check(string([]byte{byte(b0), byte(b1), b2}))
				check(string([]byte{byte(b0), byte(b1)}))
			}
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for k := 0; k < 20000; k++ {
		b := make([]byte, rng.IntN(12))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		check(string(b))
	}
	check("测试，Traditional 繁體 and ascii ✓ 𠀀")
}
