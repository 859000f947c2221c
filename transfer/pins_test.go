package transfer_test

import (
	"context"
	"errors"
	"testing"

	"phix/pki"
	"phix/transfer"
)

// flakyStore fails Hospital reads while down is set.
type flakyStore struct {
	transfer.Store
	down bool
}

func (f *flakyStore) Hospital(ctx context.Context, id string) (transfer.Hospital, error) {
	if f.down {
		return transfer.Hospital{}, context.DeadlineExceeded
	}
	return f.Store.Hospital(ctx, id)
}

// TestPinStoreStaleIfError: remembered pins bridge a failed read; a
// suspension is never served from memory; without a remembered entry the
// failure is reported.
func TestPinStoreStaleIfError(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	fs := &flakyStore{Store: e.store}
	ps := transfer.NewPinStore(fs)
	a, b := pki.Hospital(e.a.ID), pki.Hospital(e.b.ID)
	if pins, err := ps.Pins(ctx, a); err != nil || len(pins) != 1 || pins[0] != e.a.H.Pins[0] {
		t.Fatalf("pins: %v %v", pins, err)
	}
	fs.down = true
	if pins, err := ps.Pins(ctx, a); err != nil || len(pins) != 1 {
		t.Fatalf("stale pins while the store fails: %v %v", pins, err)
	}
	if _, err := ps.Pins(ctx, b); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("never-read hospital while the store fails: %v", err)
	}
	fs.down = false
	if err := (transfer.Registry{Store: e.store}).Suspend(ctx, e.a.ID); err != nil {
		t.Fatal(err)
	}
	if pins, err := ps.Pins(ctx, a); err != nil || len(pins) != 0 {
		t.Fatalf("suspended hospital: %v %v", pins, err)
	}
	fs.down = true
	if pins, err := ps.Pins(ctx, a); err == nil || len(pins) != 0 {
		t.Fatalf("suspension forgotten while the store fails: %v %v", pins, err)
	}
	// The zero PinStore remembers nothing.
	if _, err := (transfer.PinStore{Store: fs}).Pins(ctx, b); err == nil {
		t.Fatal("zero PinStore hid a failure")
	}
}
