package telemetry

import "sync"

// seriesCache keeps the series (a vector's child, or a few of them) of each label set after first use, so a hot
// path reads a map instead of hashing its labels into a vector again on every call (and formatting numbers as
// label values). Only for bounded label sets, and only for vectors nobody resets or deletes from.
type seriesCache[K comparable, V any] struct {
	newSeries func(K) V

	mu sync.RWMutex
	m  map[K]V
}

func newSeriesCache[K comparable, V any](newSeries func(K) V) *seriesCache[K, V] {
	return &seriesCache[K, V]{newSeries: newSeries, m: map[K]V{}}
}

func (c *seriesCache[K, V]) get(k K) V {
	c.mu.RLock()
	v, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return v
	}
	v = c.newSeries(k)
	c.mu.Lock()
	c.m[k] = v
	c.mu.Unlock()
	return v
}
