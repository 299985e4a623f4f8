package logging

import (
	"fmt"
	"syscall"
)

func devIno(sys any) string {
	st := sys.(*syscall.Stat_t)
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}
