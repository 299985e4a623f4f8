//go:build !unix

package queue

import "os"

// unlockFile: closing the file releases bbolt's lock on these systems.
func unlockFile(*os.File) {}
