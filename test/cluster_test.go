package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/backupledger/backupledger/adapters/jetstream"
	"github.com/backupledger/backupledger/cmd/backupbench/loadgen"
	"github.com/backupledger/backupledger/cmd/backupd/daemon"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
	"github.com/backupledger/backupledger/service"
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
	return startOnClusterWith(t, nodes, tune, nil)
}

// startOnClusterWith is startOnCluster with the replica's test hooks set
// by hook.
func startOnClusterWith(t *testing.T, nodes []*natstest.Node, tune func(*daemon.Config), hook func(*daemon.TestHooks)) *node {
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
	return startNodeWith(t, t.TempDir(), func(c *daemon.Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
		c.NATS.URL = strings.Join(urls, ",")
		c.NATS.Replicas = 3
		c.NATS.StagingAPI, c.NATS.AuditAPI = daemon.APINone, daemon.APINone
		c.Ledger.CommandTimeout = commandBound
		if tune != nil {
			tune(c)
		}
	}, hook)
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
	backupID   string // of an accepted backup
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
	return s.send(client, n, "PATCH", "/v1/apps/"+app+"/backups/"+id, "application/json", body, key)
}

// send sends one request with body of contentType and the idempotency key key,
// and records its answer in s: acknowledged (2xx), a 5xx by code, and
// whatever breaks a rule of the cluster tests (not a 503 unavailable with
// Retry-After, an error, an answer later than answerBound).
func (s *loadStats) send(client *http.Client, n *node, method, path, contentType string, body []byte, key string) answer {
	req, err := http.NewRequest(method, n.base+path, bytes.NewReader(body))
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", contentType)
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
	out, _ := io.ReadAll(resp.Body)
	a.status, a.retryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
	switch {
	case a.status >= 200 && a.status < 300:
		s.acked[key] = true
		var v struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(out, &v) == nil {
			a.backupID = v.ID
		}
	case a.status >= 500:
		var p clusterProblem
		_ = json.Unmarshal(out, &p)
		a.problem = p.problem
		s.byCode[fmt.Sprintf("%d %s", a.status, p.Code)]++
		if a.status != http.StatusServiceUnavailable || p.Code != domain.CodeUnavailable || a.retryAfter == "" {
			s.bad = append(s.bad, fmt.Sprintf("%s: %d %s (Retry-After %q): %s", key, a.status, p.Code, a.retryAfter, out))
		}
		if method != "PUT" && p.Recorded == "" {
			s.bad = append(s.bad, fmt.Sprintf("%s: a command's 503 without recorded: %s", key, out))
		}
	default:
		s.bad = append(s.bad, fmt.Sprintf("%s: %d: %s", key, a.status, out))
	}
	if a.took > answerBound {
		s.bad = append(s.bad, fmt.Sprintf("%s: answered after %s, over the bound %s", key, a.took.Round(time.Millisecond), answerBound))
	}
	return a
}

// ackedCount returns how many requests were acknowledged so far.
func (s *loadStats) ackedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.acked)
}

// waitAcked waits until n requests were acknowledged, or fails the test
// after a minute.
func (s *loadStats) waitAcked(t *testing.T, n int) {
	t.Helper()
	natstest.CheckFor(t, 60*time.Second, 20*time.Millisecond, func() error {
		if got := s.ackedCount(); got < n {
			return fmt.Errorf("%d requests acknowledged, want %d", got, n)
		}
		return nil
	})
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
// stream, read from its first message with n's client, as `backupbench
// load` checks it (a read that fails goes on after the last message read,
// for at most 90 s).
func ledgerCommands(t *testing.T, n *node) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	counts, err := loadgen.CommandCounts(ctx, n.js, 0)
	if err != nil {
		t.Fatal(err)
	}
	return counts
}

