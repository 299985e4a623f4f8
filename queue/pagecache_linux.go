package queue

import (
	"os"

	"golang.org/x/sys/unix"
)

// dropHeadCache drops the page cache of the first n bytes of the file at path
// (clean, unmapped pages only; nothing is lost). bbolt creates a file with one
// 16 KiB write of its first four pages (two meta pages, freelist, root); on
// kernels whose ext4 caches files in large folios, that write leaves one
// 16 KiB folio, and every later 4 KiB write of a meta page dirties — and
// writes back — the whole folio: 16 KiB to flash for each commit's 4 KiB meta
// page. Dropped, the pages come back one 4 KiB folio each (bbolt maps the file
// with MADV_RANDOM, so a fault reads one page, and a 4 KiB write makes a
// 4 KiB folio). The file must not be mapped (bbolt closed). Errors are
// ignored: it is an optimisation.
func dropHeadCache(path string, n int64) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	_ = f.Sync() // DONTNEED skips dirty pages
	_ = unix.Fadvise(int(f.Fd()), 0, n, unix.FADV_DONTNEED)
}
