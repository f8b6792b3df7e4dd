package test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backupledger/backupledger/adapters/password"
	"github.com/backupledger/backupledger/cmd/backupd/daemon"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
	"github.com/backupledger/backupledger/test/natstest"
	"github.com/backupledger/backupledger/test/smtptest"
)

// receiver is a webhook endpoint that checks every request's signature
// with its own HMAC of the body, and answers the statuses it is given in
// turn (then 204).
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	secret string

	mu       sync.Mutex
	statuses []int
	got      []received
}

// received is one request a receiver got.
type received struct {
	delivery, event, attempt string
	signed                   bool
	status                   int
	body                     projections.WebhookPayload
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	r := &receiver{t: t, statuses: statuses}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	raw, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	mac := hmac.New(sha256.New, []byte(r.secret))
	mac.Write(raw)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	rec := received{delivery: req.Header.Get("X-Backupledger-Delivery"), event: req.Header.Get("X-Backupledger-Event"),
		attempt: req.Header.Get("X-Backupledger-Attempt"), signed: hmac.Equal([]byte(req.Header.Get("X-Backupledger-Signature")), []byte(want))}
	if err := json.Unmarshal(raw, &rec.body); err != nil {
		r.t.Errorf("webhook body is not JSON: %v: %s", err, raw)
	}
	rec.status = http.StatusNoContent
	if len(r.statuses) > 0 {
		rec.status, r.statuses = r.statuses[0], r.statuses[1:]
	}
	if !rec.signed {
		rec.status = http.StatusUnauthorized
	}
	r.got = append(r.got, rec)
	w.WriteHeader(rec.status)
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// waitDelivered waits until the receiver accepted n requests.
func (r *receiver) waitDelivered(n int, total time.Duration) []received {
	r.t.Helper()
	natstest.CheckFor(r.t, total, 20*time.Millisecond, func() error {
		ok := 0
		for _, g := range r.requests() {
			if g.status < 300 {
				ok++
			}
		}
		if ok < n {
			return fmt.Errorf("%d of %d deliveries accepted (%d requests)", ok, n, len(r.requests()))
		}
		return nil
	})
	return r.requests()
}

// registerWebhook registers url for app (or, with an org: prefix, the
// organisation) and returns it with its secret.
func (n *node) registerWebhook(scope, url string, events []string, headers ...string) projections.NewWebhookView {
	n.t.Helper()
	path := "/v1/apps/" + scope + "/webhooks"
	if org, ok := strings.CutPrefix(scope, "org:"); ok {
		path = "/v1/orgs/" + org + "/webhooks"
	} else {
		n.ensureApp(scope)
	}
	var w projections.NewWebhookView
	n.must(http.StatusCreated, "POST", path, map[string]any{"url": url, "events": events}, headers...).json(n.t, &w)
	return w
}

// deliveries waits for the delivery log of a webhook to hold n attempts.
func (n *node) deliveries(path string, want int) []projections.DeliveryView {
	n.t.Helper()
	var l projections.DeliveryList
	natstest.CheckFor(n.t, 10*time.Second, 20*time.Millisecond, func() error {
		n.must(http.StatusOK, "GET", path, nil).json(n.t, &l)
		if len(l.Deliveries) != want {
			return fmt.Errorf("%d attempts in the log, want %d", len(l.Deliveries), want)
		}
		return nil
	})
	return l.Deliveries
}

func fastWebhooks(c *daemon.Config) {
	c.Rules.MinInterval = 0
	c.Webhooks.Backoff = 50 * time.Millisecond
	c.Webhooks.AllowPrivate = true // the receivers listen on 127.0.0.1
}

// A webhook whose receiver fails twice gets the delivery on the third
// attempt, signed every time; the delivery log shows all three.
func TestWebhookDeliveredOnThirdAttempt(t *testing.T) {
	n := startNode(t, t.TempDir(), fastWebhooks, nil)
	rcv := newReceiver(t, http.StatusInternalServerError, http.StatusBadGateway)
	w := n.registerWebhook("crm", rcv.srv.URL+"/hooks", []string{domain.TypeBackupCompleted})
	rcv.mu.Lock()
	rcv.secret = w.Secret
	rcv.mu.Unlock()
	if !strings.HasPrefix(w.Secret, "whsec_") || w.App != "crm" {
		t.Fatalf("registered %+v", w)
	}
	var list projections.WebhookList
	n.must(http.StatusOK, "GET", "/v1/apps/crm/webhooks", nil).json(t, &list)
	if len(list.Webhooks) != 1 || list.Webhooks[0].ID != w.ID {
		t.Fatalf("webhooks %+v", list)
	}

	n.putConfig("crm", "app.json", `{"v":1}`)
	b := n.waitStatus("crm", n.createBackup("crm", map[string]any{}).ID, 20*time.Second, domain.StatusReady)
	got := rcv.waitDelivered(1, 20*time.Second)
	if len(got) != 3 {
		t.Fatalf("%d requests, want 3", len(got))
	}
	for i, g := range got {
		if !g.signed || g.event != domain.TypeBackupCompleted || g.delivery != got[0].delivery || g.attempt != fmt.Sprint(i+1) {
			t.Errorf("request %d: %+v", i+1, g)
		}
		if g.body.Type != domain.TypeBackupCompleted || g.body.App != "crm" || g.body.Backup == nil || g.body.Backup.ID != b.ID ||
			g.body.Backup.Status != string(domain.StatusReady) || g.body.DeliveryID != g.delivery || g.body.WebhookID != w.ID {
			t.Errorf("request %d body: %+v", i+1, g.body)
		}
	}
	log := n.deliveries("/v1/apps/crm/webhooks/"+w.ID+"/deliveries", 3)
	for i, want := range []struct {
		result string
		status int
	}{{"failed", 500}, {"failed", 502}, {"delivered", 204}} {
		if a := log[i]; a.Result != want.result || a.StatusCode != want.status || a.Attempt != i+1 || a.EventType != domain.TypeBackupCompleted {
			t.Errorf("log entry %d: %+v, want %s %d", i, a, want.result, want.status)
		}
	}
	// No backup.requested or backup.started reached this webhook, and no
	// other delivery is made later: once the delivery queue is empty, the
	// receiver still got three requests.
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		st, err := n.js.Stream(t.Context(), "NOTIFY")
		if err != nil {
			return err
		}
		if m := st.CachedInfo().State.Msgs; m != 0 {
			return fmt.Errorf("%d deliveries queued", m)
		}
		return nil
	})
	if reqs := rcv.requests(); len(reqs) != 3 {
		t.Errorf("%d requests in the end", len(reqs))
	}
	n.must(http.StatusNoContent, "DELETE", "/v1/apps/crm/webhooks/"+w.ID, nil)
	n.must(http.StatusNotFound, "GET", "/v1/apps/crm/webhooks/"+w.ID+"/deliveries", nil)
}

