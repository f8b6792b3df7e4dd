package test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/test/natstest"
)

// scrape fetches /metrics from the metrics listener, with the scrape
// token, as Prometheus does, and parses it.
func (n *node) scrape() ([]byte, map[string]*dto.MetricFamily) {
	n.t.Helper()
	status, body := n.getMetrics("Bearer " + metricsToken)
	if status != http.StatusOK {
		n.t.Fatalf("GET %s: %d %s", n.d.MetricsURL(), status, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		n.t.Fatalf("parse /metrics: %v", err)
	}
	return body, fams
}

// getMetrics sends GET /metrics to the metrics listener with the
// Authorization header auth (none when empty).
func (n *node) getMetrics(auth string) (int, []byte) {
	n.t.Helper()
	if n.d.MetricsURL() == "" {
		n.t.Fatal("the node serves no metrics")
	}
	req, err := http.NewRequest("GET", n.d.MetricsURL(), nil)
	if err != nil {
		n.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatalf("GET %s: %v", n.d.MetricsURL(), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		n.t.Fatal(err)
	}
	return resp.StatusCode, b
}

// value returns the value of the sample of family name whose labels
// include want (name=value pairs), and whether there is one.
func value(fams map[string]*dto.MetricFamily, name string, want ...string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for i := 0; i+1 < len(want); i += 2 {
			if labels[want[i]] != want[i+1] {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// After some traffic, /metrics passes promtool's checks and its values
// moved as they should.
func TestMetrics(t *testing.T) {
	n := startNode(t, t.TempDir(), nil, nil)
	_, before := n.scrape()
	for _, name := range []string{"backupledger_backups_finished_total", "backupledger_backups", "backupledger_projection_applied_sequence",
		"backupledger_nats_jetstream_storage_bytes", "go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := before[name]; !ok {
			t.Errorf("no %s before any traffic", name)
		}
	}
	if v, ok := value(before, "backupledger_backups_finished_total", "result", "failed", "origin", "manual"); !ok || v != 0 {
		t.Errorf("failed backups before any: %v %v", v, ok)
	}

	n.putConfig("crm", "app.json", `{"v":1}`)
	b := n.waitStatus("crm", n.createBackup("crm", map[string]any{}).ID, 20*time.Second, domain.StatusReady)
	n.must(http.StatusConflict, "POST", "/v1/apps/crm/backups", map[string]any{}) // backup_too_soon
	n.download("crm", b, "")

	var raw []byte
	var fams map[string]*dto.MetricFamily
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		raw, fams = n.scrape()
		if lag, ok := value(fams, "backupledger_projection_lag_events"); !ok || lag != 0 {
			return fmt.Errorf("projection lag %v (%v)", lag, ok)
		}
		return nil
	})
	checks := []struct {
		name   string
		labels []string
		want   func(float64) bool
		what   string
	}{
		{"backupledger_commands_total", []string{"command", "backup.request", "result", "ok"}, eq(1), "1 backup requested"},
		{"backupledger_commands_total", []string{"command", "backup.request", "result", "refused"}, eq(1), "1 refused as too soon"},
		{"backupledger_command_duration_seconds", []string{"command", "backup.complete"}, eq(1), "1 completion timed"},
		{"backupledger_events_appended_total", []string{"type", domain.TypeBackupCompleted}, eq(1), "1 backup.completed appended"},
		{"backupledger_backups", []string{"status", "ready"}, eq(1), "1 ready backup"},
		{"backupledger_backups", []string{"status", "queued"}, eq(0), "none queued"},
		{"backupledger_backups_finished_total", []string{"result", "ready", "origin", "manual"}, eq(1), "1 manual backup finished"},
		{"backupledger_backup_duration_seconds", []string{"result", "ready"}, eq(1), "1 backup duration"},
		{"backupledger_archive_written_bytes_total", nil, eq(float64(b.SizeBytes)), "the archive's bytes written"},
		{"backupledger_archive_read_bytes_total", nil, atLeast(float64(b.SizeBytes)), "at least the archive read back once"},
		{"backupledger_last_successful_backup_timestamp_seconds", []string{"app", "crm"},
			func(v float64) bool { return b.CompletedAt != nil && v == float64(b.CompletedAt.UnixMilli())/1000 }, "crm's backup time"},
		{"backupledger_nightly_enabled", []string{"app", "crm"}, eq(0), "crm has no nightly backups"},
		{"backupledger_projection_applied_sequence", nil, eq(float64(n.lastSeq())), "the stream's last sequence"},
		{"backupledger_jobs_in_flight", nil, eq(0), "no job running"},
		{"backupledger_restores_in_progress", nil, eq(0), "no restore running"},
		{"backupledger_http_requests_total", []string{"method", "post", "code", "202"}, eq(1), "1 accepted POST"},
		{"backupledger_http_requests_total", []string{"method", "post", "code", "409"}, eq(1), "1 refused POST"},
		{"backupledger_nats_jetstream_storage_bytes", nil, atLeast(float64(b.SizeBytes)), "the embedded server's storage"},
		{"backupledger_webhook_deliveries_total", []string{"result", "delivered"}, eq(0), "no webhook"},
	}
	for _, c := range checks {
		v, ok := value(fams, c.name, c.labels...)
		if !ok || !c.want(v) {
			t.Errorf("%s%v = %v (present %v), want %s", c.name, c.labels, v, ok, c.what)
		}
	}
	for name := range fams {
		if !strings.HasPrefix(name, "backupledger_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") &&
			!strings.HasPrefix(name, "promhttp_") {
			t.Errorf("metric %s has no known prefix", name)
		}
	}
	promtool(t, raw)
}

func eq(want float64) func(float64) bool { return func(v float64) bool { return v == want } }

func atLeast(want float64) func(float64) bool { return func(v float64) bool { return v >= want } }

// promtool runs `promtool check metrics` on text, in a subtest that
// skips without promtool (except in CI, which installs it).
func promtool(t *testing.T, text []byte) {
	t.Helper()
	t.Run("promtool check metrics", func(t *testing.T) {
		cmd := exec.Command(promtoolPath(t), "check", "metrics")
		cmd.Stdin = bytes.NewReader(text)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("promtool check metrics: %v\n%s", err, out)
		}
	})
}