// lostAndDuplicated compares the acknowledged keys with the ledger.
func lostAndDuplicated(acked map[string]bool, counts map[string]int) (found, lost, dups int) {
	c := loadgen.Compare(acked, counts)
	return c.Found, c.Lost, c.Duplicates
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
	checkLedgerAndFolds(t, nodes, []*node{n}, []string{"crm"})
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

// leaderNode returns the node that leads stream, as n's client sees it.
func leaderNode(t *testing.T, n *node, nodes []*natstest.Node, stream string) *natstest.Node {
	t.Helper()
	var leader *natstest.Node
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := n.js.Stream(ctx, stream)
		if err != nil {
			return err
		}
		info := st.CachedInfo()
		if info.Cluster == nil || info.Cluster.Leader == "" {
			return fmt.Errorf("stream %s has no leader", stream)
		}
		for _, nd := range nodes {
			if nd.Name() == info.Cluster.Leader {
				leader = nd
				return nil
			}
		}
		return fmt.Errorf("leader %s is not a node of the cluster", info.Cluster.Leader)
	})
	return leader
}

// renameLoad renames backup id of app on n, one command after the other,
// each with a new key and retried with the same key until acknowledged,
// until stop is closed. It returns the last name acknowledged.
func renameLoad(stats *loadStats, client *http.Client, n *node, app, id, prefix string, stop <-chan struct{}) string {
	var last string
	for i := 0; ; i++ {
		select {
		case <-stop:
			return last
		default:
		}
		key := fmt.Sprintf("%s-%d", prefix, i)
		for attempt := 0; ; attempt++ {
			a := stats.rename(client, n, app, id, key, key)
			if a.status == http.StatusOK {
				last = key
				break
			}
			if attempt > 200 {
				return last // the test fails on the answers it recorded
			}
			time.Sleep(100 * time.Millisecond) // the client's retry pause, not synchronisation
		}
	}
}

// TestClusterStreamLeaderLoss kills the node that leads LEDGER while two
// replicas take commands from four clients, and starts it again: no
// answer is a 500 or takes longer than the bound, every acknowledged
// command is in the ledger exactly once, and both replicas end with the
// state the ledger says.
func TestClusterStreamLeaderLoss(t *testing.T) {
	nodes := natstest.NewCluster(t, 3)
	a := startOnCluster(t, nodes, nil)
	b := startOnCluster(t, nodes, nil)
	apps := []string{"crm", "hr", "wiki", "shop"}
	ids := map[string]string{}
	for _, app := range apps {
		ids[app] = readyBackup(t, a, app)
	}
	stats := newLoadStats()
	client := &http.Client{Timeout: 30 * time.Second}
	stop := make(chan struct{})
	lastNames := make([]string, len(apps))
	var wg sync.WaitGroup
	for i, app := range apps {
		replica := []*node{a, b}[i%2]
		wg.Go(func() { lastNames[i] = renameLoad(stats, client, replica, app, ids[app], app, stop) })
	}
	stats.waitAcked(t, 40)
	leader := leaderNode(t, a, nodes, jetstream.StreamName)
	leader.Shutdown()
	stats.waitAcked(t, stats.ackedCount()+40) // the load goes on with a new leader
	leader.Restart()
	stats.waitAcked(t, stats.ackedCount()+40)
	close(stop)
	wg.Wait()

	counts := ledgerCommands(t, a)
	found, lost, dups := lostAndDuplicated(stats.acked, counts)
	t.Log("summary: " + stats.summary(found, lost, dups))
	if lost != 0 || dups != 0 {
		t.Errorf("lost %d, duplicated %d acknowledged commands", lost, dups)
	}
	stats.check(t)
	// Both replicas hold what the ledger says: each backup's last name.
	for i, app := range apps {
		for _, n := range []*node{a, b} {
			natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
				if got := backupNames(t, n, app)[ids[app]]; got != lastNames[i] {
					return fmt.Errorf("%s: backup of %s named %q, want %q", n.base, app, got, lastNames[i])
				}
				return nil
			})
		}
	}
	checkLedgerAndFolds(t, nodes, []*node{a, b}, apps)
}

