package natsapi_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/backupledger/backupledger/adapters/natsapi"
	"github.com/backupledger/backupledger/test/apitest"
	"github.com/backupledger/backupledger/test/natstest"
	"github.com/backupledger/backupledger/usecase"
)

// api is a natsapi.Service over a stack on a real embedded NATS server, and
// a separate plain client connection.
type api struct {
	t      *testing.T
	st     *apitest.Stack
	svc    *natsapi.Service
	svcNC  *nats.Conn
	client *nats.Conn
	logs   *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newAPI starts a Service over a fresh stack; edit adjusts its deps.
func newAPI(t *testing.T, edit func(*deps)) *api {
	t.Helper()
	return newAPIWith(t, natsapi.Config{}, edit)
}

// newAPIWith starts a Service with cfg over a fresh stack; edit adjusts
// its deps.
func newAPIWith(t *testing.T, cfg natsapi.Config, edit func(*deps)) *api {
	t.Helper()
	return serve(t, apitest.NewStack(t), cfg, edit)
}

// newBareAPI starts a Service over a stack where no app exists, for the
// tests of registration.
func newBareAPI(t *testing.T, edit func(*deps)) *api {
	t.Helper()
	return serve(t, apitest.NewStackWith(t), natsapi.Config{}, edit)
}

// serve starts a Service with cfg over st; edit adjusts its deps.
func serve(t *testing.T, st *apitest.Stack, cfg natsapi.Config, edit func(*deps)) *api {
	t.Helper()
	srv := natstest.Server(t, "")
	svcNC, _ := natstest.Connect(t, srv)
	client, _ := natstest.Connect(t, srv)
	logs := &syncBuffer{}
	d := deps{
		appDeps: st.AppDeps(),
		transportDeps: transportDeps{
			Auth:   st.AuthChain(),
			Logger: slog.New(slog.NewTextHandler(logs, nil)),
		},
	}
	if edit != nil {
		edit(&d)
	}
	deps := d.build(t)
	svc, err := natsapi.New(svcNC, cfg, deps)
	if err != nil {
		t.Fatalf("new service: %v", err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	return &api{t: t, st: st, svc: svc, svcNC: svcNC, client: client, logs: logs}
}

// reply is an answer of the service.
type reply struct {
	msg *nats.Msg
}

// request sends body (a string is sent as is, anything else as JSON) as
// alice; kv are header name/value pairs, an empty value removes a header.
func (a *api) request(subject string, body any, kv ...string) reply {
	a.t.Helper()
	r, err := a.requestErr(subject, body, kv...)
	if err != nil {
		a.t.Fatalf("request %s: %v", subject, err)
	}
	return r
}

func (a *api) requestErr(subject string, body any, kv ...string) (reply, error) {
	var data []byte
	switch b := body.(type) {
	case string:
		data = []byte(b)
	case nil:
	default:
		var err error
		if data, err = json.Marshal(b); err != nil {
			return reply{}, err
		}
	}
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	msg.Header.Set("Authorization", "Bearer alice-token")
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			msg.Header.Del(kv[i])
			continue
		}
		msg.Header.Set(kv[i], kv[i+1])
	}
	m, err := a.client.RequestMsg(msg, 5*time.Second)
	if err != nil {
		return reply{}, err
	}
	return reply{msg: m}, nil
}

// ok fails the test if r is an error and decodes it into v.
func (r reply) ok(t *testing.T, v any) reply {
	t.Helper()
	if code := r.msg.Header.Get(micro.ErrorCodeHeader); code != "" {
		t.Fatalf("error %s %s: %s", code, r.msg.Header.Get(micro.ErrorHeader), r.msg.Data)
	}
	if v != nil {
		decode(t, r.msg.Data, v)
	}
	return r
}

// problem checks that r is an error with status and code and returns its
// body.
func (r reply) problem(t *testing.T, status int, code string) usecase.Problem {
	t.Helper()
	if got := r.msg.Header.Get(micro.ErrorCodeHeader); got != strconv.Itoa(status) {
		t.Fatalf("Nats-Service-Error-Code: got %q, want %d; body %s", got, status, r.msg.Data)
	}
	if got := r.msg.Header.Get(micro.ErrorHeader); got != code {
		t.Errorf("Nats-Service-Error: got %q, want %q", got, code)
	}
	if got := r.msg.Header.Get("Content-Type"); got != "application/problem+json" {
		t.Errorf("Content-Type: got %q", got)
	}
	var p usecase.Problem
	decode(t, r.msg.Data, &p)
	if p.Status != status || p.Code != code || p.Type != "about:blank" || p.Title == "" || p.Detail == "" {
		t.Errorf("problem: %+v", p)
	}
	return p
}

func decode(t *testing.T, b []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

// appDeps and transportDeps are the two halves of a test server's parts.
type (
	appDeps       = usecase.Deps
	transportDeps = natsapi.Deps
)

// deps are what a test server is made of: the application's parts and the
// transport's own, which a test may edit before the server starts.
type deps struct {
	appDeps
	transportDeps
	// location is the time zone of download names; nil is UTC.
	location *time.Location
}

// build makes the application of d and returns the transport's deps with
// it.
func (d *deps) build(t *testing.T) natsapi.Deps {
	t.Helper()
	out := d.transportDeps
	out.App = apitest.NewApp(t, d.location, d.appDeps)
	return out
}
