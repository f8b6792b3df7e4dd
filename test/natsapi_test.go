package test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/backupledger/backupledger/cmd/backupd/daemon"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
)

// producerConn returns the node's client logged in as the producer role.
func (n *node) producerConn() *roleConn {
	n.t.Helper()
	if n.producer == nil {
		n.producer = n.connectAs(daemon.RoleProducer)
	}
	return n.producer
}

// request sends a NATS API request the way any producer would: a plain
// nats.go client logged in as the producer role, with the bearer token in
// a header.
func (n *node) request(subject string, body any, tok string) *nats.Msg {
	n.t.Helper()
	data, err := json.Marshal(body)
	if err != nil {
		n.t.Fatal(err)
	}
	m := nats.NewMsg(subject)
	m.Data = data
	if tok != "" {
		m.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := n.producerConn().nc.RequestMsg(m, 10*time.Second)
	if err != nil {
		n.t.Fatalf("request %s: %v", subject, err)
	}
	return resp
}

func TestNATSAPI(t *testing.T) {
	n := startNode(t, t.TempDir(), nil, nil)
	n.ensureApp("crm")

	resp := n.request("ledger.api.backups.create", map[string]any{"app": "crm", "name": "from a producer", "idempotency_key": "producer-1"}, token)
	if code := resp.Header.Get("Nats-Service-Error-Code"); code != "" {
		t.Fatalf("create answered error %s: %s", code, resp.Data)
	}
	var created projections.BackupView
	if err := json.Unmarshal(resp.Data, &created); err != nil {
		t.Fatalf("decode %s: %v", resp.Data, err)
	}
	if created.App != "crm" || created.Name != "from a producer" || created.Status != "queued" || created.CreatedBy != "admin" {
		t.Fatalf("created = %+v", created)
	}
	n.waitStatus("crm", created.ID, 20*time.Second, domain.StatusReady)

	// The same list over NATS and HTTP.
	resp = n.request("ledger.api.backups.list", map[string]any{"app": "crm"}, token)
	var list projections.BackupList
	if err := json.Unmarshal(resp.Data, &list); err != nil {
		t.Fatalf("decode %s: %v", resp.Data, err)
	}
	if len(list.Backups) != 1 || list.Backups[0].ID != created.ID || list.Backups[0].Status != "ready" {
		t.Fatalf("list = %+v", list)
	}

	// A rule refusal carries its code, the HTTP-like status and the same
	// problem JSON as HTTP; the stream is unchanged.
	before := n.lastSeq()
	resp = n.request("ledger.api.backups.create", map[string]any{"app": "crm"}, token)
	if got := resp.Header.Get("Nats-Service-Error-Code"); got != "409" {
		t.Fatalf("Nats-Service-Error-Code = %q, want 409: %s", got, resp.Data)
	}
	var p problem
	if err := json.Unmarshal(resp.Data, &p); err != nil {
		t.Fatal(err)
	}
	if p.Code != "backup_too_soon" || p.RetryAfterSeconds < 1 {
		t.Errorf("problem = %+v", p)
	}
	if after := n.lastSeq(); after != before {
		t.Errorf("stream moved from %d to %d", before, after)
	}

	// No token, bad input.
	resp = n.request("ledger.api.backups.list", map[string]any{"app": "crm"}, "")
	if got := resp.Header.Get("Nats-Service-Error-Code"); got != "401" {
		t.Errorf("without token: code %q: %s", got, resp.Data)
	}
	resp = n.request("ledger.api.backups.create", map[string]any{"app": "Not Valid"}, token)
	if got := resp.Header.Get("Nats-Service-Error-Code"); got != "400" {
		t.Errorf("invalid app: code %q: %s", got, resp.Data)
	}
	if after := n.lastSeq(); after != before {
		t.Errorf("stream moved from %d to %d on refused requests", before, after)
	}
}
