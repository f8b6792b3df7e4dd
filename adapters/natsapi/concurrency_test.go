package natsapi_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/backupledger/backupledger/adapters/natsapi"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
	"github.com/backupledger/backupledger/test/natstest"
	"github.com/backupledger/backupledger/usecase"
)

// gate holds the commands of app "slow" until released.
type gate struct {
	inner   usecase.Commands
	entered chan struct{}
	release chan struct{}
}

func (g *gate) Retention(app string) (domain.Retention, error) { return g.inner.Retention(app) }

func (g *gate) Execute(ctx context.Context, cmd domain.Command, m domain.Meta) (domain.Result, error) {
	if cmd.AppID() == "slow" {
		g.entered <- struct{}{}
		<-g.release
	}
	return g.inner.Execute(ctx, cmd, m)
}

func newGatedAPI(t *testing.T) (*api, *gate) {
	g := &gate{entered: make(chan struct{}, 1), release: make(chan struct{})}
	a := newAPI(t, func(d *deps) {
		g.inner = d.Commands
		d.Commands = g
	})
	return a, g
}

type result struct {
	r   reply
	err error
}

// startSlow sends a create for app "slow" and returns once its handler is
// blocked in the gate.
func startSlow(t *testing.T, a *api, g *gate) <-chan result {
	t.Helper()
	done := make(chan result, 1)
	go func() {
		r, err := a.requestErr(natsapi.SubjectBackupsCreate, `{"app":"slow"}`)
		done <- result{r, err}
	}()
	select {
	case <-g.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the slow request never reached the ledger")
	}
	return done
}

func TestSlowRequestDoesNotBlockItsEndpoint(t *testing.T) {
	a, g := newGatedAPI(t)
	slow := startSlow(t, a, g)

	// The same endpoint answers another request while the first is held.
	var fast projections.BackupView
	a.request(natsapi.SubjectBackupsCreate, `{"app":"fast"}`).ok(t, &fast)
	if fast.App != "fast" {
		t.Errorf("fast: %+v", fast)
	}
	select {
	case <-slow:
		t.Fatal("the slow request finished before it was released")
	default:
	}

	close(g.release)
	res := <-slow
	if res.err != nil {
		t.Fatalf("slow request: %v", res.err)
	}
	var b projections.BackupView
	res.r.ok(t, &b)
	if b.App != "slow" || b.Status != "queued" {
		t.Errorf("slow: %+v", b)
	}
}

func TestStopWaitsForInflightRequests(t *testing.T) {
	a, g := newGatedAPI(t)
	slow := startSlow(t, a, g)

	stopped := make(chan error, 1)
	go func() { stopped <- a.svc.Stop() }()

	// Once the endpoints are unsubscribed, new requests find no responder;
	// the held request is still being handled.
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		_, err := a.requestErr(natsapi.SubjectBackupsList, `{"app":"fast"}`)
		if !errors.Is(err, nats.ErrNoResponders) {
			return natstest.Errorf("request after stop: %v", err)
		}
		return nil
	})
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) while a request was in flight", err)
	default:
	}

	close(g.release)
	if err := <-stopped; err != nil {
		t.Fatalf("stop: %v", err)
	}
	// Stop returned after the answer was sent: closing the connection now
	// cannot lose it.
	if err := a.svcNC.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	a.svcNC.Close()
	res := <-slow
	if res.err != nil {
		t.Fatalf("slow request: %v", res.err)
	}
	res.r.ok(t, nil)
}
