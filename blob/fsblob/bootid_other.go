//go:build !linux

package fsblob

// bootID is unknown here (zero): every append is then fsynced before it is
// acknowledged, since a restart cannot be told from a process crash.
var bootID [16]byte
