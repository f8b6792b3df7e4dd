package notify_test

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/backupledger/backupledger/adapters/notify"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/test/natstest"
)

func TestWebhookIsRetriedUntilDelivered(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	s := newServer(t, cfg)
	rc := newReceiver(t, "s3cr3t", func(n int, _ *http.Request) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusNoContent
	})
	h := newHooks()
	h.set("w1", rc.target())
	rec := newLogRecorder()
	n, js := newNotifier(t, s, cfg, h, loggerOf(rec))
	job := webhookJob("ev1", "w1")
	if err := n.EnqueueWebhook(t.Context(), job); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	runInBackground(t, "notifier", n.Run)

	log := waitLog(t, n, "w1", endsWith(notify.ResultDelivered))
	waitEmpty(t, js)

	if got := results(log); got != "[1:failed 2:failed 3:delivered]" {
		t.Fatalf("log = %s, want [1:failed 2:failed 3:delivered]", got)
	}
	for i, want := range []int{500, 500, 204} {
		a := log[i]
		if a.StatusCode != want {
			t.Errorf("attempt %d: status %d, want %d", a.Attempt, a.StatusCode, want)
		}
		if a.DeliveryID != job.DeliveryID || a.WebhookID != "w1" || a.EventID != "ev1" || a.EventType != job.EventType || a.App != "shop" {
			t.Errorf("attempt %d: %+v does not name the job", a.Attempt, a)
		}
		if a.Time.IsZero() || a.Time.Location() != time.UTC {
			t.Errorf("attempt %d: time %v, want a UTC time", a.Attempt, a.Time)
		}
	}
	for _, a := range log[:2] {
		if !strings.Contains(a.Error, "status 500") || !strings.Contains(a.Error, "receiver says no") {
			t.Errorf("attempt %d: error %q, want the status and the answer", a.Attempt, a.Error)
		}
		if a.NextAttemptAt == nil || !a.NextAttemptAt.After(a.Time) {
			t.Errorf("attempt %d: next attempt at %v, want after %v", a.Attempt, a.NextAttemptAt, a.Time)
		}
	}
	if last := log[2]; last.Error != "" || last.NextAttemptAt != nil {
		t.Errorf("delivered attempt: error %q, next attempt %v, want neither", last.Error, last.NextAttemptAt)
	}

	reqs := rc.requests()
	if len(reqs) != 3 {
		t.Fatalf("receiver got %d requests, want 3", len(reqs))
	}
	for i, r := range reqs {
		if !r.signatureOK {
			t.Errorf("request %d: signature does not verify", i+1)
		}
		if r.body != string(job.Body) || r.contentType != "application/json" || r.userAgent != notify.DefaultUserAgent ||
			r.event != job.EventType || r.delivery != job.DeliveryID || r.attempt != strconv.Itoa(i+1) || r.path != "/hook" {
			t.Errorf("request %d: %+v", i+1, r)
		}
	}
	if ok := countStatus(reqs, 204); ok != 1 {
		t.Errorf("%d successful requests, want 1", ok)
	}

	// Deliveries returns the newest entries, oldest first.
	last2, err := n.Deliveries(t.Context(), "w1", 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := results(last2); got != "[2:failed 3:delivered]" {
		t.Errorf("Deliveries(limit 2) = %s, want [2:failed 3:delivered]", got)
	}
	none, err := n.Deliveries(t.Context(), "w2", 10)
	if err != nil || none == nil || len(none) != 0 {
		t.Errorf("Deliveries of a webhook without log = %v, %v; want an empty slice", none, err)
	}
	for _, bad := range []struct {
		id    string
		limit int
	}{{"w1", 0}, {"w1", -1}, {"w.1", 10}, {"", 10}, {"w>", 10}} {
		if _, err := n.Deliveries(t.Context(), bad.id, bad.limit); domain.Code(err) != domain.CodeInvalidArgument {
			t.Errorf("Deliveries(%q, %d) = %v, want invalid argument", bad.id, bad.limit, err)
		}
	}
	if rec.contains("s3cr3t") {
		t.Error("the secret was logged")
	}
}

