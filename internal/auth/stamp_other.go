//go:build !linux

package auth

import "io/fs"

// sysStamp is empty where the platform gives no inode or change time: the periodic hash check (HashCheckEvery)
// still sees every change.
type sysStamp struct{}

func sysStampOf(fs.FileInfo) sysStamp { return sysStamp{} }
