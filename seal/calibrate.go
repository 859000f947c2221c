package seal

import (
	"sync"
	"time"

	"phix/suite"
)

// Whether pipelining pays depends on the AEAD's speed against moving a
// segment between cores: a worker must pull the sealed segment the caller
// just read out of the caller's cache. On the 2-core test VM, SM4-GCM
// (~0.7 GB/s) gains from it and AES-256-GCM with AES-NI (~3-4 GB/s, a few
// times memmove) loses (see docs/formats/sealed-file.md). So once per suite
// and process, the default mode times a segment's open against copying it,
// with a throwaway all-zero key (never the file's key: sealing the probe
// under it would reuse a nonce), and pipelines when opening costs at least
// pipelineMinCost times the copy. Measured there: AES-256-GCM 11x an
// in-cache copy (pipelining: 0.9 -> 0.7 of the bare AEAD), SM4-GCM 70x
// (0.9 -> 1.8); software AES without AES-NI would be far above the bar.
const pipelineMinCost = 24

var pipelinePaysCache sync.Map // suite.ID -> bool

func pipelinePays(s suite.Suite) bool {
	if v, ok := pipelinePaysCache.Load(s.ID()); ok {
		return v.(bool)
	}
	pays := measurePipelinePays(s)
	pipelinePaysCache.Store(s.ID(), pays)
	return pays
}

func measurePipelinePays(s suite.Suite) bool {
	a, err := s.NewAEAD(make([]byte, s.AEADKeySize()))
	if err != nil {
		return false
	}
	var nb [nonceSize]byte
	pt := make([]byte, DefaultSegmentSize)
	ct := a.Seal(nil, nb[:], pt, nil)
	src := make([]byte, len(ct))
	// The fastest of a few runs each, so a burst of load elsewhere does
	// not decide.
	best := func(f func()) time.Duration {
		d := time.Duration(1<<63 - 1)
		for range 5 {
			t := time.Now()
			f()
			d = min(d, time.Since(t))
		}
		return d
	}
	tCopy := best(func() { copy(src, ct) })
	tOpen := best(func() { a.Open(pt[:0], nb[:], ct, nil) })
	return tOpen >= pipelineMinCost*tCopy
}
