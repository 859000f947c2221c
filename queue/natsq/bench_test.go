package natsq

import (
	"context"
	"fmt"
	"testing"
	"time"

	"phix/internal/testenv"
	"phix/queue"
)

func benchQueue(b *testing.B, q *Queue) {
	ctx := context.Background()
	b.ResetTimer()
	const batch = 100
	for i := 0; i < b.N; i += batch {
		for j := 0; j < batch; j++ {
			if err := q.Publish(ctx, queue.Delivery{ID: fmt.Sprintf("b%d-%d", i, j), Receiver: "H1", Transfer: "t1"}); err != nil {
				b.Fatal(err)
			}
		}
		got := 0
		for got < batch {
			ms, err := q.Fetch(ctx, "H1", batch-got, 2*time.Second)
			if err != nil || len(ms) == 0 {
				b.Fatalf("fetch: %v", err)
			}
			for _, m := range ms {
				if err := m.Ack(ctx); err != nil {
					b.Fatal(err)
				}
			}
			got += len(ms)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkEmbedded: go test -run X -bench . -benchtime 2000x ./queue/natsq
func BenchmarkEmbedded(b *testing.B) {
	q, err := Open(context.Background(), Config{StoreDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	benchQueue(b, q)
}

// BenchmarkExternal runs against the machine's NATS (no proxy), on a stream
// of its own that it deletes afterwards.
func BenchmarkExternal(b *testing.B) {
	cfg := uniqueNames(b)
	cfg.URL = testenv.NATSURL(b)
	q, err := Open(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer q.Destroy(context.Background())
	benchQueue(b, q)
}