// TestClusterBucketLeaderLoss kills the leader of the configuration bucket,
// then of the secrets bucket, while configuration documents are written
// and backups renamed on two replicas, and a backup is made: no answer is
// a 500 or takes longer than the bound, every acknowledged document reads
// back on both replicas, every acknowledged rename is in the ledger once,
// and the backup does not hang.
func TestClusterBucketLeaderLoss(t *testing.T) {
	nodes := natstest.NewCluster(t, 3)
	a := startOnCluster(t, nodes, nil)
	b := startOnCluster(t, nodes, nil)
	id := readyBackup(t, a, "crm")
	b.ensureApp("hr")
	stats := newLoadStats()
	client := &http.Client{Timeout: 30 * time.Second}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var docs []string // acknowledged document keys
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			key := fmt.Sprintf("doc-%d", i)
			for attempt := 0; attempt < 200; attempt++ {
				if r := stats.send(client, a, "PUT", "/v1/apps/crm/config/"+key, "application/octet-stream", []byte("v-"+key), key); r.status/100 == 2 {
					docs = append(docs, key)
					break
				}
				time.Sleep(100 * time.Millisecond) // the client's retry pause, not synchronisation
			}
		}
	})
	var lastName string
	wg.Go(func() { lastName = renameLoad(stats, client, b, "crm", id, "rename", stop) })
	stats.waitAcked(t, 20)
	var backupID string
	for _, bucket := range []string{"KV_ledger_config", "KV_ledger_secrets"} {
		leader := leaderNode(t, a, nodes, bucket)
		leader.Shutdown()
		if backupID == "" {
			// A backup made while the configuration bucket elects a leader,
			// retried with its key as any client would.
			for attempt := 0; backupID == ""; attempt++ {
				r := stats.send(client, b, "POST", "/v1/apps/hr/backups", "application/json", []byte("{}"), "backup-hr")
				if r.status == http.StatusAccepted {
					backupID = r.backupID
					break
				}
				if attempt > 100 {
					t.Fatalf("the backup was not accepted: %d %+v %v", r.status, r.problem, r.err)
				}
				time.Sleep(100 * time.Millisecond) // the client's retry pause, not synchronisation
			}
		}
		stats.waitAcked(t, stats.ackedCount()+20)
		leader.Restart()
		stats.waitAcked(t, stats.ackedCount()+20)
	}
	close(stop)
	wg.Wait()
	b.waitStatus("hr", backupID, 90*time.Second, domain.StatusReady) // b accepted it: b reads its own writes

	counts := ledgerCommands(t, a)
	renames := map[string]bool{}
	for key := range stats.acked {
		if strings.HasPrefix(key, "rename-") {
			renames[key] = true
		}
	}
	found, lost, dups := lostAndDuplicated(renames, counts)
	t.Log("summary: " + stats.summary(found, lost, dups) + fmt.Sprintf(", documents %d", len(docs)))
	if lost != 0 || dups != 0 {
		t.Errorf("lost %d, duplicated %d acknowledged renames", lost, dups)
	}
	stats.check(t)
	for _, n := range []*node{a, b} {
		for _, key := range docs {
			if r := n.do("GET", "/v1/apps/crm/config/"+key, nil); r.status != http.StatusOK || string(r.body) != "v-"+key {
				t.Errorf("%s: document %s reads %d %q, want v-%s", n.base, key, r.status, r.body, key)
			}
		}
		natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
			if got := backupNames(t, n, "crm")[id]; got != lastName {
				return fmt.Errorf("%s: named %q, want %q", n.base, got, lastName)
			}
			return nil
		})
	}
	checkLedgerAndFolds(t, nodes, []*node{a, b}, []string{"crm", "hr"})
}

// stoppingSource holds the first export at its stopper (a backup in the
// middle of its work) until the test ends or the process is killed.
type stoppingSource struct {
	service.Source
	stop *stopper
}

