package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/jetstream"
	"github.com/backupledger/backupledger/cmd/backupd/daemon"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
	"github.com/backupledger/backupledger/test/natstest"
)

// The cluster tests run backupd replicas (in-process) on a real three-node
// nats-server cluster (in-process, cluster routes on loopback ports, a
// store dir each) and take nodes away under load. Each prints one summary
// line: sent, acknowledged, found, lost, duplicates, the longest answer
// and the 5xx answers by code.

// commandBound is the command bound (--command-timeout) of the cluster
// tests' replicas; answerBound is the longest an answer may take: the bound
// and the time to send the answer.
const (
	commandBound = 2 * time.Second
	answerBound  = commandBound + time.Second
)

// startOnCluster starts a backupd replica on the cluster nodes: --nats-url
// with every node, --replicas 3, no other accounts, the command bound of
// the tests.
func startOnCluster(t *testing.T, nodes []*natstest.Node, tune func(*daemon.Config)) *node {
	t.Helper()
	urls := make([]string, len(nodes))
	for i, nd := range nodes {
		urls[i] = nd.ClientURL()
	}
	logs := &lockedBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs of the replica:\n%s", logs.String())
		}
	})
	return startNode(t, t.TempDir(), func(c *daemon.Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
		c.NATS.URL = strings.Join(urls, ",")
		c.NATS.Replicas = 3
		c.NATS.StagingAPI, c.NATS.AuditAPI = daemon.APINone, daemon.APINone
		c.Ledger.CommandTimeout = commandBound
		if tune != nil {
			tune(c)
		}
	}, nil)
}

// loadStats counts what a load sent and what came back.
type loadStats struct {
	mu      sync.Mutex
	sent    int
	acked   map[string]bool // idempotency key → acknowledged
	byCode  map[string]int  // 5xx answers by code
	longest time.Duration
	bad     []string // answers that break a rule of the test
}

func newLoadStats() *loadStats {
	return &loadStats{acked: map[string]bool{}, byCode: map[string]int{}}
}

// summary is the test's one summary line.
func (s *loadStats) summary(found, lost, dups int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("sent %d, acknowledged %d, found %d, lost %d, duplicates %d, longest answer %s, 5xx %v",
		s.sent, len(s.acked), found, lost, dups, s.longest.Round(time.Millisecond), s.byCode)
}

// answer is one answer to a command of the load.
type answer struct {
	status     int
	problem    problem
	retryAfter string
	took       time.Duration
	err        error
}

// clusterProblem is a problem document with the fields the cluster tests
// look at.
type clusterProblem struct {
	problem
	Recorded string `json:"recorded"`
}

