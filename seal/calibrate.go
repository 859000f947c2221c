package seal

import (
	"sync"
	"time"

	"phix/suite"
)

// Whether pipelining pays depends on the AEAD's speed against moving a
// segment between cores: a worker must pull the sealed segment the caller
// just read out of the caller's cache. So once per suite and process, the
// default mode times a segment's open against copying it, with a throwaway
// all-zero key (never the file's key: sealing the probe under it would reuse
// a nonce), and pipelines when opening costs at least pipelineMinCost times
// the copy. On the 2-core test VM with a core to spare, AES-256-GCM with
// AES-NI costs ~11 in-cache copies and pipelining takes unseal from 0.85 to
// 1.3-1.4 of the bare AEAD; SM4-GCM costs ~70 copies and goes from 0.9 to 1.8.
// When every core is already busy the pipeline cannot gain and costs a little
// (AES: 0.83 -> 0.7 at load 12 on 2 cores); a node that unseals is rarely
// in that state, so the bar sits below AES-NI's cost. Only an AEAD within a
// few copies of memmove stays sequential.
const pipelineMinCost = 6

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
