package authserver

// The tests hash many passwords; production parameters (64 MiB, 3 passes)
// would dominate their run time, especially under -race. Hash verification
// reads the parameters from the hash, so the code path is the same.
func init() {
	argonTime, argonMemory, argonThreads = 1, 8*1024, 1
}
