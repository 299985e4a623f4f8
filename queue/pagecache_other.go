//go:build !linux

package queue

// dropHeadCache: see pagecache_linux.go; other systems are left alone.
func dropHeadCache(string, int64) {}
