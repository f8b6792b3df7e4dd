package workqueue_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/internal/workqueue"
	"github.com/backupledger/backupledger/test/natstest"
)

// The test queue: a stream of its own with one durable consumer.
const (
	wqStream  = "WQ"
	wqDurable = "wq-worker"
)

// wqEnv is a server with the test stream and consumer, and a connection to
// publish with.
type wqEnv struct {
	t  *testing.T
	js jetstream.JetStream
}

// newWQEnv starts a server with the stream WQ (subjects wq.>) and the
// consumer cc (durable wq-worker, explicit acknowledgements, filter wq.>).
func newWQEnv(t *testing.T, cc jetstream.ConsumerConfig) (*wqEnv, func() jetstream.JetStream) {
	t.Helper()
	s := natstest.Server(t, "")
	_, js := natstest.Connect(t, s)
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: wqStream, Subjects: []string{"wq.>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	cc.Durable, cc.AckPolicy, cc.FilterSubject = wqDurable, jetstream.AckExplicitPolicy, "wq.>"
	if _, err := js.CreateOrUpdateConsumer(t.Context(), wqStream, cc); err != nil {
		t.Fatal(err)
	}
	conn := func() jetstream.JetStream {
		_, js := natstest.Connect(t, s)
		return js
	}
	return &wqEnv{t: t, js: js}, conn
}

// publish publishes one message on wq.<name> and returns its sequence.
func (e *wqEnv) publish(name string) uint64 {
	e.t.Helper()
	ack, err := e.js.Publish(e.t.Context(), "wq."+name, []byte(name))
	if err != nil {
		e.t.Fatal(err)
	}
	return ack.Sequence
}

// waitSettled waits until the consumer has every message of the stream
// acknowledged or terminated, with none pending: nothing more will come.
func (e *wqEnv) waitSettled() *jetstream.ConsumerInfo {
	e.t.Helper()
	var info *jetstream.ConsumerInfo
	natstest.CheckFor(e.t, 20*time.Second, 10*time.Millisecond, func() error {
		st, err := e.js.Stream(e.t.Context(), wqStream)
		if err != nil {
			return err
		}
		cons, err := e.js.Consumer(e.t.Context(), wqStream, wqDurable)
		if err != nil {
			return err
		}
		i := cons.CachedInfo()
		if last := st.CachedInfo().State.LastSeq; i.AckFloor.Stream < last || i.NumAckPending != 0 || i.NumPending != 0 {
			return fmt.Errorf("ack floor %d of %d, %d pending acks, %d pending", i.AckFloor.Stream, last, i.NumAckPending, i.NumPending)
		}
		info = i
		return nil
	})
	return info
}

// consumerInfo returns the consumer's state now.
func (e *wqEnv) consumerInfo() *jetstream.ConsumerInfo {
	e.t.Helper()
	cons, err := e.js.Consumer(e.t.Context(), wqStream, wqDurable)
	if err != nil {
		e.t.Fatal(err)
	}
	return cons.CachedInfo()
}

// newQueue returns a queue over the test consumer with cfg.
func newQueue(t *testing.T, js jetstream.JetStream, cfg workqueue.Config) *workqueue.Queue {
	t.Helper()
	cfg.Stream, cfg.Durable = wqStream, wqDurable
	q, err := workqueue.New(js, cfg, nil)
	if err != nil {
		t.Fatalf("work queue: %v", err)
	}
	return q
}

// delivered is one delivery that a handler saw.
type delivered struct {
	name     string
	delivery int
	final    bool
	at       time.Time
}

// deliveryLog keeps the deliveries that handlers saw.
type deliveryLog struct {
	mu        sync.Mutex
	delivered []delivered
}

func (r *deliveryLog) add(m *workqueue.Msg) string {
	name := strings.TrimPrefix(m.Subject(), "wq.")
	r.mu.Lock()
	r.delivered = append(r.delivered, delivered{name: name, delivery: m.Delivery, final: m.Final, at: time.Now()})
	r.mu.Unlock()
	return name
}

// of returns the deliveries of name, in order.
func (r *deliveryLog) of(name string) []delivered {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []delivered
	for _, s := range r.delivered {
		if s.name == name {
			out = append(out, s)
		}
	}
	return out
}

// Each outcome settles its message as it says: Ack once, Retry after its
// delay until the final delivery, Term never again; tasks settle with their
// own outcome, and the handler sees the message's facts.
func TestQueueSettles(t *testing.T) {
	t.Parallel()
	e, conn := newWQEnv(t, jetstream.ConsumerConfig{AckWait: 30 * time.Second, MaxDeliver: 3})
	seqs := map[string]uint64{}
	for _, name := range []string{"ack", "retry", "later", "poison", "final", "task"} {
		seqs[name] = e.publish(name)
	}
	const later = 300 * time.Millisecond
	rec := &deliveryLog{}
	q := newQueue(t, conn(), workqueue.Config{Workers: 2, Backoff: workqueue.ConstantBackoff(later)})
	bad := make(chan string, 10)
	runInBackground(t, "work queue", func(ctx context.Context) error {
		return q.Run(ctx, func(_ context.Context, m *workqueue.Msg) workqueue.Outcome {
			name := rec.add(m)
			if m.Seq != seqs[name] || string(m.Data()) != name || m.Stored.IsZero() || m.Log == nil {
				bad <- name
			}
			switch name {
			case "retry":
				if m.Delivery == 1 {
					return workqueue.Retry(0)
				}
			case "later":
				if m.Delivery == 1 {
					return workqueue.Retry(m.Backoff())
				}
			case "poison":
				return workqueue.Term("undecodable: test")
			case "final":
				if !m.Final {
					return workqueue.Retry(0)
				}
			case "task":
				return workqueue.Go(func(context.Context) workqueue.Outcome { return workqueue.Ack() })
			}
			return workqueue.Ack()
		})
	})
	e.waitSettled()
	select {
	case name := <-bad:
		t.Errorf("message %s: wrong sequence, body, store time or logger", name)
	default:
	}
	want := map[string][]int{"ack": {1}, "retry": {1, 2}, "later": {1, 2}, "poison": {1}, "final": {1, 2, 3}, "task": {1}}
	for name, deliveries := range want {
		var got []int
		for _, s := range rec.of(name) {
			got = append(got, s.delivery)
			if s.final != (s.delivery == 3) {
				t.Errorf("%s delivery %d: final %v", name, s.delivery, s.final)
			}
		}
		if !slices.Equal(got, deliveries) {
			t.Errorf("%s delivered %v, want %v", name, got, deliveries)
		}
	}
	if l := rec.of("later"); len(l) == 2 && l[1].at.Sub(l[0].at) < later {
		t.Errorf("retry after %s came back after %s", later, l[1].at.Sub(l[0].at))
	}
	if n := q.InFlight(); n != 0 {
		t.Errorf("%d tasks in flight after all settled", n)
	}
}

// A queue fetches no more messages than it has free workers, and a task
// beside the workers does not take one.
func TestQueueWorkers(t *testing.T) {
	t.Parallel()
	e, conn := newWQEnv(t, jetstream.ConsumerConfig{AckWait: 30 * time.Second})
	for _, name := range []string{"beside", "slot1", "slot2", "slot3"} {
		e.publish(name)
	}
	release := map[string]chan struct{}{}
	for _, name := range []string{"beside", "slot1", "slot2", "slot3"} {
		release[name] = make(chan struct{})
	}
	started := make(chan string, 10)
	q := newQueue(t, conn(), workqueue.Config{Workers: 2, Batch: 10})
	runInBackground(t, "work queue", func(ctx context.Context) error {
		return q.Run(ctx, func(_ context.Context, m *workqueue.Msg) workqueue.Outcome {
			name := strings.TrimPrefix(m.Subject(), "wq.")
			task := func(context.Context) workqueue.Outcome {
				started <- name
				<-release[name]
				return workqueue.Ack()
			}
			if name == "beside" {
				return workqueue.GoBeside(task)
			}
			return workqueue.Go(task)
		})
	})
	var got []string
	for range 3 {
		got = append(got, receive(t, started, "a task"))
	}
	slices.Sort(got)
	if want := []string{"beside", "slot1", "slot2"}; !slices.Equal(got, want) {
		t.Fatalf("tasks started %v, want %v", got, want)
	}
	if n := q.InFlight(); n != 2 {
		t.Errorf("%d tasks in flight, want 2 (the one beside does not count)", n)
	}
	if i := e.consumerInfo(); i.NumPending != 1 || i.NumAckPending != 3 {
		t.Errorf("%d pending and %d unacknowledged, want 1 and 3: fetched more than the free workers", i.NumPending, i.NumAckPending)
	}
	close(release["slot1"])
	if name := receive(t, started, "the third task"); name != "slot3" {
		t.Fatalf("started %s, want slot3", name)
	}
	close(release["beside"])
	close(release["slot2"])
	close(release["slot3"])
	e.waitSettled()
}

// A stopping queue lets a task that ends within the grace period settle,
// cancels the others after it, and they hand their messages back: another
// process gets them at once, as a new delivery.
func TestQueueStopsWithGrace(t *testing.T) {
	t.Parallel()
	e, conn := newWQEnv(t, jetstream.ConsumerConfig{AckWait: time.Minute})
	e.publish("quick")
	e.publish("stuck")
	started := make(chan string, 2)
	finish := make(chan struct{})
	quickCtxErr := make(chan error, 1)
	stuckCtxErr := make(chan error, 1)
	a := newQueue(t, conn(), workqueue.Config{Workers: 2, Grace: 500 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- a.Run(ctx, func(_ context.Context, m *workqueue.Msg) workqueue.Outcome {
			name := strings.TrimPrefix(m.Subject(), "wq.")
			return workqueue.Go(func(ctx context.Context) workqueue.Outcome {
				started <- name
				if name == "quick" {
					<-finish
					quickCtxErr <- ctx.Err()
					return workqueue.Ack()
				}
				<-ctx.Done()
				stuckCtxErr <- ctx.Err()
				return workqueue.HandBack(0)
			})
		})
	}()
	receive(t, started, "a task")
	receive(t, started, "the other task")
	cancel()
	close(finish) // within the grace period
	if err := receive(t, quickCtxErr, "the quick task's end"); err != nil {
		t.Errorf("the quick task's context ended within the grace period: %v", err)
	}
	if err := receive(t, stuckCtxErr, "the stuck task's cancellation"); !errors.Is(err, context.Canceled) {
		t.Errorf("the stuck task's context ended with %v", err)
	}
	if err := receive(t, done, "Run's end"); err != nil {
		t.Fatalf("run: %v", err)
	}
	if n := a.InFlight(); n != 0 {
		t.Errorf("%d tasks in flight after Run returned", n)
	}

	rec := &deliveryLog{}
	b := newQueue(t, conn(), workqueue.Config{})
	runInBackground(t, "work queue B", func(ctx context.Context) error {
		return b.Run(ctx, func(_ context.Context, m *workqueue.Msg) workqueue.Outcome {
			rec.add(m)
			return workqueue.Ack()
		})
	})
	// Within the ack wait of a minute: the message came back at once.
	e.waitSettled()
	if got := rec.of("stuck"); len(got) != 1 || got[0].delivery != 2 {
		t.Errorf("B got stuck as %+v, want delivery 2", got)
	}
	if got := rec.of("quick"); len(got) != 0 {
		t.Errorf("B got quick again: %+v", got)
	}
}

// Run reports a missing consumer by its name, unless it is stopping anyway.
func TestQueueWithoutConsumer(t *testing.T) {
	t.Parallel()
	s := natstest.Server(t, "")
	_, js := natstest.Connect(t, s)
	q, err := workqueue.New(js, workqueue.Config{Stream: "NONE", Durable: "nobody", Words: workqueue.Wording{Consumer: "test consumer"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ack := func(context.Context, *workqueue.Msg) workqueue.Outcome { return workqueue.Ack() }
	if err := q.Run(t.Context(), ack); err == nil || !strings.Contains(err.Error(), "test consumer nobody") {
		t.Fatalf("run without consumer: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := q.Run(ctx, ack); err != nil {
		t.Fatalf("run without consumer, stopping: %v", err)
	}
}

// New reports every invalid field at once.
func TestQueueConfigValidate(t *testing.T) {
	t.Parallel()
	if err := (workqueue.Config{Stream: "S", Durable: "d"}).Validate(); err != nil {
		t.Fatalf("minimal config: %v", err)
	}
	bad := workqueue.Config{Batch: -1, AckWait: time.Second, Heartbeat: 2 * time.Second, Grace: -time.Second, MaxDeliver: -2}
	_, err := workqueue.New(nil, bad, nil)
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"stream and a durable", "batch and workers", "grace", "heartbeat 2s must be shorter", "max deliver"} {
		if !containsFold(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, err := workqueue.New(nil, workqueue.Config{Stream: "S", Durable: "d"}, nil); err == nil {
		t.Error("nil jetstream context accepted")
	}
}

// With AckSync, Ack waits for the server's confirmation: the
// acknowledgement is a request, with a reply subject for the confirmation.
// Without it, the acknowledgement is only sent.
func TestQueueAckSync(t *testing.T) {
	t.Parallel()
	for _, ackSync := range []bool{false, true} {
		t.Run(fmt.Sprintf("AckSync=%v", ackSync), func(t *testing.T) {
			t.Parallel()
			e, conn := newWQEnv(t, jetstream.ConsumerConfig{AckWait: 30 * time.Second})
			nc := e.js.Conn()
			acks, err := nc.SubscribeSync("$JS.ACK." + wqStream + "." + wqDurable + ".>")
			if err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			e.publish("done")
			q := newQueue(t, conn(), workqueue.Config{Workers: 1, AckSync: ackSync})
			runInBackground(t, "work queue", func(ctx context.Context) error {
				return q.Run(ctx, func(context.Context, *workqueue.Msg) workqueue.Outcome {
					return workqueue.Go(func(context.Context) workqueue.Outcome { return workqueue.Ack() })
				})
			})
			e.waitSettled()
			ack, err := acks.NextMsg(20 * time.Second)
			if err != nil {
				t.Fatalf("the acknowledgement: %v", err)
			}
			if string(ack.Data) != "+ACK" || (ack.Reply != "") != ackSync {
				t.Errorf("acknowledgement %q with reply subject %q, want +ACK with a reply subject %v", ack.Data, ack.Reply, ackSync)
			}
		})
	}
}
