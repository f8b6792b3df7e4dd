package notify_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/notify"
	"github.com/backupledger/backupledger/test/natstest"
)

// wait is how long a test waits for an eventual result.
const wait = 15 * time.Second

// testConfig is a configuration with tiny delays that allows private
// targets: the receivers are httptest servers on 127.0.0.1 (guard_test.go
// tests the refusal of private targets).
func testConfig() notify.Config {
	return notify.Config{
		Workers:             4,
		Timeout:             5 * time.Second,
		Backoff:             20 * time.Millisecond,
		MaxBackoff:          100 * time.Millisecond,
		RetryFor:            time.Minute,
		AllowPrivateTargets: true,
	}
}

// newServer starts a server with the notify streams and consumer set up
// with cfg.
func newServer(t *testing.T, cfg notify.Config) *server.Server {
	t.Helper()
	s := natstest.Server(t, "")
	_, js := natstest.Connect(t, s)
	if err := notify.Setup(t.Context(), js, cfg); err != nil {
		t.Fatalf("setup: %v", err)
	}
	return s
}

// newNotifier is one "process": its own connection and Notifier.
func newNotifier(t *testing.T, s *server.Server, cfg notify.Config, hooks notify.Webhooks, log *slog.Logger) (*notify.Notifier, jetstream.JetStream) {
	t.Helper()
	_, js := natstest.Connect(t, s)
	n, err := notify.New(js, cfg, hooks, log)
	if err != nil {
		t.Fatalf("new notifier: %v", err)
	}
	return n, js
}

// runInBackground runs run until the test ends; it returns a stop function
// that cancels run's context and waits for it, failing the test if run
// returned an error or did not stop within 10s.
func runInBackground(t *testing.T, what string, run func(context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s run: %v", what, err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("%s did not stop", what)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// hooks is an in-memory registry of webhooks.
type hooks struct {
	mu      sync.Mutex
	targets map[string]notify.WebhookTarget
	fail    int // fail the next lookups
}

func newHooks() *hooks { return &hooks{targets: map[string]notify.WebhookTarget{}} }

func (h *hooks) Webhook(ctx context.Context, id string) (notify.WebhookTarget, bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fail > 0 {
		h.fail--
		return notify.WebhookTarget{}, false, fmt.Errorf("registry unavailable")
	}
	t, ok := h.targets[id]
	return t, ok, nil
}

func (h *hooks) set(id string, t notify.WebhookTarget) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.targets[id] = t
}

// request is one request a receiver got.
type request struct {
	path        string
	contentType string
	userAgent   string
	event       string
	delivery    string
	attempt     string
	signatureOK bool
	body        string
	status      int
}

// receiver is a webhook receiver that checks signatures with its copy of
// the secret and answers with respond.
type receiver struct {
	srv    *httptest.Server
	secret []byte

	respond func(n int, r *http.Request) int // n counts from 1; nil answers 200

	mu   sync.Mutex
	reqs []request
}

func newReceiver(t *testing.T, secret string, respond func(n int, r *http.Request) int) *receiver {
	t.Helper()
	rc := &receiver{secret: []byte(secret), respond: respond}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req := request{
		path:        r.URL.Path,
		contentType: r.Header.Get("Content-Type"),
		userAgent:   r.Header.Get("User-Agent"),
		event:       r.Header.Get(notify.HeaderEvent),
		delivery:    r.Header.Get(notify.HeaderDelivery),
		attempt:     r.Header.Get(notify.HeaderAttempt),
		signatureOK: r.Method == http.MethodPost && notify.Verify(rc.secret, body, r.Header.Get(notify.HeaderSignature)),
		body:        string(body),
	}
	// A request counts from its arrival; its status is set once answered.
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, req)
	n := len(rc.reqs)
	rc.mu.Unlock()
	status := http.StatusOK
	if rc.respond != nil {
		status = rc.respond(n, r)
	}
	rc.mu.Lock()
	rc.reqs[n-1].status = status
	rc.mu.Unlock()
	if status >= 300 && status < 400 {
		w.Header().Set("Location", "/elsewhere")
	}
	w.WriteHeader(status)
	if status >= 400 {
		fmt.Fprintf(w, "receiver says no (%d)", n)
	}
}

// requests returns a copy of the requests so far, also those not yet
// answered (status 0).
func (rc *receiver) requests() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]request(nil), rc.reqs...)
}

