package pipeline

import (
	"sync"
)

// resultCache keeps the latest result JSON of the most recent ids, at most size of them; the
// oldest id is forgotten first. It is safe for concurrent use.
type resultCache struct {
	mu   sync.Mutex
	size int
	m    map[string][]byte
	ring []string // ids in insertion order, used circularly
	next int
}

func newResultCache(size int) *resultCache {
	return &resultCache{size: size, m: make(map[string][]byte, min(size, 1<<16))}
}

// put records the latest result JSON of id.
func (c *resultCache) put(id string, result []byte) {
	if c.size <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[id]; ok {
		c.m[id] = result
		return
	}
	if len(c.ring) < c.size {
		c.ring = append(c.ring, id)
	} else {
		delete(c.m, c.ring[c.next])
		c.ring[c.next] = id
		c.next = (c.next + 1) % c.size
	}
	c.m[id] = result
}

// get returns the latest result JSON of id, or nil.
func (c *resultCache) get(id string) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[id]
}

func (c *resultCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
