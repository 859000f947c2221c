//go:build !linux

package writeback

import "os"

// Where sync_file_range and fadvise do not exist these are no-ops: the
// final fsync does all the work and the page cache keeps what it likes.
func start(*os.File, int64, int64)       {}
func waitAndDrop(*os.File, int64, int64) {}
func drop(*os.File, int64, int64)        {}
func sequential(*os.File, int64, int64)  {}
