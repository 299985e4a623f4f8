//go:build !unix

package queue

import "os"

// allocated: the apparent size where st_blocks is not available.
func allocated(fi os.FileInfo) int64 { return fi.Size() }
