package natstest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/test/natstest"
)

// TestStall stalls the leader of a replicated stream: a request that
// only it answers, sent by a client of another node, goes unanswered
// while no route breaks, and is answered again once the node resumes.
func TestStall(t *testing.T) {
	nodes := natstest.NewClusterWith(t, 3, natstest.ClusterOptions{ProxyRoutes: true})
	nc, err := nats.Connect(nodes[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}, Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	// Its leader is another node than the client's.
	var leader *natstest.Node
	natstest.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		info, err := st.Info(ctx)
		if err != nil {
			return err
		}
		if info.Cluster.Leader == nodes[0].Name() {
			if _, err := nc.Request("$JS.API.STREAM.LEADER.STEPDOWN.S", nil, 5*time.Second); err != nil {
				return err
			}
			return fmt.Errorf("%s still leads", info.Cluster.Leader)
		}
		for _, nd := range nodes {
			if nd.Name() == info.Cluster.Leader {
				leader = nd
				return nil
			}
		}
		return fmt.Errorf("no leader")
	})
	routes := leader.Server().NumRoutes()

	resume := leader.Stall()
	rctx, rcancel := context.WithTimeout(ctx, time.Second)
	_, err = st.Info(rctx)
	rcancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("stream info from the stalled leader = %v, want no answer", err)
	}
	if got := leader.Server().NumRoutes(); got != routes {
		t.Errorf("the stalled node has %d routes, had %d", got, routes)
	}
	resume()
	natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		rctx, rcancel := context.WithTimeout(ctx, time.Second)
		defer rcancel()
		_, err := st.Info(rctx)
		return err
	})
}
