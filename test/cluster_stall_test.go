package test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/jetstream"
	"github.com/backupledger/backupledger/cmd/backupd/daemon"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/test/natstest"
)

// slotWatch times each delivery of a backup job on a worker (the
// daemon's TestHooks.JobWrapper): how long it holds its worker slot.
type slotWatch struct {
	mu      sync.Mutex
	next    int
	running map[int]slotRun // by run number
	done    []slotRun
}

// slotRun is one delivery of a job on a worker.
type slotRun struct {
	app, backupID string
	attempt       int
	start         time.Time
	took          time.Duration // so far, while it runs
	err           error
}

func (r slotRun) String() string {
	return fmt.Sprintf("%s %s attempt %d, %s: %v", r.app, r.backupID, r.attempt, r.took.Round(time.Millisecond), r.err)
}

func newSlotWatch() *slotWatch { return &slotWatch{running: map[int]slotRun{}} }

// wrap is the daemon's TestHooks.JobWrapper.
func (w *slotWatch) wrap(run func(context.Context, domain.Job) error) func(context.Context, domain.Job) error {
	return func(ctx context.Context, j domain.Job) error {
		w.mu.Lock()
		id := w.next
		w.next++
		r := slotRun{app: j.App, backupID: j.BackupID, attempt: j.Attempt, start: time.Now()}
		w.running[id] = r
		w.mu.Unlock()
		err := run(ctx, j)
		w.mu.Lock()
		defer w.mu.Unlock()
		delete(w.running, id)
		r.took, r.err = time.Since(r.start), err
		w.done = append(w.done, r)
		return err
	}
}

// runs returns the runs that ended and those that run now (with their
// time so far), each in the order they started.
func (w *slotWatch) runs() (done, running []slotRun) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.running {
		r.took = time.Since(r.start)
		running = append(running, r)
	}
	slices.SortFunc(running, func(a, b slotRun) int { return a.start.Compare(b.start) })
	return slices.Clone(w.done), running
}

// longest returns the longest hold of a slot so far, by a run that ended
// or one that runs now.
func (w *slotWatch) longest() slotRun {
	done, running := w.runs()
	var most slotRun
	for _, r := range append(done, running...) {
		if r.took > most.took {
			most = r
		}
	}
	return most
}

// retried returns whether a delivery of a job ended with an error after
// since and a later delivery of the same backup started: its slot was
// released and the job tried again.
func (w *slotWatch) retried(since time.Time) bool {
	done, running := w.runs()
	all := append(done, running...)
	for _, r := range done {
		if r.err == nil || r.start.Before(since) {
			continue
		}
		for _, later := range all {
			if later.backupID == r.backupID && later.start.After(r.start.Add(r.took)) {
				return true
			}
		}
	}
	return false
}

// started returns whether a delivery of backup id started after since.
func (w *slotWatch) started(id string, since time.Time) bool {
	done, running := w.runs()
	for _, r := range append(done, running...) {
		if r.backupID == id && !r.start.Before(since) {
			return true
		}
	}
	return false
}

// report is the runs, one a line, for a failure.
func (w *slotWatch) report(since time.Time) string {
	done, running := w.runs()
	var b strings.Builder
	for _, r := range done {
		fmt.Fprintf(&b, "\n  +%s %s", r.start.Sub(since).Round(time.Millisecond), r)
	}
	for _, r := range running {
		fmt.Fprintf(&b, "\n  +%s still running: %s", r.start.Sub(since).Round(time.Millisecond), r)
	}
	return b.String()
}

// raftGroup is a stream or a consumer of a stream, led by one node.
type raftGroup struct {
	name     string
	stepDown string // the API subject that asks its leader to step down
	leader   func(ctx context.Context, js njs.JetStream) (string, error)
}

func streamGroup(stream string) raftGroup {
	return raftGroup{name: stream, stepDown: "$JS.API.STREAM.LEADER.STEPDOWN." + stream,
		leader: func(ctx context.Context, js njs.JetStream) (string, error) {
			st, err := js.Stream(ctx, stream)
			if err != nil {
				return "", err
			}
			if c := st.CachedInfo().Cluster; c != nil {
				return c.Leader, nil
			}
			return "", nil
		}}
}