func (s stoppingSource) Export(ctx context.Context, app string, emit func(domain.Item) error) error {
	s.stop.stop(ctx)
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.Source.Export(ctx, app, emit)
}

// TestClusterReplicaLossMidWork kills the replica that makes a backup, and
// then the one that runs a restore, in the middle of their work: the other
// replica finishes each, and nothing stays running or in maintenance.
func TestClusterReplicaLossMidWork(t *testing.T) {
	nodes := natstest.NewCluster(t, 3)
	tune := func(c *daemon.Config) { c.Rules.MinInterval = 0 }

	// A backup whose replica dies while it exports.
	stopBackup := newStopper(t)
	a := startOnClusterWith(t, nodes, tune, func(h *daemon.TestHooks) {
		h.SourceWrapper = func(src service.Source) service.Source { return stoppingSource{src, stopBackup} }
	})
	docs := map[string]string{"a": "1", "b": "2"}
	a.setDocs("crm", docs)
	b1 := a.createBackup("crm", map[string]any{})
	select {
	case <-stopBackup.reached:
	case <-time.After(30 * time.Second):
		t.Fatal("the backup never started its export")
	}
	b := startOnCluster(t, nodes, tune)
	a.kill()
	if got := b.waitStatus("crm", b1.ID, 60*time.Second, domain.StatusReady, domain.StatusFailed); got.Status != string(domain.StatusReady) {
		t.Fatalf("the backup of the killed replica ended %+v, want ready", got)
	}

	// A restore whose replica dies in the middle: b stops, c runs the
	// restore up to its import and dies, d finishes it.
	b.stop()
	stopRestore := newStopper(t)
	c := startOnClusterWith(t, nodes, tune, func(h *daemon.TestHooks) {
		h.RestoreHook = func(ctx context.Context, _, _ string, act domain.RestoreAction) {
			if act.Kind == domain.ActImport {
				stopRestore.stop(ctx)
			}
		}
	})
	c.setDocs("crm", map[string]string{"a": "changed", "z": "added later"})
	r := c.restore("crm", map[string]any{"backup_id": b1.ID, "auto_end_maintenance": true})
	select {
	case <-stopRestore.reached:
	case <-time.After(30 * time.Second):
		t.Fatal("the restore never reached its import")
	}
	d := startOnCluster(t, nodes, tune)
	c.kill()
	got := d.waitRestore("crm", r.ID)
	if got.Status != "completed" {
		t.Fatalf("restore after its replica died = %+v", got)
	}
	if cfg := d.configDocs("crm"); !maps.Equal(cfg, docs) {
		t.Errorf("config = %v, want %v", cfg, docs)
	}
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if d.appState("crm").Maintenance.On {
			return fmt.Errorf("maintenance still on")
		}
		return nil
	})
	checkLedgerAndFolds(t, nodes, []*node{d}, []string{"crm"})
	t.Logf("summary: backup %s ready and restore %s completed after their replicas were killed", b1.ID, r.ID)
}

