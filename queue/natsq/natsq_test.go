package natsq

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"strings"
	"testing"
	"time"

	"phix/internal/testenv"
	"phix/queue"
	"phix/queue/queuetest"
)

type env struct {
	cfg   Config
	proxy *queuetest.Proxy
}

func (e *env) Open(t *testing.T) queue.Queue {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q, err := Open(ctx, e.cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

type partitionEnv struct{ *env }

func (e partitionEnv) Cut()     { e.proxy.Cut() }
func (e partitionEnv) Restore() { e.proxy.Restore() }

// LooseDeliveryCount: the machine's server is Debian's nats-server 2.9
// (queuetest.LooseCounter); the embedded one (2.15) counts exactly.
func (e partitionEnv) LooseDeliveryCount() bool { return true }

func opts(c Config, o queuetest.Options) Config {
	c.AckWait, c.MaxDeliveries, c.Backoff = o.AckWait, o.MaxDeliveries, o.Backoff
	return c
}

func TestEmbedded(t *testing.T) {
	queuetest.Run(t, func(t *testing.T, o queuetest.Options) queuetest.Env {
		return &env{cfg: opts(Config{StoreDir: t.TempDir()}, o)}
	})
}

func uniqueNames(testing.TB) Config {
	var b [6]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	return Config{
		Stream:           "PHIXTEST_" + strings.ToUpper(id),
		SubjectPrefix:    "phixtest." + id + ".deliveries",
		DeadLetterPrefix: "phixtest." + id + ".deadletter",
	}
}

// externalEnv connects through a loopback proxy to the machine's NATS, with
// streams unique to the test, deleted afterwards.
func externalEnv(t *testing.T, o queuetest.Options) *env {
	raw := testenv.NATSURL(t)
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	p := queuetest.NewProxy(t, u.Host)
	cfg := opts(uniqueNames(t), o)
	cfg.URL = "nats://" + p.Addr()
	t.Cleanup(func() {
		admin := cfg
		admin.URL = raw
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if q, err := Open(ctx, admin); err == nil {
			if err := q.Destroy(ctx); err != nil {
				t.Errorf("delete test streams: %v", err)
			}
		}
	})
	return &env{cfg: cfg, proxy: p}
}

func TestExternal(t *testing.T) {
	testenv.NATSURL(t)
	queuetest.Run(t, func(t *testing.T, o queuetest.Options) queuetest.Env {
		return partitionEnv{externalEnv(t, o)}
	})
}

func TestEmbeddedListen(t *testing.T) {
	cfg := Config{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"}
	ctx := context.Background()
	q, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	u := q.ClientURL()
	if !strings.HasPrefix(u, "nats://127.0.0.1:") {
		t.Fatalf("ClientURL = %q", u)
	}
	// A second client (another process in production) sees the stream.
	other, err := Open(ctx, Config{URL: u})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.Publish(ctx, queue.Delivery{ID: "x1", Receiver: "H1", Transfer: "t1"}); err != nil {
		t.Fatal(err)
	}
	ms, err := q.Fetch(ctx, "H1", 1, 2*time.Second)
	if err != nil || len(ms) != 1 || ms[0].Delivery().ID != "x1" {
		t.Fatalf("Fetch = %v, %v", ms, err)
	}
}

func TestConfig(t *testing.T) {
	for _, c := range []Config{
		{},
		{StoreDir: "x", SubjectPrefix: "a.*"},
		{StoreDir: "x", SubjectPrefix: "a.", DeadLetterPrefix: "b"},
		{StoreDir: "x", SubjectPrefix: "a", DeadLetterPrefix: "a"},
		{StoreDir: "x", MaxDeliveries: -1},
	} {
		if _, err := c.withDefaults(); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
	c, err := Config{StoreDir: "x", Backoff: []time.Duration{time.Second, 5 * time.Second}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	for attempt, want := range map[int]time.Duration{0: time.Second, 1: time.Second, 2: 5 * time.Second, 9: 5 * time.Second} {
		if got := c.backoff(attempt); got != want {
			t.Errorf("backoff(%d) = %v, want %v", attempt, got, want)
		}
	}
}
