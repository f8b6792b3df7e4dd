package test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/backupledger/backupledger/cmd/backupd/daemon"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/test/natstest"
)

// logLines parses JSON log lines.
func logLines(t *testing.T, raw string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %v: %s", err, sc.Text())
		}
		out = append(out, m)
	}
	return out
}

// The logs are JSON lines; the request log has the status, the duration
// and what the request concerns; the lines of a backup's work name its
// app and backup; no token appears.
func TestLogsNameWhatTheyConcern(t *testing.T) {
	logs := &lockedBuffer{}
	n := startNode(t, t.TempDir(), func(c *daemon.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}, nil)
	n.putConfig("crm", "app.json", `{"v":1}`)
	var b struct{ ID string }
	n.must(http.StatusAccepted, "POST", "/v1/apps/crm/backups", map[string]any{}, "X-Correlation-Id", "corr-42", "Idempotency-Key", "key-42").json(t, &b)
	n.waitStatus("crm", b.ID, 20*time.Second, domain.StatusReady)
	n.must(http.StatusOK, "GET", "/v1/apps/crm/backups/"+b.ID, nil)

	var lines []map[string]any
	// The worker logs the backup ready after its completion's answer,
	// which may come after the GET's.
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		lines = logLines(t, logs.String())
		var get, ready bool
		for _, l := range lines {
			get = get || l["msg"] == "http request" && l["path"] == "/v1/apps/crm/backups/"+b.ID
			ready = ready || l["msg"] == "backup ready" && l["backup_id"] == b.ID
		}
		if !get || !ready {
			return fmt.Errorf("request log of the GET %v, backup ready logged %v", get, ready)
		}
		return nil
	})
	var post, get, job map[string]any
	for _, l := range lines {
		switch {
		case l["msg"] == "http request" && l["method"] == "POST" && l["path"] == "/v1/apps/crm/backups":
			post = l
		case l["msg"] == "http request" && l["path"] == "/v1/apps/crm/backups/"+b.ID:
			get = l
		case l["backup_id"] == b.ID && l["msg"] != "http request" && l["correlation_id"] != nil:
			job = l
		}
	}
	if post == nil || post["status"] != float64(202) || post["app"] != "crm" || post["command_id"] != "key-42" ||
		post["correlation_id"] != "corr-42" || post["duration"] == nil || post["actor"] == nil {
		t.Errorf("request log of the POST: %v", post)
	}
	if get == nil || get["app"] != "crm" || get["backup_id"] != b.ID || get["status"] != float64(200) {
		t.Errorf("request log of the GET: %v", get)
	}
	if job == nil || job["app"] != "crm" || job["correlation_id"] != "corr-42" {
		t.Errorf("no line of the backup's job with app, backup_id and the request's correlation id: %v", job)
	}
	if strings.Contains(logs.String(), token) {
		t.Error("the admin token is in the logs")
	}
}
