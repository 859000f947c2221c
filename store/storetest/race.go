//go:build race

package storetest

// raceEnabled shrinks the load tests under the race detector, which makes
// them several times slower.
const raceEnabled = true