func TestWebhookDeliveryResumesAfterRestart(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Backoff, cfg.MaxBackoff = 100*time.Millisecond, 200*time.Millisecond
	s := newServer(t, cfg)
	accept := make(chan struct{})
	rc := newReceiver(t, "s3cr3t", func(int, *http.Request) int {
		select {
		case <-accept:
			return http.StatusOK
		default:
			return http.StatusBadGateway
		}
	})
	h := newHooks()
	h.set("w1", rc.target())

	a, _ := newNotifier(t, s, cfg, h, nil)
	if err := a.EnqueueWebhook(t.Context(), webhookJob("ev1", "w1")); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	stopA := runInBackground(t, "notifier A", a.Run)
	waitLog(t, a, "w1", endsWith(notify.ResultFailed))
	stopA()
	// A has stopped: whatever is delivered from now on is B's work.
	close(accept)

	b, js := newNotifier(t, s, cfg, h, nil)
	runInBackground(t, "notifier B", b.Run)
	log := waitLog(t, b, "w1", endsWith(notify.ResultDelivered))
	waitEmpty(t, js)

	if len(log) < 2 || log[0].Result != notify.ResultFailed || log[0].StatusCode != http.StatusBadGateway {
		t.Fatalf("log = %s, want a failed first attempt (502) and then the delivery", results(log))
	}
	t.Logf("log across the restart: %s", results(log))
	checkAttempts(t, log)
	for _, e := range log[:len(log)-1] {
		if e.Result != notify.ResultFailed {
			t.Errorf("log = %s, want only failures before the delivery", results(log))
		}
	}
	reqs := rc.requests()
	if ok := countStatus(reqs, http.StatusOK); ok != 1 {
		t.Fatalf("%d successful requests, want 1", ok)
	}
	if got, want := reqs[len(reqs)-1].attempt, strconv.Itoa(log[len(log)-1].Attempt); got != want {
		t.Errorf("the delivered request says attempt %s, the log %s", got, want)
	}
}

func TestWebhookGivesUpAfterRetryFor(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.RetryFor = 300 * time.Millisecond
	s := newServer(t, cfg)
	rc := newReceiver(t, "s3cr3t", func(int, *http.Request) int { return http.StatusInternalServerError })
	h := newHooks()
	h.set("w1", rc.target())
	n, js := newNotifier(t, s, cfg, h, nil)
	start := time.Now()
	if err := n.EnqueueWebhook(t.Context(), webhookJob("ev1", "w1")); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	runInBackground(t, "notifier", n.Run)

	log := waitLog(t, n, "w1", endsWith(notify.ResultGaveUp))
	waitEmpty(t, js)

	if len(log) < 2 {
		t.Fatalf("log = %s, want retries before giving up", results(log))
	}
	checkAttempts(t, log)
	for _, a := range log[:len(log)-1] {
		if a.Result != notify.ResultFailed || a.NextAttemptAt == nil {
			t.Errorf("attempt %d: %s, next %v; want failed with a next attempt", a.Attempt, a.Result, a.NextAttemptAt)
		}
	}
	last := log[len(log)-1]
	if last.NextAttemptAt != nil || last.StatusCode != 500 {
		t.Errorf("last attempt: next %v, status %d; want no next attempt, 500", last.NextAttemptAt, last.StatusCode)
	}
	if last.Time.Sub(start) < cfg.RetryFor {
		t.Errorf("gave up %s after the enqueue, before RetryFor %s", last.Time.Sub(start), cfg.RetryFor)
	}
	if got := len(rc.requests()); got != len(log) {
		t.Errorf("receiver got %d requests, the log has %d attempts", got, len(log))
	}
}

func TestWebhookGoneGivesUpAtOnce(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	s := newServer(t, cfg)
	rc := newReceiver(t, "s3cr3t", func(int, *http.Request) int { return http.StatusGone })
	h := newHooks()
	h.set("w1", rc.target())
	n, js := newNotifier(t, s, cfg, h, nil)
	if err := n.EnqueueWebhook(t.Context(), webhookJob("ev1", "w1")); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	runInBackground(t, "notifier", n.Run)
	log := waitLog(t, n, "w1", endsWith(notify.ResultGaveUp))
	waitEmpty(t, js)
	if got := results(log); got != "[1:gave_up]" || log[0].StatusCode != http.StatusGone {
		t.Errorf("log = %s (status %d), want [1:gave_up] with 410", got, log[0].StatusCode)
	}
	if got := len(rc.requests()); got != 1 {
		t.Errorf("receiver got %d requests, want 1", got)
	}
}