// target returns the receiver as a webhook target with its secret.
func (rc *receiver) target() notify.WebhookTarget {
	return notify.WebhookTarget{URL: rc.srv.URL + "/hook", Secret: rc.secret}
}

// webhookJob returns a job for webhook id of event ev.
func webhookJob(ev, id string) notify.WebhookJob {
	return notify.WebhookJob{
		DeliveryID: ev + "." + id,
		WebhookID:  id,
		EventID:    ev,
		EventType:  "backup.completed",
		App:        "shop",
		Body:       []byte(fmt.Sprintf(`{"id":%q,"type":"backup.completed","app":"shop"}`, ev)),
	}
}

// waitLog waits until the delivery log of webhook id satisfies done and
// returns it.
func waitLog(t *testing.T, n *notify.Notifier, id string, done func([]notify.Attempt) error) []notify.Attempt {
	t.Helper()
	var log []notify.Attempt
	natstest.CheckFor(t, wait, 10*time.Millisecond, func() error {
		var err error
		if log, err = n.Deliveries(t.Context(), id, 1000); err != nil {
			return err
		}
		return done(log)
	})
	return log
}

// endsWith is a waitLog condition: the last entry has result.
func endsWith(result string) func([]notify.Attempt) error {
	return func(log []notify.Attempt) error {
		if len(log) == 0 || log[len(log)-1].Result != result {
			return fmt.Errorf("log %s does not end with %s", results(log), result)
		}
		return nil
	}
}

// results returns the results and attempts of log, for messages.
func results(log []notify.Attempt) string {
	var b strings.Builder
	b.WriteString("[")
	for i, a := range log {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%d:%s", a.Attempt, a.Result)
	}
	b.WriteString("]")
	return b.String()
}

// checkAttempts checks that the attempts of log count up from 1.
func checkAttempts(t *testing.T, log []notify.Attempt) {
	t.Helper()
	for i, a := range log {
		if i == 0 && a.Attempt != 1 || i > 0 && a.Attempt <= log[i-1].Attempt {
			t.Errorf("attempts %s do not count up from 1", results(log))
			return
		}
	}
}

// waitEmpty waits until the stream NOTIFY holds no job and the consumer
// has none pending or unacknowledged.
func waitEmpty(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	natstest.CheckFor(t, wait, 10*time.Millisecond, func() error {
		if n := streamMsgs(t, js); n != 0 {
			return fmt.Errorf("stream holds %d jobs", n)
		}
		ci, err := js.Consumer(t.Context(), notify.StreamName, notify.ConsumerName)
		if err != nil {
			return err
		}
		info, err := ci.Info(t.Context())
		if err != nil {
			return err
		}
		if info.NumPending+uint64(info.NumAckPending) != 0 {
			return fmt.Errorf("consumer has %d pending, %d unacknowledged", info.NumPending, info.NumAckPending)
		}
		return nil
	})
}

// streamMsgs returns how many jobs the stream NOTIFY holds.
func streamMsgs(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	st, err := js.Stream(t.Context(), notify.StreamName)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	return info.State.Msgs
}

// loggerOf returns a logger that writes to rec.
func loggerOf(rec *logRecorder) *slog.Logger { return slog.New(rec) }

// logRecord is one record of a logRecorder.
type logRecord struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

// logRecorder is a slog handler that keeps every record.
type logRecorder struct {
	mu    *sync.Mutex
	recs  *[]logRecord
	attrs []slog.Attr
}

func newLogRecorder() *logRecorder {
	return &logRecorder{mu: &sync.Mutex{}, recs: &[]logRecord{}}
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	for _, a := range h.attrs {
		rec.attrs[a.Key] = a.Value.Resolve().String()
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.Resolve().String()
		return true
	})
	h.mu.Lock()
	*h.recs = append(*h.recs, rec)
	h.mu.Unlock()
	return nil
}

func (h *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &c
}

func (h *logRecorder) WithGroup(string) slog.Handler { return h }

// records returns the records with message msg.
func (h *logRecorder) records(msg string) []logRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []logRecord
	for _, r := range *h.recs {
		if r.msg == msg {
			out = append(out, r)
		}
	}
	return out
}

// contains reports whether any record has s in its message or attributes.
func (h *logRecorder) contains(s string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range *h.recs {
		if strings.Contains(r.msg, s) {
			return true
		}
		for k, v := range r.attrs {
			if strings.Contains(k, s) || strings.Contains(v, s) {
				return true
			}
		}
	}
	return false
}