// A restart while a delivery waits for its retry: it is still delivered,
// once.
func TestWebhookDeliverySurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	slow := func(c *daemon.Config) {
		fastWebhooks(c)
		c.Webhooks.Backoff = 2 * time.Second
	}
	n := startNode(t, dir, slow, nil)
	rcv := newReceiver(t, http.StatusServiceUnavailable)
	w := n.registerWebhook("crm", rcv.srv.URL, nil)
	rcv.mu.Lock()
	rcv.secret = w.Secret
	rcv.mu.Unlock()
	n.putConfig("crm", "app.json", `{"v":1}`)
	n.waitStatus("crm", n.createBackup("crm", map[string]any{}).ID, 20*time.Second, domain.StatusReady)
	first := n.deliveries("/v1/apps/crm/webhooks/"+w.ID+"/deliveries", 1)
	if first[0].Result != "failed" || first[0].NextAttemptAt == nil {
		t.Fatalf("first attempt %+v", first[0])
	}
	n.stop()

	n = startNode(t, dir, slow, nil)
	got := rcv.waitDelivered(1, 20*time.Second)
	log := n.deliveries("/v1/apps/crm/webhooks/"+w.ID+"/deliveries", 2)
	if log[0].Result != "failed" || log[1].Result != "delivered" || log[1].Attempt <= log[0].Attempt {
		t.Fatalf("delivery log %+v", log)
	}
	ok := 0
	for _, g := range got {
		if g.status < 300 {
			ok++
		}
	}
	if ok != 1 || len(got) != 2 {
		t.Fatalf("receiver got %d requests, %d accepted; want 2 and 1", len(got), ok)
	}
}

// mailOf parses an accepted e-mail.
func mailOf(t *testing.T, m smtptest.Mail) (subject, body string) {
	t.Helper()
	msg, err := mail.ReadMessage(strings.NewReader(string(m.Data)))
	if err != nil {
		t.Fatal(err)
	}
	subject, err = new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	var r io.Reader = msg.Body
	if strings.EqualFold(msg.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		r = quotedprintable.NewReader(r)
	}
	raw, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return subject, string(raw)
}

