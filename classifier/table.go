package classifier

// rowTable maps feature hashes to model rows: open addressing with linear probing, at most half
// full, key and row side by side in 8 bytes so a probe touches one cache line and the table stays
// small enough for the cache. It is several times faster
// than a Go map on the triage hot path and read-only once built.
type rowTable struct {
	slots []slot
	shift uint
}

// slot keeps the upper half of a feature hash: a false match needs a feature outside the
// vocabulary to share 32 bits of hash with one inside it and land in its probe run, about one
// look-up in 100,000 for our vocabulary size — noise far below the model's own.
type slot struct {
	key uint32
	row int32
}

func newRowTable(keys []uint64) rowTable {
	size, shift := 2, uint(63)
	for size < 2*len(keys) {
		size *= 2
		shift--
	}
	t := rowTable{slots: make([]slot, size), shift: shift}
	for i := range t.slots {
		t.slots[i].row = -1
	}
	for i, k := range keys {
		j := (k * 0x9E3779B97F4A7C15) >> t.shift
		for t.slots[j].row >= 0 {
			j = (j + 1) & uint64(size-1)
		}
		t.slots[j] = slot{uint32(k >> 32), int32(i)}
	}
	return t
}

// get returns the row of a feature hash, or -1.
func (t *rowTable) get(k uint64) int32 {
	if len(t.slots) == 0 {
		return -1
	}
	mask := uint64(len(t.slots) - 1)
	key := uint32(k >> 32)
	for j := (k * 0x9E3779B97F4A7C15) >> t.shift; ; j = (j + 1) & mask {
		s := &t.slots[j]
		if s.row < 0 || s.key == key {
			return s.row
		}
	}
}