func TestWebhookRedirectIsNotFollowed(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.RetryFor = 200 * time.Millisecond
	s := newServer(t, cfg)
	rc := newReceiver(t, "s3cr3t", func(_ int, r *http.Request) int {
		if r.URL.Path == "/elsewhere" {
			return http.StatusOK
		}
		return http.StatusFound
	})
	h := newHooks()
	h.set("w1", rc.target())
	n, js := newNotifier(t, s, cfg, h, nil)
	if err := n.EnqueueWebhook(t.Context(), webhookJob("ev1", "w1")); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	runInBackground(t, "notifier", n.Run)
	log := waitLog(t, n, "w1", endsWith(notify.ResultGaveUp))
	waitEmpty(t, js)
	if log[0].StatusCode != http.StatusFound || !strings.Contains(log[0].Error, "redirect not followed") {
		t.Errorf("first attempt: status %d, error %q; want 302, redirect not followed", log[0].StatusCode, log[0].Error)
	}
	for _, r := range rc.requests() {
		if r.path != "/hook" {
			t.Errorf("the redirect to %s was followed", r.path)
		}
	}
}

func TestWebhookURLMustBeHTTP(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	s := newServer(t, cfg)
	h := newHooks()
	h.set("w1", notify.WebhookTarget{URL: "file:///etc/passwd", Secret: []byte("s")})
	n, js := newNotifier(t, s, cfg, h, nil)
	if err := n.EnqueueWebhook(t.Context(), webhookJob("ev1", "w1")); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	runInBackground(t, "notifier", n.Run)
	log := waitLog(t, n, "w1", endsWith(notify.ResultGaveUp))
	waitEmpty(t, js)
	if got := results(log); got != "[1:gave_up]" || !strings.Contains(log[0].Error, "http") {
		t.Errorf("log = %s (%q), want [1:gave_up] for a non-http URL", got, log[0].Error)
	}
}

func TestRemovedWebhookIsDropped(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	s := newServer(t, cfg)
	rc := newReceiver(t, "s3cr3t", nil)
	h := newHooks()
	h.set("w1", rc.target())
	n, js := newNotifier(t, s, cfg, h, nil)
	// w2 is not (or no longer) registered.
	if err := n.EnqueueWebhook(t.Context(), webhookJob("ev1", "w2")); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	runInBackground(t, "notifier", n.Run)
	log := waitLog(t, n, "w2", endsWith(notify.ResultDropped))
	waitEmpty(t, js)
	if got := results(log); got != "[1:dropped]" {
		t.Errorf("log = %s, want [1:dropped]", got)
	}
	if got := len(rc.requests()); got != 0 {
		t.Errorf("receiver got %d requests, want none", got)
	}
}

func TestWebhookLookupErrorIsRetried(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	s := newServer(t, cfg)
	rc := newReceiver(t, "s3cr3t", nil)
	h := newHooks()
	h.set("w1", rc.target())
	h.fail = 1
	rec := newLogRecorder()
	n, js := newNotifier(t, s, cfg, h, loggerOf(rec))
	if err := n.EnqueueWebhook(t.Context(), webhookJob("ev1", "w1")); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	runInBackground(t, "notifier", n.Run)
	log := waitLog(t, n, "w1", endsWith(notify.ResultDelivered))
	waitEmpty(t, js)
	if got := results(log); got != "[1:failed 2:delivered]" || log[0].Error != "internal error: webhook lookup failed" {
		t.Errorf("log = %s (%q), want [1:failed 2:delivered] with an internal error", got, log[0].Error)
	}
	if strings.Contains(log[0].Error, "registry unavailable") {
		t.Error("the lookup's own error reached the delivery log")
	}
	if len(rec.records("look up webhook")) != 1 {
		t.Error("the lookup error was not logged")
	}
}

func TestEnqueueTwiceDeliversOnce(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	s := newServer(t, cfg)
	rc := newReceiver(t, "s3cr3t", nil)
	h := newHooks()
	h.set("w1", rc.target())
	n, js := newNotifier(t, s, cfg, h, nil)
	job := webhookJob("ev1", "w1")
	for i := range 2 {
		if err := n.EnqueueWebhook(t.Context(), job); err != nil {
			t.Fatalf("enqueue %d: %v", i+1, err)
		}
	}
	if got := streamMsgs(t, js); got != 1 {
		t.Fatalf("stream holds %d jobs after enqueuing one twice, want 1", got)
	}
	runInBackground(t, "notifier", n.Run)
	log := waitLog(t, n, "w1", endsWith(notify.ResultDelivered))
	waitEmpty(t, js)
	if got := results(log); got != "[1:delivered]" {
		t.Errorf("log = %s, want [1:delivered]", got)
	}
	if got := len(rc.requests()); got != 1 {
		t.Errorf("receiver got %d requests, want 1", got)
	}
	// Within the duplicate window, also a delivered job is not stored again.
	if err := n.EnqueueWebhook(t.Context(), job); err != nil {
		t.Fatalf("enqueue again: %v", err)
	}
	if got := streamMsgs(t, js); got != 0 {
		t.Errorf("stream holds %d jobs after enqueuing a delivered one again, want 0", got)
	}
}

