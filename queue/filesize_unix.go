//go:build unix

package queue

import (
	"os"
	"syscall"
)

// allocated returns the disk space a file uses (st_blocks), which for bbolt's
// sparse file is less than its apparent size.
func allocated(fi os.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int64(st.Blocks) * 512
	}
	return fi.Size()
}
