package test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/backupledger/backupledger/cmd/backupbench/loadgen"
	"github.com/backupledger/backupledger/projections"
)

// TestLoadGenerator runs the load generator of `backupbench load` against a
// backupd over HTTP and NATS at once, and checks what it reports against
// the ledger: every command acknowledged and found once, creates within
// the quota, and a check that does see a lost and a duplicated command.
func TestLoadGenerator(t *testing.T) {
	n := startNode(t, t.TempDir(), noMinInterval, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	apps, err := loadgen.Setup(ctx, n.base, token, "load", 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(apps) != 3 || apps["app-001"] == "" {
		t.Fatalf("Setup = %v, want apps app-001 … app-003 with a backup each", apps)
	}
	if b := n.backup("app-002", apps["app-002"]); b.Status != "ready" || b.Name != loadgen.SeedName {
		t.Fatalf("seed backup = %+v, want ready and named %q", b, loadgen.SeedName)
	}
	again, err := loadgen.Setup(ctx, n.base, token, "load", 3)
	if err != nil || again["app-003"] != apps["app-003"] {
		t.Fatalf("Setup again = %v, %v; want the same backups %v", again, err, apps)
	}
	from, err := loadgen.LastSeq(ctx, n.js)
	if err != nil {
		t.Fatal(err)
	}

	mix, err := loadgen.ParseMix("rename=4,create=2,delete=1")
	if err != nil {
		t.Fatal(err)
	}
	targets := []loadgen.Target{loadgen.NewHTTP(n.base, token, 4), &loadgen.NATS{Conn: n.producerConn().nc, Token: token}}
	const rate, run, maxCreated = 300, time.Second, 2
	res, err := loadgen.Run(ctx, loadgen.Config{Targets: targets, Apps: apps, Clients: 4, Rate: rate,
		Duration: run, Mix: mix, MaxCreated: maxCreated, Bound: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res.Summary())
	if res.ErrorCount != 0 || res.Failed != 0 {
		t.Fatalf("errors %d, failed %d: %v", res.ErrorCount, res.Failed, res.Errors)
	}
	// With a rate, the commands due within the run are sent, and no more.
	if res.Sent == 0 || res.Sent > rate || len(res.Acked) != res.Sent || len(res.Latencies) != res.Sent {
		t.Fatalf("sent %d, acknowledged %d, latencies %d; want 1 to %d, all acknowledged", res.Sent, len(res.Acked), len(res.Latencies), rate)
	}
	byOp := map[loadgen.Op]int{}
	for _, op := range res.Acked {
		byOp[op]++
	}
	if byOp[loadgen.OpRename] == 0 || byOp[loadgen.OpCreate] == 0 || byOp[loadgen.OpDelete] == 0 {
		t.Fatalf("acknowledged by kind %v, want some of each", byOp)
	}
	if p50, p99 := res.Percentile(50), res.Percentile(99); p50 <= 0 || p99 < p50 || res.Percentile(100) != res.Latencies[len(res.Latencies)-1] {
		t.Fatalf("p50 %s, p99 %s, max %s: not ordered", p50, p99, res.Percentile(100))
	}

	counts, err := loadgen.CommandCounts(ctx, n.js, from)
	if err != nil {
		t.Fatal(err)
	}
	c := loadgen.Compare(res.Acked, counts)
	if !c.OK() || c.Found != len(res.Acked) {
		t.Fatalf("check %s %v, want all %d found once", c, c.Examples, len(res.Acked))
	}
	// The check sees a command that was acknowledged but is not in the
	// ledger, and one that is there twice.
	var some string
	for k := range res.Acked {
		some = k
		break
	}
	counts[some] = 2
	res.Acked["load-never-stored"] = loadgen.OpRename
	if c := loadgen.Compare(res.Acked, counts); c.Lost != 1 || c.Duplicates != 1 || c.OK() {
		t.Fatalf("check of a lost and a duplicated command = %s, want lost 1, duplicates 1", c)
	}

	// The creates stayed within the room the load keeps in each app.
	for app := range apps {
		var list struct {
			Backups []projections.BackupView `json:"backups"`
		}
		n.must(http.StatusOK, "GET", "/v1/apps/"+app+"/backups", nil).json(t, &list)
		if len(list.Backups) > maxCreated+1 {
			t.Errorf("app %s holds %d backups, want at most %d (the seed and %d created)", app, len(list.Backups), maxCreated+1, maxCreated)
		}
	}
}

// TestParseMix checks the -mix flag's syntax and its errors.
func TestParseMix(t *testing.T) {
	for in, want := range map[string]string{"rename": "rename=1", "create=2, rename=3": "rename=3,create=2", "delete=1,rename": "rename=1,delete=1"} {
		if m, err := loadgen.ParseMix(in); err != nil || m.String() != want {
			t.Errorf("ParseMix(%q) = %v, %v; want %s", in, m, err, want)
		}
	}
	for _, in := range []string{"", "copy=1", "rename=x", "rename=-1", "rename=0"} {
		if m, err := loadgen.ParseMix(in); err == nil {
			t.Errorf("ParseMix(%q) = %v, want an error", in, m)
		}
	}
}
