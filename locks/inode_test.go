package locks

import (
	"fmt"
	"os"
	"syscall"
)

func inodeOfInfo(fi os.FileInfo) string {
	if fi == nil {
		return "?"
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}
