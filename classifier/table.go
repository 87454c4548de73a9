package classifier

// rowTable maps feature hashes to model rows: open addressing with linear probing, at most half
// full. It is several times faster than a Go map on the triage hot path and read-only once built.
type rowTable struct {
	keys  []uint64
	rows  []int32
	shift uint
}

func newRowTable(keys []uint64) rowTable {
	size, shift := 2, uint(63)
	for size < 2*len(keys) {
		size *= 2
		shift--
	}
	t := rowTable{keys: make([]uint64, size), rows: make([]int32, size), shift: shift}
	for i := range t.rows {
		t.rows[i] = -1
	}
	for i, k := range keys {
		j := (k * 0x9E3779B97F4A7C15) >> t.shift
		for t.rows[j] >= 0 {
			j = (j + 1) & uint64(size-1)
		}
		t.keys[j], t.rows[j] = k, int32(i)
	}
	return t
}

// get returns the row of a feature hash, or -1.
func (t *rowTable) get(k uint64) int32 {
	if len(t.keys) == 0 {
		return -1
	}
	mask := uint64(len(t.keys) - 1)
	j := (k * 0x9E3779B97F4A7C15) >> t.shift
	for {
		r := t.rows[j]
		if r < 0 || t.keys[j] == k {
			return r
		}
		j = (j + 1) & mask
	}
}
