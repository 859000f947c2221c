//go:build race

package search_test

// raceEnabled: the race detector slows the corpus tests tenfold; they
// sample the corpus under it.
const raceEnabled = true