func consumerGroup(stream, consumer string) raftGroup {
	return raftGroup{name: stream + "/" + consumer, stepDown: "$JS.API.CONSUMER.LEADER.STEPDOWN." + stream + "." + consumer,
		leader: func(ctx context.Context, js njs.JetStream) (string, error) {
			c, err := js.Consumer(ctx, stream, consumer)
			if err != nil {
				return "", err
			}
			if cl := c.CachedInfo().Cluster; cl != nil {
				return cl.Leader, nil
			}
			return "", nil
		}}
}

// leadAway asks the leader of g to step down until g has a leader other
// than avoid, as n's client sees it, and returns that leader.
func leadAway(t *testing.T, n *node, nodes []*natstest.Node, g raftGroup, avoid *natstest.Node) *natstest.Node {
	t.Helper()
	var leader *natstest.Node
	natstest.CheckFor(t, 30*time.Second, 200*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		name, err := g.leader(ctx, n.js)
		if err != nil {
			return err
		}
		leader = nil
		for _, nd := range nodes {
			if nd.Name() == name {
				leader = nd
			}
		}
		switch leader {
		case nil:
			return fmt.Errorf("%s has no leader (%q)", g.name, name)
		case avoid:
			if _, err := n.nc.Request(g.stepDown, nil, 5*time.Second); err != nil {
				return fmt.Errorf("step down %s: %w", g.name, err)
			}
			return fmt.Errorf("%s still leads %s", name, g.name)
		}
		return nil
	})
	return leader
}

