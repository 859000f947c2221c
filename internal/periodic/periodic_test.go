package periodic

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestGet: a value is read again only once older than the interval, after
// Invalidate, or when the clock went back; a failed read is returned, not
// hidden behind the old value; a caller whose context ends while another
// read runs gives up.
func TestGet(t *testing.T) {
	reads := 0
	fail := false
	p := New(func(ctx context.Context, now time.Time) (int, error) {
		if fail {
			return 0, errors.New("store down")
		}
		reads++
		return reads, nil
	})
	ctx := context.Background()
	t0 := time.Unix(1000, 0)
	every := 2 * time.Second
	steps := []struct {
		name  string
		at    time.Time
		inv   bool
		fail  bool
		want  int
		isErr bool
	}{
		{"first read", t0, false, false, 1, false},
		{"fresh", t0.Add(time.Second), false, false, 1, false},
		{"stale", t0.Add(every), false, false, 2, false},
		{"invalidated", t0.Add(every + time.Millisecond), true, false, 3, false},
		{"clock back", t0, false, false, 4, false},
		{"stale and store down", t0.Add(10 * every), false, true, 0, true},
		{"store back", t0.Add(10 * every), false, false, 5, false},
	}
	for _, s := range steps {
		if s.inv {
			p.Invalidate()
		}
		fail = s.fail
		got, err := p.Get(ctx, s.at, every)
		if (err != nil) != s.isErr || got != s.want {
			t.Fatalf("%s: Get = %d, %v; want %d (error %v)", s.name, got, err, s.want, s.isErr)
		}
	}
	p.reload <- struct{}{} // a read in progress elsewhere
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := p.Get(cctx, t0.Add(100*every), every); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get while another read runs, context ended: %v", err)
	}
	<-p.reload
}