// The people who started a backup hear when it is ready; when a check
// finds its archive corrupt, every admin hears of it by e-mail and the
// organisation's webhook is called.
func TestCorruptionNotifiesByMailAndWebhook(t *testing.T) {
	relay := smtptest.Start(t, &smtptest.Server{})
	n := startNode(t, t.TempDir(), func(c *daemon.Config) {
		fastWebhooks(c)
		c.Identity.PasswordParams = password.TestParams()
		c.SMTP = daemon.SMTPConfig{Host: "127.0.0.1", Port: relay.Port(), StartTLS: "auto", From: "Backups <backups@example.com>"}
		c.HTTP.PublicURL = "https://backups.example.com"
	}, nil)
	n.must(http.StatusCreated, "POST", "/v1/orgs", map[string]string{"id": "acme"})
	tokens := map[string]string{}
	for _, u := range []string{"alice", "bob"} {
		pw := u + " has a long password"
		n.must(http.StatusCreated, "POST", "/v1/users", map[string]string{"id": u, "name": u, "email": u + "@example.com", "password": pw})
		n.must(http.StatusNoContent, "PUT", "/v1/orgs/acme/members/"+u, nil)
		var tok projections.NewTokenView
		n.must(http.StatusCreated, "POST", "/v1/sessions", map[string]string{"user": u, "password": pw}, n.as("")...).json(t, &tok)
		tokens[u] = tok.Token
	}
	n.must(http.StatusOK, "PUT", "/v1/apps/crm", map[string]string{"org": "acme"}, n.as(tokens["alice"])...)
	n.must(http.StatusNoContent, "PUT", "/v1/apps/crm/admins/bob", nil, n.as(tokens["alice"])...)
	rcv := newReceiver(t)
	// A member may not manage the organisation's webhooks; the server
	// administrator may.
	var p problem
	n.must(http.StatusForbidden, "POST", "/v1/orgs/acme/webhooks", map[string]any{"url": rcv.srv.URL}, n.as(tokens["alice"])...).json(t, &p)
	if p.Code != domain.CodePermissionDenied {
		t.Errorf("org webhook by a member: %+v", p)
	}
	w := n.registerWebhook("org:acme", rcv.srv.URL, []string{domain.TypeBackupCorrupted})
	rcv.mu.Lock()
	rcv.secret = w.Secret
	rcv.mu.Unlock()

	n.putConfig("crm", "app.json", `{"v":1}`)
	var b projections.BackupView
	n.must(http.StatusAccepted, "POST", "/v1/apps/crm/backups", map[string]any{"name": "Café"}, n.as(tokens["alice"])...).json(t, &b)
	n.waitStatus("crm", b.ID, 20*time.Second, domain.StatusReady)
	waitMails := func(want int) []smtptest.Mail {
		var mails []smtptest.Mail
		natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
			if _, _, mails = relay.Stats(); len(mails) < want {
				return fmt.Errorf("%d e-mails, want %d", len(mails), want)
			}
			return nil
		})
		return mails
	}
	mails := waitMails(1)
	subject, body := mailOf(t, mails[0])
	if !slices.Equal(mails[0].To, []string{"alice@example.com"}) || subject != `Backup "Café" of crm is ready` ||
		!strings.Contains(body, "https://backups.example.com/v1/apps/crm/backups/"+b.ID+"/archive") {
		t.Fatalf("ready e-mail to %v: %q\n%s", mails[0].To, subject, body)
	}

	n.corruptArchive(b.ID)
	n.must(http.StatusOK, "POST", "/v1/apps/crm/backups/"+b.ID+"/verify", nil, n.as(tokens["bob"])...)
	got := rcv.waitDelivered(1, 20*time.Second)
	if len(got) != 1 || got[0].event != domain.TypeBackupCorrupted || got[0].body.Backup == nil || got[0].body.Backup.CorruptAt == nil {
		t.Fatalf("org webhook got %+v", got)
	}
	// One e-mail to each admin: neither sees the other's address.
	mails = waitMails(3)
	var to []string
	for _, m := range mails[1:] {
		subject, body = mailOf(t, m)
		if len(m.To) != 1 || !strings.Contains(subject, "is corrupt") || !strings.Contains(body, "failed its check") ||
			strings.Contains(string(m.Data), "alice@example.com") == strings.Contains(string(m.Data), "bob@example.com") {
			t.Errorf("corruption e-mail to %v: %q\n%s", m.To, subject, m.Data)
		}
		to = append(to, m.To...)
	}
	slices.Sort(to)
	if !slices.Equal(to, []string{"alice@example.com", "bob@example.com"}) {
		t.Errorf("corruption e-mails to %v", to)
	}
	if len(mails) != 3 {
		t.Errorf("%d e-mails, want 3", len(mails))
	}
}
