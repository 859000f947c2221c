package audittest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"phix/audit"
)

// Bench runs the audit benchmarks on a backend; open returns a backend on a
// fresh database each time.
//
//	AppendConcurrent: durable Appends from 64 producers (group commit); events/s.
//	AppendConcurrent256: the same from 256 producers (batches grow with load).
//	AppendOnePerTx:   the same with MaxBatch=1 (one transaction per event), the peer
//	                  that shows what group commit buys (ratio reported by AppendConcurrent).
//	CheckpointLag:    time from the last durable Append to a signed checkpoint covering it.
//	VerifyInclusion:  checking an inclusion proof in a 20k-event tree, with the
//	                  leaf hash (SHA-256 of the event) as the peer.
//	RecordCost:       the caller's cost of Record (async durable path of a FHIR read),
//	                  with json.Marshal of the same event as the peer.
func Bench(b *testing.B, open func(b *testing.B) audit.Backend) {
	var oneTxRate float64
	b.Run("AppendOnePerTx", func(b *testing.B) {
		oneTxRate = benchAppend(b, open(b), 1, 32)
	})
	b.Run("AppendConcurrent", func(b *testing.B) {
		rate := benchAppend(b, open(b), 0, 32)
		if oneTxRate > 0 {
			b.ReportMetric(rate/oneTxRate, "x-vs-one-tx")
		}
	})
	b.Run("AppendConcurrent256", func(b *testing.B) {
		rate := benchAppend(b, open(b), 0, 128)
		if oneTxRate > 0 {
			b.ReportMetric(rate/oneTxRate, "x-vs-one-tx")
		}
	})
	b.Run("CheckpointLag", func(b *testing.B) { benchLag(b, open(b)) })
	b.Run("VerifyInclusion", func(b *testing.B) { benchInclusion(b, open(b)) })
	b.Run("RecordCost", func(b *testing.B) { benchRecord(b, open(b)) })
}

func benchAppend(b *testing.B, be audit.Backend, maxBatch, parallelism int) float64 {
	p := Pseudonyms(b)
	l := OpenLog(b, be, func(o *audit.Options) { o.MaxBatch = maxBatch })
	defer l.Close()
	ev := SampleEvent(p, 1, audit.ActionRead)
	b.SetParallelism(parallelism) // producers = parallelism × GOMAXPROCS
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := l.Append(context.Background(), ev); err != nil {
				b.Error(err)
				return
			}
		}
	})
	rate := float64(b.N) / time.Since(start).Seconds()
	b.ReportMetric(rate, "events/s")
	return rate
}

func benchLag(b *testing.B, be audit.Backend) {
	p := Pseudonyms(b)
	l := OpenLog(b, be, func(o *audit.Options) { o.CheckpointInterval = audit.DefaultCheckpointInterval })
	defer l.Close()
	ctx := context.Background()
	ev := SampleEvent(p, 1, audit.ActionRead)
	var total time.Duration
	var worst time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var last int64
		for j := 0; j < 200; j++ {
			idx, err := l.Append(ctx, ev)
			if err != nil {
				b.Fatal(err)
			}
			last = idx
		}
		done := time.Now()
		for {
			cp, err := be.LatestCheckpoint(ctx)
			if err == nil && cp.Size > last {
				break
			}
			time.Sleep(time.Millisecond)
		}
		lag := time.Since(done)
		total += lag
		worst = max(worst, lag)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms-lag")
	b.ReportMetric(float64(worst.Milliseconds()), "ms-worst-lag")
}

func benchInclusion(b *testing.B, be audit.Backend) {
	p := Pseudonyms(b)
	l := OpenLog(b, be, nil)
	ctx := context.Background()
	ev := SampleEvent(p, 1, audit.ActionRead)
	for i := 0; i < 20_000; i++ {
		if err := l.Record(ev); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := l.Append(ctx, ev); err != nil {
		b.Fatal(err)
	}
	if _, err := l.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	pr, err := l.InclusionProof(ctx, 13_337, 0)
	if err != nil {
		b.Fatal(err)
	}
	_ = l.Close()
	body := []byte(pr.Event)
	peerNs := timePeer(func() { _ = tlog.RecordHash(body) })
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := audit.CheckInclusion(pr, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/peerNs, "x-leaf-hash")
}

func benchRecord(b *testing.B, be audit.Backend) {
	p := Pseudonyms(b)
	l := OpenLog(b, be, func(o *audit.Options) { o.QueueSize = 1 << 20 })
	ev := SampleEvent(p, 1, audit.ActionRead)
	marshalNs := timePeer(func() { _, _ = json.Marshal(&ev) })
	const drainEvery = 1 << 19 // keep the queue from filling: Record must not block here
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i > 0 && i%drainEvery == 0 {
			b.StopTimer()
			if _, err := l.Append(context.Background(), ev); err != nil { // waits for everything queued
				b.Fatal(err)
			}
			b.StartTimer()
		}
		if err := l.Record(ev); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/marshalNs, "x-json-marshal")
	_ = l.Close()
}

// timePeer measures the mean ns of f over 20k runs (testing.Benchmark cannot
// be nested in a running benchmark).
func timePeer(f func()) float64 {
	const n = 20000
	start := time.Now()
	for i := 0; i < n; i++ {
		f()
	}
	return float64(time.Since(start).Nanoseconds()) / n
}