// rename sends one rename of backup id of app to n with the idempotency
// key key, and records its answer in s. It does not fail the test: it runs
// in the load's goroutines.
func (s *loadStats) rename(client *http.Client, n *node, app, id, key, name string) answer {
	body, _ := json.Marshal(map[string]string{"name": name})
	req, err := http.NewRequest("PATCH", n.base+"/v1/apps/"+app+"/backups/"+id, bytes.NewReader(body))
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	start := time.Now()
	resp, err := client.Do(req)
	a := answer{took: time.Since(start), err: err}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent++
	s.longest = max(s.longest, a.took)
	if err != nil {
		s.bad = append(s.bad, fmt.Sprintf("%s: %v", key, err))
		return a
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a.status, a.retryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
	switch {
	case a.status == http.StatusOK:
		s.acked[key] = true
	case a.status >= 500:
		var p clusterProblem
		_ = json.Unmarshal(raw, &p)
		a.problem = p.problem
		s.byCode[fmt.Sprintf("%d %s", a.status, p.Code)]++
		if a.status != http.StatusServiceUnavailable || p.Code != domain.CodeUnavailable || a.retryAfter == "" || p.Recorded == "" {
			s.bad = append(s.bad, fmt.Sprintf("%s: %d %s (Retry-After %q, recorded %q): %s", key, a.status, p.Code, a.retryAfter, p.Recorded, raw))
		}
	default:
		s.bad = append(s.bad, fmt.Sprintf("%s: %d: %s", key, a.status, raw))
	}
	if a.took > answerBound {
		s.bad = append(s.bad, fmt.Sprintf("%s: answered after %s, over the bound %s", key, a.took.Round(time.Millisecond), answerBound))
	}
	return a
}

// check fails the test with the answers that broke a rule.
func (s *loadStats) check(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, b := range s.bad {
		if i == 20 {
			t.Errorf("... and %d more", len(s.bad)-20)
			break
		}
		t.Error(b)
	}
}

// ledgerCommands returns how often each command id appears in the ledger
// stream, read from its first message with n's client. A read that fails
// (a node just came back) starts again after the last message read, for
// at most a minute.
func ledgerCommands(t *testing.T, n *node) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	counts := map[string]int{}
	var seq, last uint64
	natstest.CheckFor(t, 60*time.Second, 200*time.Millisecond, func() error {
		st, err := n.js.Stream(ctx, jetstream.StreamName)
		if err != nil {
			return err
		}
		last = st.CachedInfo().State.LastSeq
		if seq >= last {
			return nil
		}
		cons, err := n.js.OrderedConsumer(ctx, jetstream.StreamName, njs.OrderedConsumerConfig{
			DeliverPolicy: njs.DeliverByStartSequencePolicy, OptStartSeq: seq + 1})
		if err != nil {
			return err
		}
		for seq < last {
			msg, err := cons.Next(njs.FetchMaxWait(10 * time.Second))
			if err != nil {
				return fmt.Errorf("read the ledger after seq %d of %d: %w", seq, last, err)
			}
			md, err := msg.Metadata()
			if err != nil {
				return err
			}
			seq = md.Sequence.Stream
			var env domain.Envelope
			if err := json.Unmarshal(msg.Data(), &env); err == nil {
				counts[env.CommandID]++
			}
		}
		return nil
	})
	return counts
}

// lostAndDuplicated compares the acknowledged keys with the ledger.
func lostAndDuplicated(acked map[string]bool, counts map[string]int) (found, lost, dups int) {
	for key := range acked {
		switch c := counts[key]; {
		case c == 0:
			lost++
		case c > 1:
			dups++
			found++
		default:
			found++
		}
	}
	return found, lost, dups
}

// readyBackup makes one ready backup of app on n and returns its id.
func readyBackup(t *testing.T, n *node, app string) string {
	t.Helper()
	n.ensureApp(app)
	b := n.createBackup(app, map[string]any{})
	n.waitStatus(app, b.ID, 60*time.Second, domain.StatusReady)
	return b.ID
}

// backupNames returns the names of app's backups as n's projection has
// them.
func backupNames(t *testing.T, n *node, app string) map[string]string {
	t.Helper()
	var list struct {
		Backups []projections.BackupView `json:"backups"`
	}
	n.must(http.StatusOK, "GET", "/v1/apps/"+app+"/backups", nil).json(t, &list)
	out := map[string]string{}
	for _, b := range list.Backups {
		out[b.ID] = b.Name
	}
	return out
}

// waitReadyz waits until n's /readyz answers want, or fails the test after
// total.
func waitReadyz(t *testing.T, n *node, want int, total time.Duration) {
	t.Helper()
	natstest.CheckFor(t, total, 100*time.Millisecond, func() error {
		if r := n.do("GET", "/readyz", nil); r.status != want {
			return fmt.Errorf("/readyz: %d %s, want %d", r.status, r.body, want)
		}
		return nil
	})
}

