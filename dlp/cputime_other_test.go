//go:build !unix

package dlp

func cpuSeconds() float64 { return 0 }