func TestEnqueueRefusesInvalidJobs(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	s := newServer(t, cfg)
	n, js := newNotifier(t, s, cfg, newHooks(), nil)
	hook := func(f func(j *notify.WebhookJob)) notify.WebhookJob {
		j := webhookJob("ev1", "w1")
		f(&j)
		return j
	}
	webhooks := map[string]notify.WebhookJob{
		"no delivery id":        hook(func(j *notify.WebhookJob) { j.DeliveryID = "" }),
		"no webhook id":         hook(func(j *notify.WebhookJob) { j.WebhookID = "" }),
		"webhook id with a dot": hook(func(j *notify.WebhookJob) { j.WebhookID = "a.b" }),
		"webhook id wildcard":   hook(func(j *notify.WebhookJob) { j.WebhookID = "*" }),
		"no event id":           hook(func(j *notify.WebhookJob) { j.EventID = "" }),
		"no event type":         hook(func(j *notify.WebhookJob) { j.EventType = "" }),
		"event type injection":  hook(func(j *notify.WebhookJob) { j.EventType = "a\r\nX-Evil: 1" }),
		"bad app":               hook(func(j *notify.WebhookJob) { j.App = "Shop!" }),
		"body not JSON":         hook(func(j *notify.WebhookJob) { j.Body = []byte("{") }),
		"no body":               hook(func(j *notify.WebhookJob) { j.Body = nil }),
		"delivery id with CRLF": hook(func(j *notify.WebhookJob) { j.DeliveryID = "a\r\nb" }),
	}
	for name, j := range webhooks {
		if err := n.EnqueueWebhook(t.Context(), j); domain.Code(err) != domain.CodeInvalidArgument {
			t.Errorf("%s: EnqueueWebhook = %v, want invalid argument", name, err)
		}
	}
	mail := func(f func(j *notify.EmailJob)) notify.EmailJob {
		j := emailJob("ev1")
		f(&j)
		return j
	}
	emails := map[string]notify.EmailJob{
		"no id":                 mail(func(j *notify.EmailJob) { j.ID = "" }),
		"no recipients":         mail(func(j *notify.EmailJob) { j.To = nil }),
		"bad recipient":         mail(func(j *notify.EmailJob) { j.To = []string{"not an address"} }),
		"recipient injection":   mail(func(j *notify.EmailJob) { j.To = []string{"a@example.com\r\nBcc: x@example.com"} }),
		"subject injection":     mail(func(j *notify.EmailJob) { j.Subject = "Hi\r\nBcc: x@example.com" }),
		"subject bare LF":       mail(func(j *notify.EmailJob) { j.Subject = "Hi\nBcc: x@example.com" }),
		"subject not UTF-8":     mail(func(j *notify.EmailJob) { j.Subject = "\xff" }),
		"body not UTF-8":        mail(func(j *notify.EmailJob) { j.Body = "\xfe" }),
		"no event type":         mail(func(j *notify.EmailJob) { j.EventType = "" }),
		"id not a message id":   mail(func(j *notify.EmailJob) { j.ID = "a b@c" }),
		"too many recipients":   mail(func(j *notify.EmailJob) { j.To = manyRecipients(notify.MaxRecipients + 1) }),
		"subject far too long ": mail(func(j *notify.EmailJob) { j.Subject = strings.Repeat("x", notify.MaxSubjectLen+1) }),
	}
	for name, j := range emails {
		err := n.EnqueueEmail(t.Context(), j)
		if domain.Code(err) != domain.CodeInvalidArgument {
			t.Errorf("%s: EnqueueEmail = %v, want invalid argument", name, err)
		}
		var de *domain.Error
		if !errors.As(err, &de) {
			t.Errorf("%s: %v is not a *domain.Error", name, err)
		}
	}
	if got := streamMsgs(t, js); got != 0 {
		t.Errorf("stream holds %d jobs, want none", got)
	}
}

func TestUndecodableJobIsTerminated(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	s := newServer(t, cfg)
	rec := newLogRecorder()
	n, js := newNotifier(t, s, cfg, newHooks(), loggerOf(rec))
	for subject, body := range map[string]string{
		"notify.webhook.w1":     "not json",
		"notify.webhook.w2":     `{"delivery_id":"x.w1","webhook_id":"w1","event_id":"x","event_type":"t","body":{}}`, // wrong subject
		notify.SubjectEmail:     `{"id":"x.email","to":[]}`,
		"notify.something.else": `{}`,
	} {
		if _, err := js.Publish(t.Context(), subject, []byte(body)); err != nil {
			t.Fatalf("publish on %s: %v", subject, err)
		}
	}
	runInBackground(t, "notifier", n.Run)
	waitEmpty(t, js)
	if got := len(rec.records("terminate undecodable notification job")); got != 4 {
		t.Errorf("%d undecodable jobs logged, want 4", got)
	}
}

