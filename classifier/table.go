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

// idfTable maps 32-bit token hashes to their IDF: open addressing with linear probing, at most
// half full, the whole key and the value side by side, so a look-up is one cache line.
type idfTable struct {
	slots []idfSlot
	shift uint
}

// idfSlot keeps key+1, so that zero marks an empty slot.
type idfSlot struct {
	key uint32
	idf float32
}

func newIDFTable(keys []uint32, vals []float32) idfTable {
	size, shift := 2, uint(31)
	for size < 2*len(keys) {
		size *= 2
		shift--
	}
	t := idfTable{slots: make([]idfSlot, size), shift: shift}
	for i, k := range keys {
		j := (k * 2654435761) >> t.shift
		for t.slots[j].key != 0 && t.slots[j].key != k+1 {
			j = (j + 1) & uint32(size-1)
		}
		t.slots[j] = idfSlot{k + 1, vals[i]}
	}
	return t
}

// get returns the IDF of a token hash, if the table has it.
func (t *idfTable) get(k uint32) (float32, bool) {
	if len(t.slots) == 0 {
		return 0, false
	}
	mask := uint32(len(t.slots) - 1)
	for j := (k * 2654435761) >> t.shift; ; j = (j + 1) & mask {
		switch s := &t.slots[j]; s.key {
		case 0:
			return 0, false
		case k + 1:
			return s.idf, true
		}
	}
}
