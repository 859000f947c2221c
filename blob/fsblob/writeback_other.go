//go:build !linux

package fsblob

import "os"

// startWriteback is a no-op where sync_file_range does not exist; the fsync
// at the end of the append does all the work.
func startWriteback(*os.File, int64, int64) {}

// bootID is unknown here (zero): every append is then fsynced before it is
// acknowledged, since a restart cannot be told from a process crash.
var bootID [16]byte
