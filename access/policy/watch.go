package policy

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Watch reloads the policy directory on SIGHUP and whenever its files
// change (polled every interval; default 2 s), until ctx ends. A reload
// that fails is logged (file and line of the parse error only) and the
// running set stays in force.
func (e *Engine) Watch(ctx context.Context, interval time.Duration, log *slog.Logger) {
	if interval <= 0 {
		interval = 2 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	t := time.NewTicker(interval)
	defer t.Stop()
	reload := func(why string) {
		if err := e.Reload(); err != nil {
			log.Error("policy reload failed; previous policy set stays", "trigger", why, "err", err)
			// Remember the broken state so the same files are not retried
			// every tick (a SIGHUP retries).
			if s, ferr := fingerprint(e.dir); ferr == nil {
				e.mu.Lock()
				e.stamp = s
				e.mu.Unlock()
			}
			return
		}
		log.Info("policy reloaded", "trigger", why, "policies", len(e.PolicyIDs()))
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			reload("SIGHUP")
		case <-t.C:
			if e.Changed() {
				reload("file change")
			}
		}
	}
}