// TestClusterFullStop stops everything, the replicas and every node, and
// starts it all again from disk: the state is the one before, and commands
// go on.
func TestClusterFullStop(t *testing.T) {
	nodes := natstest.NewCluster(t, 3)
	a := startOnCluster(t, nodes, nil)
	b := startOnCluster(t, nodes, nil)
	apps := []string{"crm", "hr"}
	ids := map[string]string{}
	for _, app := range apps {
		ids[app] = readyBackup(t, a, app)
	}
	stats := newLoadStats()
	client := &http.Client{Timeout: 30 * time.Second}
	for i := range 20 {
		key := fmt.Sprintf("before-%d", i)
		app := apps[i%2]
		if r := stats.rename(client, []*node{a, b}[i%2], app, ids[app], key, key); r.status != http.StatusOK {
			t.Fatalf("rename %s: %d %+v %v", key, r.status, r.problem, r.err)
		}
	}
	// The state before the stop, as a reads it once it has applied the
	// whole ledger (b made half the renames).
	lastSeq := a.lastSeq()
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if got := a.appliedSeq(); got < lastSeq {
			return fmt.Errorf("replica a applied %d of %d", got, lastSeq)
		}
		return nil
	})
	before := map[string]map[string]string{}
	for _, app := range apps {
		before[app] = backupNames(t, a, app)
		if got := before[app][ids[app]]; got != fmt.Sprintf("before-%d", 18+slices.Index(apps, app)) {
			t.Fatalf("%s before the stop: named %q, want its last rename", app, got)
		}
	}

	a.stop()
	b.stop()
	for _, nd := range nodes {
		nd.Shutdown()
	}
	natstest.RestartAll(t, nodes)
	restarted := time.Now()
	c := startOnCluster(t, nodes, nil)
	t.Logf("backupd ready %s after the nodes restarted", time.Since(restarted).Round(time.Millisecond))
	if got := c.lastSeq(); got != lastSeq {
		t.Errorf("the ledger ends at %d after the restart, want %d", got, lastSeq)
	}
	for _, app := range apps {
		if got := backupNames(t, c, app); !maps.Equal(got, before[app]) {
			t.Errorf("%s after the restart: %v, want %v", app, got, before[app])
		}
	}
	if r := stats.rename(client, c, "crm", ids["crm"], "after-0", "after-0"); r.status != http.StatusOK {
		t.Fatalf("rename after the restart: %d %+v %v", r.status, r.problem, r.err)
	}
	counts := ledgerCommands(t, c)
	found, lost, dups := lostAndDuplicated(stats.acked, counts)
	t.Log("summary: " + stats.summary(found, lost, dups))
	if lost != 0 || dups != 0 {
		t.Errorf("lost %d, duplicated %d acknowledged commands", lost, dups)
	}
	stats.check(t)
	checkLedgerAndFolds(t, nodes, []*node{c}, apps)
}

// checkLedgerAndFolds checks what every cluster test promises beyond
// counts: every message of LEDGER is accepted (signed, chained, no broken
// link), and each replica's projection of apps equals a fresh fold of the
// stream, the projection of a replica started now that reads it from the
// first message.
func checkLedgerAndFolds(t *testing.T, nodes []*natstest.Node, replicas []*node, apps []string) {
	t.Helper()
	verdicts, _ := replicas[0].verdicts()
	for seq, v := range verdicts {
		if !v.Accepted() || v.Broken != "" {
			t.Errorf("LEDGER message %d: rejected %q, broken %q: %s", seq, v.Rejected, v.Broken, v.Detail)
		}
	}
	fresh := startOnCluster(t, nodes, nil)
	want := ""
	natstest.CheckFor(t, 60*time.Second, 50*time.Millisecond, func() error {
		want = projectionOf(t, fresh, apps)
		for _, n := range replicas {
			if got := projectionOf(t, n, apps); got != want {
				return fmt.Errorf("replica %s's projection differs from a fresh fold:\n%s\nfresh:\n%s", n.base, got, want)
			}
		}
		return nil
	})
	t.Logf("ledger: %d messages, chains intact; %d replicas equal a fresh fold of %d apps", len(verdicts), len(replicas), len(apps))
}

// projectionOf is what n's projection answers about apps: each app's
// state, backups and log.
func projectionOf(t *testing.T, n *node, apps []string) string {
	t.Helper()
	var b strings.Builder
	for _, app := range apps {
		for _, path := range []string{"/v1/apps/" + app, "/v1/apps/" + app + "/backups", "/v1/apps/" + app + "/logs"} {
			r := n.do("GET", path, nil)
			if r.status != http.StatusOK {
				t.Errorf("%s: GET %s: %d %s", n.base, path, r.status, r.body)
			}
			fmt.Fprintf(&b, "GET %s: %d %s\n", path, r.status, r.body)
		}
	}
	return b.String()
}
