package loadgen

import (
	"context"
	"errors"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
)

// Raw is the baseline of the command path: each command is one publish to
// a stream of its own on the same server, with the optimistic concurrency
// the ledger uses (Nats-Expected-Last-Subject-Sequence on a subject per
// app, the commands of an app one at a time, as backupd takes them), and
// nothing else: no request to decode, no decision, no envelope, no
// projection to wait for.
type Raw struct {
	js      njs.JetStream
	subject string
	body    []byte
	mu      sync.Mutex
	apps    map[string]*rawApp
}

type rawApp struct {
	mu   sync.Mutex
	last uint64
}

// RawBodySize is the size of a raw publish's body: about a rename's event
// in the ledger.
const RawBodySize = 256

// NewRaw makes the stream name (subjects "<name>.>", file storage) afresh
// and returns the target that publishes to it.
func NewRaw(ctx context.Context, js njs.JetStream, name string) (*Raw, error) {
	if err := js.DeleteStream(ctx, name); err != nil && !errors.Is(err, njs.ErrStreamNotFound) {
		return nil, err
	}
	if _, err := js.CreateStream(ctx, njs.StreamConfig{Name: name, Subjects: []string{name + ".>"}, Storage: njs.FileStorage}); err != nil {
		return nil, err
	}
	body := make([]byte, RawBodySize)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	return &Raw{js: js, subject: name + ".", body: body, apps: map[string]*rawApp{}}, nil
}

func (r *Raw) String() string { return "raw JetStream publish to " + r.subject + "<app>" }

func (r *Raw) app(name string) *rawApp {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.apps[name]
	if !ok {
		a = &rawApp{}
		r.apps[name] = a
	}
	return a
}

// Send implements Target: it publishes one message to the app's subject,
// expecting the subject's last sequence to be the one it last wrote.
func (r *Raw) Send(ctx context.Context, cmd Command) Answer {
	a := r.app(cmd.App)
	a.mu.Lock()
	defer a.mu.Unlock()
	msg := nats.NewMsg(r.subject + cmd.App)
	msg.Header.Set(njs.ExpectedLastSubjSeqHeader, strconv.FormatUint(a.last, 10))
	msg.Data = r.body
	ack, err := r.js.PublishMsg(ctx, msg)
	if err != nil {
		return Answer{Err: err}
	}
	a.last = ack.Sequence
	return Answer{Status: 200}
}