func TestRunHandsBackOnStop(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	s := newServer(t, cfg)
	started := make(chan struct{}, 10)
	release := make(chan struct{})
	rc := newReceiver(t, "s3cr3t", func(_ int, r *http.Request) int {
		select {
		case <-release:
			return http.StatusOK
		default:
		}
		started <- struct{}{}
		// Hang until the notifier gives up on the request.
		select {
		case <-r.Context().Done():
		case <-release:
		}
		return http.StatusServiceUnavailable
	})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	h := newHooks()
	h.set("w1", rc.target())
	a, js := newNotifier(t, s, cfg, h, nil)
	if err := a.EnqueueWebhook(t.Context(), webhookJob("ev1", "w1")); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	stopA := runInBackground(t, "notifier A", a.Run)
	select {
	case <-started:
	case <-time.After(wait):
		t.Fatal("the delivery did not start")
	}
	begin := time.Now()
	stopA()
	if took := time.Since(begin); took > 5*time.Second {
		t.Errorf("Run took %s to stop, want at most about 3s", took)
	}
	// The interrupted delivery is neither logged nor lost.
	log, err := a.Deliveries(t.Context(), "w1", 10)
	if err != nil || len(log) != 0 {
		t.Errorf("log after the interrupted delivery = %s, %v; want empty", results(log), err)
	}
	if got := streamMsgs(t, js); got != 1 {
		t.Fatalf("stream holds %d jobs after the hand-back, want 1", got)
	}

	close(release)
	b, _ := newNotifier(t, s, cfg, h, nil)
	runInBackground(t, "notifier B", b.Run)
	log = waitLog(t, b, "w1", endsWith(notify.ResultDelivered))
	waitEmpty(t, js)
	if len(log) != 1 || log[0].Attempt < 2 {
		t.Errorf("log = %s, want one delivery on a later attempt", results(log))
	}
}

// countStatus counts the requests answered with status.
func countStatus(reqs []request, status int) int {
	n := 0
	for _, r := range reqs {
		if r.status == status {
			n++
		}
	}
	return n
}

// manyRecipients returns n distinct addresses.
func manyRecipients(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("user%d@example.com", i)
	}
	return out
}

func TestBackoffDoublesUpToMaxWithJitter(t *testing.T) {
	t.Parallel()
	cfg := notify.Config{Backoff: time.Second, MaxBackoff: 10 * time.Second}
	n, err := notify.New(nil, cfg, newHooks(), nil)
	if err == nil {
		t.Fatal("New without a jetstream context = nil error")
	}
	s := natstest.Server(t, "")
	_, js := natstest.Connect(t, s)
	if n, err = notify.New(js, cfg, newHooks(), nil); err != nil {
		t.Fatal(err)
	}
	for attempt, base := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 5: 10 * time.Second, 60: 10 * time.Second} {
		for range 20 {
			if d := notify.Backoff(n, attempt); d > base || d < base*8/10 {
				t.Errorf("backoff after attempt %d = %s, want %s less at most 20%%", attempt, d, base)
			}
		}
	}
}

func TestSlowDeliveryKeepsItsJob(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	s := newServer(t, cfg)
	// An ack wait far below the POST: only the heartbeat keeps the job from
	// being delivered again meanwhile.
	_, admin := natstest.Connect(t, s)
	cc := notify.ConsumerConfig(cfg)
	cc.AckWait = time.Second
	if _, err := admin.CreateOrUpdateConsumer(t.Context(), notify.StreamName, cc); err != nil {
		t.Fatal(err)
	}
	rc := newReceiver(t, "s3cr3t", func(int, *http.Request) int {
		<-time.After(2500 * time.Millisecond) // a slow receiver
		return http.StatusOK
	})
	h := newHooks()
	h.set("w1", rc.target())
	n, js := newNotifier(t, s, cfg, h, nil)
	if err := n.EnqueueWebhook(t.Context(), webhookJob("ev1", "w1")); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	runInBackground(t, "notifier", n.Run)
	log := waitLog(t, n, "w1", endsWith(notify.ResultDelivered))
	waitEmpty(t, js)
	if got := results(log); got != "[1:delivered]" {
		t.Errorf("log = %s, want [1:delivered]", got)
	}
	if got := len(rc.requests()); got != 1 {
		t.Errorf("receiver got %d requests, want 1", got)
	}
}
