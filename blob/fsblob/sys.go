package fsblob

import "syscall"

const syscallENOTDIR = syscall.ENOTDIR
