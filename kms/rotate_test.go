package kms_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"phix/kms"
)

// crashStore counts the re-wraps that reach storage and simulates a process
// that dies before saving its progress: once armed, PutRotation fails.
type crashStore struct {
	kms.Store
	armed    bool
	rewrites map[string]int
}

func (f *crashStore) PutRotation(ctx context.Context, r kms.Rotation) error {
	if f.armed {
		return errors.New("simulated crash")
	}
	return f.Store.PutRotation(ctx, r)
}

func (f *crashStore) RewrapDataKey(ctx context.Context, k kms.DataKey, from int) error {
	err := f.Store.RewrapDataKey(ctx, k, from)
	if err == nil {
		f.rewrites[k.ID]++
	}
	return err
}

func TestRotationResumesAfterCrash(t *testing.T) {
	const n = 120
	ctx := context.Background()
	e := newEnv(t)
	if _, err := e.m.InitHospital(ctx, "h", "intl"); err != nil {
		t.Fatal(err)
	}
	keys := map[string][]byte{}
	for i := range n {
		name := fmt.Sprintf("p%04d", i)
		k, err := e.m.NewDataKey(ctx, "h", kms.KindPatient, name)
		if err != nil {
			t.Fatal(err)
		}
		keys[name] = k
	}
	counter := &countingBackend{wraps: map[string]int{}, Backend: e.be}
	cs := &crashStore{Store: e.st, rewrites: map[string]int{}}
	m1, err := kms.Open(ctx, kms.Config{Store: cs, Backend: counter})
	if err != nil {
		t.Fatal(err)
	}
	r, err := m1.Rotate(ctx, "h/data")
	if err != nil || r.ToVersion != 2 || r.Total != n || r.Finished {
		t.Fatalf("Rotate = %+v, %v", r, err)
	}
	_, err = m1.Rotate(ctx, "h/data")
	wantCode(t, err, kms.CodeRotationRunning)

	// Run 1: cancelled after the second saved batch.
	run, cancel := context.WithCancel(ctx)
	var seen []kms.Rotation
	r, err = m1.ResumeRotation(run, "h/data", kms.RotateOptions{BatchSize: 20, Progress: func(r kms.Rotation) {
		seen = append(seen, r)
		if r.Done >= 40 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) || r.Finished {
		t.Fatalf("first run: %+v, %v", r, err)
	}
	saved, _ := e.st.Rotation(ctx, "h/data")
	if saved.Done != 40 || saved.Finished || len(seen) != 2 || seen[0].Done != 20 {
		t.Fatalf("saved progress %+v, seen %+v", saved, seen)
	}

	// Run 2: a crash mid-batch: 15 more keys re-wrapped, progress never saved.
	m2, err := kms.Open(ctx, kms.Config{Store: cs, Backend: counter})
	if err != nil {
		t.Fatal(err)
	}
	run2, cancel2 := context.WithCancel(ctx)
	counter.onWrap = func(total int) {
		if total == 40+15 {
			cs.armed = true
			cancel2()
		}
	}
	if _, err := m2.ResumeRotation(run2, "h/data", kms.RotateOptions{BatchSize: 20}); err == nil {
		t.Fatal("crashed run reported success")
	}
	counter.onWrap = nil
	cs.armed = false
	if saved, _ := e.st.Rotation(ctx, "h/data"); saved.Done != 40 {
		t.Fatalf("progress after crash = %d, want the stale 40", saved.Done)
	}

	// Run 3: a fresh process (new store, backend, manager) resumes to completion.
	e.open(t, nil)
	counter.Backend = e.be
	cs.Store = e.st
	m3, err := kms.Open(ctx, kms.Config{Store: cs, Backend: counter})
	if err != nil {
		t.Fatal(err)
	}
	r, err = m3.ResumeRotation(ctx, "h/data", kms.RotateOptions{BatchSize: 20})
	if err != nil || !r.Finished || r.Done != n || r.Total != n {
		t.Fatalf("final = %+v, %v", r, err)
	}

	// Every data key was re-wrapped exactly once (in storage), and unwraps to
	// itself. The wrap in flight at the crash was never stored, so at most
	// one extra wrap was computed.
	if len(cs.rewrites) != n {
		t.Fatalf("%d keys re-wrapped, want %d", len(cs.rewrites), n)
	}
	for id, c := range cs.rewrites {
		if c != 1 {
			t.Fatalf("%s re-wrapped %d times", id, c)
		}
	}
	if counter.total > n+1 {
		t.Fatalf("%d wraps computed for %d keys", counter.total, n)
	}
	left, _ := e.st.CountDataKeysBelow(ctx, "h/data", 2)
	if left != 0 {
		t.Fatalf("%d keys still under version 1", left)
	}
	for name, want := range keys {
		got, err := e.m.DataKey(ctx, "h", kms.KindPatient, name)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s after rotation: %v", name, err)
		}
	}
	if r, err := e.m.ResumeRotation(ctx, "h/data", kms.RotateOptions{}); err != nil || !r.Finished {
		t.Fatalf("resuming a finished job: %+v, %v", r, err)
	}
	if _, err := e.m.Rotate(ctx, "h/data"); err != nil {
		t.Fatalf("next rotation: %v", err)
	}
}

func TestMinDecryptionVersion(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	if _, err := e.m.InitHospital(ctx, "h", "intl"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.NewDataKey(ctx, "h", kms.KindFile, "f1"); err != nil {
		t.Fatal(err)
	}
	fk := bytes.Repeat([]byte{7}, 32)
	old, err := e.m.WrapKey(ctx, "h", "ext-1", fk)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Rotate(ctx, "h/data"); err != nil {
		t.Fatal(err)
	}
	// Old versions still unwrap after a rotation.
	if got, err := e.m.UnwrapKey(ctx, old, "ext-1"); err != nil || !bytes.Equal(got, fk) {
		t.Fatalf("old blob after rotate: %v", err)
	}
	rewrapped, err := e.m.RewrapKey(ctx, old, "ext-1")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := kms.ParseBlob(rewrapped); b.KEKVersion != 2 {
		t.Fatalf("rewrapped to version %d", b.KEKVersion)
	}
	// Stored keys still under version 1: retiring it is refused.
	wantCode(t, e.m.SetMinDecryptionVersion(ctx, "h/data", 2, false), kms.CodeConflict)
	if _, err := e.m.ResumeRotation(ctx, "h/data", kms.RotateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := e.m.SetMinDecryptionVersion(ctx, "h/data", 2, false); err != nil {
		t.Fatal(err)
	}
	_, err = e.m.UnwrapKey(ctx, old, "ext-1")
	wantCode(t, err, kms.CodeRetiredVersion)
	if got, err := e.m.UnwrapKey(ctx, rewrapped, "ext-1"); err != nil || !bytes.Equal(got, fk) {
		t.Fatalf("rewrapped blob: %v", err)
	}
	wantCode(t, e.m.SetMinDecryptionVersion(ctx, "h/data", 3, false), kms.CodeBadInput)

	// Retirement applies to derived keys too.
	if _, err := e.m.Rotate(ctx, "h/hmac"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.DeriveHMACKeyAt(ctx, "h", 1, "p", "Patient", "p"); err != nil {
		t.Fatal(err)
	}
	if err := e.m.SetMinDecryptionVersion(ctx, "h/hmac", 2, false); err != nil {
		t.Fatal(err)
	}
	_, err = e.m.DeriveHMACKeyAt(ctx, "h", 1, "p", "Patient", "p")
	wantCode(t, err, kms.CodeRetiredVersion)
}

func TestRotationJobInBackground(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	if _, err := e.m.InitHospital(ctx, "h", "intl"); err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		if _, err := e.m.NewDataKey(ctx, "h", kms.KindFile, fmt.Sprintf("f%02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.m.Rotate(ctx, "h/data"); err != nil {
		t.Fatal(err)
	}
	// A job cancelled after its first batch leaves saved progress...
	var j *kms.RotationJob
	started := make(chan struct{})
	j = e.m.StartRotationJob(ctx, "h/data", kms.RotateOptions{BatchSize: 10, Progress: func(r kms.Rotation) {
		<-started
		j.Cancel()
	}})
	close(started)
	r, err := j.Wait()
	if !errors.Is(err, context.Canceled) || r.Done != 10 || r.Total != 30 || r.Finished {
		t.Fatalf("cancelled job: %+v, %v", r, err)
	}
	// ...which a restarted node picks up by itself.
	e.open(t, nil)
	done, err := e.m.ResumeUnfinished(ctx, kms.RotateOptions{})
	if err != nil || len(done) != 1 || done[0] != "h/data" {
		t.Fatalf("ResumeUnfinished = %v, %v", done, err)
	}
	if r, _ := e.st.Rotation(ctx, "h/data"); !r.Finished || r.Done != 30 {
		t.Fatalf("after resume: %+v", r)
	}
	j2 := e.m.StartRotationJob(ctx, "h/data", kms.RotateOptions{})
	if r, err := j2.Wait(); err != nil || !r.Finished {
		t.Fatalf("job on a finished rotation: %+v, %v", r, err)
	}
	if done, err := e.m.ResumeUnfinished(ctx, kms.RotateOptions{}); err != nil || len(done) != 0 {
		t.Fatalf("nothing left to resume: %v, %v", done, err)
	}
}
