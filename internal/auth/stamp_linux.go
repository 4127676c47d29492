package auth

import (
	"io/fs"
	"syscall"
)

// sysStamp is the inode and change time of a file: an atomic rename changes the inode, and any write or chmod,
// even one that restores the modification time afterwards (cp -p, rsync -t), changes the change time.
type sysStamp struct {
	ino       uint64
	ctimeSec  int64
	ctimeNsec int64
}

func sysStampOf(fi fs.FileInfo) sysStamp {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return sysStamp{}
	}
	return sysStamp{ino: uint64(st.Ino), ctimeSec: int64(st.Ctim.Sec), ctimeNsec: int64(st.Ctim.Nsec)} //nolint:unconvert // narrower on 32-bit platforms
}
