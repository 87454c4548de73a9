package classifier

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestIDFTable(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	present := map[uint32]float32{0: 1.5, 1<<31 - 1: 2.5} // the extremes of a masked token hash
	for len(present) < 5000 {
		present[rng.Uint32()&^placeBit] = rng.Float32() * 10
	}
	var keys []uint32
	var vals []float32
	for k, v := range present {
		keys, vals = append(keys, k), append(vals, v)
	}
	tab := newIDFTable(keys, vals)
	for k, v := range present {
		if got, ok := tab.get(k); !ok || got != v {
			t.Fatalf("key %d: got %v %v, want %v", k, got, ok, v)
		}
	}
	for i := 0; i < 100000; i++ {
		k := rng.Uint32() &^ placeBit
		if _, in := present[k]; in {
			continue
		}
		if got, ok := tab.get(k); ok {
			t.Fatalf("absent key %d found with %v", k, got)
		}
	}
	var empty idfTable
	if _, ok := empty.get(7); ok {
		t.Fatal("empty table found a key")
	}
}

func TestRowTable(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	keys := make([]uint64, 20000)
	for i := range keys {
		keys[i] = rng.Uint64()
	}
	tab := newRowTable(keys)
	for i, k := range keys {
		if r := tab.get(k); r != int32(i) {
			t.Fatalf("key %d: row %d, want %d", k, r, i)
		}
	}
	wrong := 0
	for i := 0; i < 100000; i++ {
		if tab.get(rng.Uint64()) >= 0 {
			wrong++
		}
	}
	if wrong > 5 { // 32-bit check keys: about one in 10^5 at this size
		t.Fatalf("%d false matches in 100000 absent keys", wrong)
	}
}

func TestSelectSmallest(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for trial := 0; trial < 2000; trial++ {
		n := 1 + rng.IntN(150)
		v := make([]uint64, n)
		for i := range v {
			v[i] = rng.Uint64N(uint64(1 + rng.IntN(200))) // with repeats
		}
		k := 1 + rng.IntN(n)
		sorted := slices.Clone(v)
		slices.Sort(sorted)
		selectSmallest(v, k)
		got := slices.Clone(v[:k])
		slices.Sort(got)
		if !slices.Equal(got, sorted[:k]) {
			t.Fatalf("n %d k %d: got %v, want %v", n, k, got, sorted[:k])
		}
	}
}
