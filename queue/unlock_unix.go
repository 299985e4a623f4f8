//go:build unix

package queue

import (
	"os"
	"syscall"
)

// unlockFile releases the flock bbolt took on f. Closing f is not enough
// when bbolt panicked after mapping the file: the mapping it could not undo
// keeps the open file description, and with it the lock, alive.
func unlockFile(f *os.File) {
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}