// TestClusterQuorumLoss takes two of three nodes away: commands fail fast
// with 503 unavailable (Retry-After, recorded), reads keep answering, and
// once one node is back everything resumes without restarting backupd.
// Every acknowledged command is in the ledger exactly once.
func TestClusterQuorumLoss(t *testing.T) {
	nodes := natstest.NewCluster(t, 3)
	n := startOnCluster(t, nodes, nil)
	id := readyBackup(t, n, "crm")
	stats := newLoadStats()
	client := &http.Client{Timeout: 30 * time.Second}
	for i := range 10 {
		key := fmt.Sprintf("before-%d", i)
		if a := stats.rename(client, n, "crm", id, key, key); a.status != http.StatusOK {
			t.Fatalf("rename %s before the fault: %d %+v %v", key, a.status, a.problem, a.err)
		}
	}

	nodes[1].Shutdown()
	nodes[2].Shutdown()
	var failed []string
	for i := range 10 {
		key := fmt.Sprintf("during-%d", i)
		if a := stats.rename(client, n, "crm", id, key, key); a.status != http.StatusOK {
			failed = append(failed, key)
		}
		// Reads answer from the projection meanwhile.
		if r := n.do("GET", "/v1/apps/crm/backups/"+id, nil); r.status != http.StatusOK {
			t.Errorf("read during the quorum loss: %d %s", r.status, r.body)
		}
	}
	if len(failed) == 0 {
		t.Error("every command succeeded without a quorum")
	}
	waitReadyz(t, n, http.StatusServiceUnavailable, 30*time.Second)

	nodes[1].Restart()
	waitReadyz(t, n, http.StatusOK, 90*time.Second)
	// The failed commands go through once the quorum is back, retried with
	// their keys, without restarting backupd.
	deadline := time.Now().Add(90 * time.Second)
	for _, key := range failed {
		for {
			a := stats.rename(client, n, "crm", id, key, key)
			if a.status == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still not acknowledged 90 s after the quorum came back: %d %+v %v", key, a.status, a.problem, a.err)
			}
			time.Sleep(200 * time.Millisecond) // the client's retry pause, not synchronisation
		}
	}
	for i := range 5 {
		key := fmt.Sprintf("after-%d", i)
		if a := stats.rename(client, n, "crm", id, key, key); a.status != http.StatusOK {
			t.Fatalf("rename %s after the fault: %d %+v %v", key, a.status, a.problem, a.err)
		}
	}
	counts := ledgerCommands(t, n)
	found, lost, dups := lostAndDuplicated(stats.acked, counts)
	t.Log("summary: " + stats.summary(found, lost, dups))
	if lost != 0 || dups != 0 {
		t.Errorf("lost %d, duplicated %d acknowledged commands", lost, dups)
	}
	stats.check(t)
	if got := backupNames(t, n, "crm")[id]; got != "after-4" {
		t.Errorf("name = %q, want the last rename after-4", got)
	}
}

// TestStartBeforeNATS starts backupd on a cluster that is not up yet: it
// logs each failed try, keeps trying, and starts once the server does;
// with nothing to reach it gives up after --nats-connect-timeout.
func TestStartBeforeNATS(t *testing.T) {
	port := natstest.FreePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	logs := &lockedBuffer{}
	started := make(chan error, 1)
	cfg := nodeConfig(t.TempDir(), func(c *daemon.Config) {
		c.NATS.URL = url
		c.NATS.StagingAPI, c.NATS.AuditAPI = daemon.APINone, daemon.APINone
		c.NATS.ConnectTimeout = time.Minute
		c.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	})
	d, err := daemon.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Kill() })
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		started <- d.Start(ctx)
	}()
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if n := strings.Count(logs.String(), "NATS not reachable yet; retrying"); n < 2 {
			return fmt.Errorf("%d retries logged, want 2", n)
		}
		return nil
	})
	natstest.ServerWithOptions(t, &server.Options{Port: port})
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start once NATS is up: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("backupd did not start within a minute of its NATS server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}

	// Nothing to reach: it gives up after the timeout.
	cfg = nodeConfig(t.TempDir(), func(c *daemon.Config) {
		c.NATS.URL = fmt.Sprintf("nats://127.0.0.1:%d", natstest.FreePort(t))
		c.NATS.ConnectTimeout = 1500 * time.Millisecond
	})
	d2, err := daemon.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d2.Kill() })
	start := time.Now()
	err = d2.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no servers available") {
		t.Fatalf("start without NATS = %v, want no servers available", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("gave up after %s, want about the timeout of 1.5s", took)
	}
}