// TestClusterStalledBucketLeader stalls the node that leads the
// configuration bucket (its routes stop carrying bytes; no connection
// breaks, the node stays in the cluster) while backups of more apps than
// the replica has worker slots are made: each job's calls to the bucket
// time out, its delivery ends and frees its slot, and the job is
// delivered again; no slot is held past the bound; once the node resumes
// every backup is ready, each recorded once.
func TestClusterStalledBucketLeader(t *testing.T) {
	const (
		callBound = time.Second     // --command-timeout: each call to NATS, a listing of documents 6×
		retryFor  = 2 * time.Second // --job-retry-for
		workers   = 2
		// bound is the longest a delivery may hold its slot: RetryFor,
		// then one last attempt whose calls each end within callBound:
		// the start command (1), the listing of the app's documents (6)
		// and a read (1) while the archive's put waits for them, the
		// put's purge of its chunks (1), and the removal of the partial
		// archive by the store and again by the worker (a read and a
		// delete each, 4). The wait for the projection is bounded by
		// RetryFor, and only the first attempt waits.
		bound = retryFor + 13*callBound
		// slack is the time between the calls: the zip, the calls that
		// answered, the race detector's scheduling.
		slack = 500 * time.Millisecond
	)
	nodes := natstest.NewClusterWith(t, 3, natstest.ClusterOptions{ProxyRoutes: true})
	entry := nodes[0] // backupd's only node: never the stalled one
	slots := newSlotWatch()
	n := startOnClusterWith(t, []*natstest.Node{entry}, func(c *daemon.Config) {
		c.Ledger.CommandTimeout = callBound
		c.Jobs.RetryFor = retryFor
		c.Jobs.Workers = workers
		c.Jobs.MaxDeliver = 10
		c.Rules.MinInterval = 0
	}, func(h *daemon.TestHooks) { h.JobWrapper = slots.wrap })

	apps := []string{"crm", "hr", "wiki", "shop"}
	for _, app := range apps {
		n.setDocs(app, map[string]string{"app.json": `{"name":"` + app + `"}`, "sheets/leads": `{"fields":["name"]}`})
	}
	readyBackup(t, n, "crm") // the whole path works before the fault

	// The stalled node leads the configuration bucket, but neither the
	// ledger nor the job consumer: the backups are accepted and their
	// jobs delivered at once, and then wait for the bucket.
	config := streamGroup("KV_ledger_config")
	var stalled *natstest.Node
	for try := 0; ; try++ {
		stalled = leadAway(t, n, nodes, config, entry)
		for _, g := range []raftGroup{streamGroup(jetstream.StreamName), consumerGroup(jetstream.StreamName, jetstream.ConsumerName)} {
			leadAway(t, n, nodes, g, stalled)
		}
		if leadAway(t, n, nodes, config, entry) == stalled {
			break
		}
		if try == 3 {
			t.Fatal("the configuration bucket's leader keeps moving")
		}
	}
	var alsoLeads []string
	for _, s := range []string{"OBJ_ledger_archives", "KV_ledger_secrets"} {
		if leaderNode(t, n, nodes, s) == stalled {
			alsoLeads = append(alsoLeads, s)
		}
	}

	resume := stalled.Stall()
	t.Cleanup(resume)
	stalledAt := time.Now()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("deliveries since the stall of %s (leader of %s and %v):%s", stalled.Name(), config.name, alsoLeads, slots.report(stalledAt))
		}
	})
	stats := newLoadStats()
	client := &http.Client{Timeout: 30 * time.Second}
	ids := map[string]string{}
	for _, app := range apps {
		for attempt := 0; ; attempt++ {
			a := stats.send(client, n, "POST", "/v1/apps/"+app+"/backups", "application/json", []byte("{}"), "stall-"+app)
			if a.status == http.StatusAccepted {
				ids[app] = a.backupID
				break
			}
			if attempt > 100 {
				t.Fatalf("the backup of %s was not accepted: %d %+v %v", app, a.status, a.problem, a.err)
			}
			time.Sleep(100 * time.Millisecond) // the client's retry pause, not synchronisation
		}
	}
	// Stalled until every job had a slot, and one whose call timed out
	// gave its slot up and was delivered again.
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		for _, app := range apps {
			if !slots.started(ids[app], stalledAt) {
				return fmt.Errorf("the job of %s has not started", app)
			}
		}
		if !slots.retried(stalledAt) {
			return fmt.Errorf("no job gave its slot up and started again")
		}
		return nil
	})
	resume()
	stallFor := time.Since(stalledAt)

	// Every backup ends ready: a stall is the store's fault, never the
	// backup's, and a job has deliveries to spare.
	for _, app := range apps {
		natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
			switch b := n.backup(app, ids[app]); b.Status {
			case string(domain.StatusReady):
				return nil
			case string(domain.StatusFailed):
				reason := "no reason"
				if b.Error != nil {
					reason = *b.Error
				}
				t.Fatalf("the backup of %s failed: %s", app, reason)
			default:
				return fmt.Errorf("the backup of %s is %s", app, b.Status)
			}
			return nil
		})
	}
	readyAfter := time.Since(stalledAt) - stallFor
	// Every delivery has ended (a late one of a ready backup too).
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if _, running := slots.runs(); len(running) > 0 {
			return fmt.Errorf("%d deliveries still run, the oldest: %s", len(running), running[0])
		}
		_, fams := n.scrape()
		if v, _ := value(fams, "backupledger_jobs_in_flight"); v != 0 {
			return fmt.Errorf("backupledger_jobs_in_flight = %g, want 0", v)
		}
		return nil
	})
	_, fams := n.scrape()
	redelivered, _ := value(fams, "backupledger_jobs_redelivered_total")
	done, _ := slots.runs()
	failed := 0
	for _, r := range done {
		if r.err != nil {
			failed++
		}
	}
	most := slots.longest()

	counts := ledgerCommands(t, n)
	found, lost, dups := lostAndDuplicated(stats.acked, counts)
	t.Log("summary: " + stats.summary(found, lost, dups) + fmt.Sprintf(
		", stalled %s (leader of %s and %v) for %s, %d backups ready %s after, %d deliveries (%d failed, %g redelivered), longest slot hold %s (bound %s)",
		stalled.Name(), config.name, alsoLeads, stallFor.Round(time.Millisecond), len(apps), readyAfter.Round(time.Millisecond), len(done), failed, redelivered,
		most.took.Round(time.Millisecond), bound))
	if lost != 0 || dups != 0 {
		t.Errorf("lost %d, duplicated %d acknowledged backups", lost, dups)
	}
	stats.check(t)
	if most.took > bound+slack {
		t.Errorf("a delivery held its worker slot %s, over the bound %s (+%s): %s", most.took.Round(time.Millisecond), bound, slack, most)
	}
	if redelivered < 1 {
		t.Errorf("backupledger_jobs_redelivered_total = %g, want a job delivered again", redelivered)
	}
}
