// Package loadgen sends commands to backupd the way its users do, over HTTP
// or the NATS API, and checks the ledger afterwards: every acknowledged
// command must be in the LEDGER stream exactly once.
//
// A run has apps (each with one backup to rename, set up by Setup),
// clients (each sends one command at a time, to the targets in turn),
// a rate (commands per second over all clients; zero sends as fast as the
// answers come) and a duration. Every command carries an idempotency key of
// its own; a command that answers 503 unavailable, or no answer at all, is
// sent again with the same key until it is acknowledged or RetryFor has
// passed. Any other answer that is not 2xx is an error of the run.
//
// It is used by `backupbench load` and by the cluster tests.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Op is the kind of a command of the load.
type Op string

// The commands the load sends.
const (
	// OpRename renames the app's set-up backup.
	OpRename Op = "rename"
	// OpCreate requests a new backup of the app (backupd needs
	// --min-interval 0s, else most are refused as too soon).
	OpCreate Op = "create"
	// OpDelete deletes a backup that the load created earlier (a rename
	// when the app has none).
	OpDelete Op = "delete"
)

// Mix is the weight of each kind of command.
type Mix map[Op]int

// ParseMix reads a mix such as "rename=8,create=1,delete=1" (a kind alone
// weighs 1).
func ParseMix(s string) (Mix, error) {
	m := Mix{}
	for part := range strings.SplitSeq(s, ",") {
		name, weight, found := strings.Cut(strings.TrimSpace(part), "=")
		w := 1
		if found {
			if _, err := fmt.Sscanf(weight, "%d", &w); err != nil || w < 0 {
				return nil, fmt.Errorf("mix %q: weight of %s must be a whole number ≥ 0", s, name)
			}
		}
		switch op := Op(name); op {
		case OpRename, OpCreate, OpDelete:
			m[op] += w
		default:
			return nil, fmt.Errorf("mix %q: unknown command %q (rename, create, delete)", s, name)
		}
	}
	if m.total() == 0 {
		return nil, fmt.Errorf("mix %q: no command has a weight", s)
	}
	return m, nil
}

func (m Mix) total() int {
	n := 0
	for _, w := range m {
		n += w
	}
	return n
}

// pick returns the kind of command r falls on.
func (m Mix) pick(r *rand.Rand) Op {
	n := r.IntN(m.total())
	for _, op := range []Op{OpRename, OpCreate, OpDelete} {
		if n < m[op] {
			return op
		}
		n -= m[op]
	}
	return OpRename
}

// String is the mix as ParseMix reads it.
func (m Mix) String() string {
	var parts []string
	for _, op := range []Op{OpRename, OpCreate, OpDelete} {
		if m[op] > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", op, m[op]))
		}
	}
	return strings.Join(parts, ",")
}

// Command is one command of the load.
type Command struct {
	Op       Op
	App      string
	BackupID string // of rename and delete
	Name     string // of rename
	Key      string // the idempotency key, the same on every attempt
}

// Answer is what a target answered to one attempt of a command.
type Answer struct {
	// Status is the HTTP status, or over NATS the one of the error
	// header (200 for an answer without one). Zero when no answer came.
	Status int
	// Code is the problem's stable code of an answer that is not 2xx.
	Code string
	// Recorded is the problem's "recorded" of a 503.
	Recorded string
	// RetryAfter is the Retry-After of the answer, if any.
	RetryAfter time.Duration
	// BackupID is the id of the backup a create made.
	BackupID string
	// Body is the answer's body when it is not 2xx (for the report).
	Body string
	// Err is the transport error when no answer came.
	Err error
}

// Target sends commands to backupd.
type Target interface {
	// Send sends one attempt of cmd and returns its answer. It gives up
	// after the target's own timeout or when ctx ends (Err set).
	Send(ctx context.Context, cmd Command) Answer
	// String names the target in reports.
	String() string
}

// Config is one run of the load.
type Config struct {
	// Targets receive the commands: client i starts with target i mod
	// len(Targets) and moves on to the next one after an attempt without
	// an answer or a 503 (as a client with several addresses would).
	Targets []Target
	// Apps are the apps the load works on, each with the backup to rename
	// (Setup makes them).
	Apps map[string]string
	// Clients is the number of concurrent clients.
	Clients int
	// Rate is the commands per second over all clients; 0 sends as fast
	// as the answers come. With a rate, latencies count from the time a
	// command was due, so a slow answer that delays the next command shows
	// in the percentiles.
	Rate float64
	// Duration is how long commands are started.
	Duration time.Duration
	// Mix is the weight of each kind of command (rename only if nil).
	Mix Mix
	// RetryFor is how long a command is sent again before the run counts
	// it as failed (default 60 s).
	RetryFor time.Duration
	// Bound is the longest a single answer may take (0: no bound);
	// longer ones are errors of the run.
	Bound time.Duration
	// RunID makes the run's idempotency keys unique (default: the start
	// time).
	RunID string
	// Seed seeds the choice of apps and commands (default 1).
	Seed uint64
	// MaxCreated is the most backups the load keeps in an app besides the
	// set-up one (default 8; backupd's quota is 10 by default): a create
	// beyond it deletes one instead.
	MaxCreated int
}

// Result is what a run saw.
type Result struct {
	// Sent is the number of commands (distinct keys), Attempts the number
	// of requests including retries.
	Sent, Attempts int
	// Acked are the keys of the acknowledged commands, by kind of
	// command.
	Acked map[string]Op
	// Failed counts the commands still not acknowledged after RetryFor.
	Failed int
	// Answers counts the answers that are not 2xx, by "status code" (e.g.
	// "503 unavailable"), and "no answer" for attempts without one.
	Answers map[string]int
	// Latencies are those of the acknowledged commands, from the first
	// attempt (or the time it was due, with a rate) to the
	// acknowledgement, sorted.
	Latencies []time.Duration
	// Longest is the longest single answer (attempts without one are
	// counted in Answers as "no answer").
	Longest time.Duration
	// Elapsed is the time from the first command to the last answer.
	Elapsed time.Duration
	// Errors are answers that break a rule of the run (a 4xx, a 5xx that
	// is not 503 unavailable with Retry-After, an answer over Bound), the
	// first 50.
	Errors []string
	// ErrorCount counts them all.
	ErrorCount int
}

// Throughput is the acknowledged commands per second.
func (r *Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(len(r.Acked)) / r.Elapsed.Seconds()
}

// Percentile returns the latency that p (0–100) percent of the
// acknowledged commands did not exceed.
func (r *Result) Percentile(p float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	i := int(float64(len(r.Latencies))*p/100+0.5) - 1
	return r.Latencies[min(max(i, 0), len(r.Latencies)-1)]
}

// Summary is the run in one line.
func (r *Result) Summary() string {
	return fmt.Sprintf("sent %d, acknowledged %d (%.0f/s), failed %d, attempts %d, p50 %s, p99 %s, max %s, longest answer %s, not 2xx %s, errors %d",
		r.Sent, len(r.Acked), r.Throughput(), r.Failed, r.Attempts,
		ms(r.Percentile(50)), ms(r.Percentile(99)), ms(r.Percentile(100)), ms(r.Longest), countsString(r.Answers), r.ErrorCount)
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
}

func countsString(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d × %s", m[k], k))
	}
	return strings.Join(parts, ", ")
}

// Run sends the load of cfg until its duration has passed and every
// command started has been acknowledged or given up, or ctx ends.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if len(cfg.Targets) == 0 || len(cfg.Apps) == 0 || cfg.Clients < 1 || cfg.Duration <= 0 {
		return nil, errors.New("loadgen: a run needs targets, apps, clients and a duration")
	}
	if cfg.Mix == nil {
		cfg.Mix = Mix{OpRename: 1}
	}
	if cfg.RetryFor <= 0 {
		cfg.RetryFor = 60 * time.Second
	}
	if cfg.RunID == "" {
		cfg.RunID = time.Now().UTC().Format("20060102T150405.000")
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	if cfg.MaxCreated <= 0 {
		cfg.MaxCreated = 8
	}
	apps := make([]string, 0, len(cfg.Apps))
	for a := range cfg.Apps {
		apps = append(apps, a)
	}
	slices.Sort(apps)

	rec := &recorder{res: &Result{Acked: map[string]Op{}, Answers: map[string]int{}}, bound: cfg.Bound}
	created := &pool{max: cfg.MaxCreated, live: map[string][]string{}, held: map[string]int{}}
	start := time.Now()
	stop := start.Add(cfg.Duration)
	var wg sync.WaitGroup
	for i := range cfg.Clients {
		c := &client{cfg: &cfg, rec: rec, created: created, apps: apps, id: i, target: i % len(cfg.Targets),
			rnd: rand.New(rand.NewPCG(cfg.Seed, uint64(i)))}
		wg.Go(func() { c.run(ctx, start, stop) })
	}
	wg.Wait()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.res.Elapsed = time.Since(start)
	slices.Sort(rec.res.Latencies)
	return rec.res, ctx.Err()
}

// recorder collects the answers of every client.
type recorder struct {
	mu    sync.Mutex
	res   *Result
	bound time.Duration
}

func (r *recorder) errorf(format string, args ...any) {
	r.res.ErrorCount++
	if len(r.res.Errors) < 50 {
		r.res.Errors = append(r.res.Errors, fmt.Sprintf(format, args...))
	}
}

// attempt records one attempt and its answer.
func (r *recorder) attempt(cmd Command, a Answer, took time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.Attempts++
	if a.Err != nil {
		// No answer came within the attempt's timeout: the request or its
		// answer may have been lost with a server the client was
		// connected to (core NATS delivers at most once), and the command
		// is sent again. Counted, but not an answer.
		r.res.Answers["no answer"]++
		return
	}
	r.res.Longest = max(r.res.Longest, took)
	if r.bound > 0 && took > r.bound {
		r.errorf("%s %s: answered after %s, over the bound %s", cmd.Op, cmd.Key, took.Round(time.Millisecond), r.bound)
	}
	switch {
	case a.Status >= 200 && a.Status < 300:
	case a.Status == 503:
		r.res.Answers[fmt.Sprintf("%d %s", a.Status, a.Code)]++
		if a.Code != "unavailable" || a.RetryAfter <= 0 || a.Recorded == "" {
			r.errorf("%s %s: 503 %s without Retry-After or recorded: %s", cmd.Op, cmd.Key, a.Code, a.Body)
		}
	default:
		r.res.Answers[fmt.Sprintf("%d %s", a.Status, a.Code)]++
		r.errorf("%s %s: %d %s: %s", cmd.Op, cmd.Key, a.Status, a.Code, a.Body)
	}
}

// done records the end of a command.
func (r *recorder) done(cmd Command, acked bool, latency time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.Sent++
	if acked {
		r.res.Acked[cmd.Key] = cmd.Op
		r.res.Latencies = append(r.res.Latencies, latency)
	} else {
		r.res.Failed++
		r.errorf("%s %s: not acknowledged", cmd.Op, cmd.Key)
	}
}

// client sends one command at a time.
type client struct {
	cfg     *Config
	rec     *recorder
	apps    []string
	id      int
	target  int
	rnd     *rand.Rand
	n       int
	created *pool
}

// pool holds the backups the load created, by app, so that creates stay
// within the app's quota and deletes delete one of them.
type pool struct {
	mu   sync.Mutex
	max  int
	live map[string][]string // app → acknowledged creates not being deleted
	held map[string]int      // app → creates and deletes under way
}

// take returns what a command of kind op on app becomes: a create while
// the app has room, else a delete of one of its backups, else a rename.
// A create or a delete holds a place until settle.
func (p *pool) take(r *rand.Rand, op Op, app string) (Op, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if op == OpCreate && len(p.live[app])+p.held[app] >= p.max {
		op = OpDelete
	}
	switch op {
	case OpCreate:
		p.held[app]++
		return op, ""
	case OpDelete:
		ids := p.live[app]
		if len(ids) == 0 {
			return OpRename, ""
		}
		i := r.IntN(len(ids))
		id := ids[i]
		p.live[app] = slices.Delete(ids, i, i+1)
		p.held[app]++
		return op, id
	}
	return op, ""
}

// settle ends a create or a delete: a created backup joins the pool; a
// delete that was not acknowledged leaves its backup out (it may be gone).
func (p *pool) settle(cmd Command, acked bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.held[cmd.App]--
	if cmd.Op == OpCreate && acked && cmd.BackupID != "" {
		p.live[cmd.App] = append(p.live[cmd.App], cmd.BackupID)
	}
}

func (c *client) run(ctx context.Context, start, stop time.Time) {
	// With a rate, command k of client i is due at (k + i/clients)
	// periods of clients/rate seconds: the clients' commands are spread
	// evenly over each period, and exactly rate × duration are due.
	period := 0.0
	if c.cfg.Rate > 0 {
		period = float64(c.cfg.Clients) / c.cfg.Rate * float64(time.Second)
	}
	for k := 0; ctx.Err() == nil; k++ {
		due := time.Now()
		if period > 0 {
			due = start.Add(time.Duration((float64(k) + float64(c.id)/float64(c.cfg.Clients)) * period))
			if wait := time.Until(due); wait > 0 && !Sleep(ctx, wait) {
				return
			}
		}
		if !due.Before(stop) {
			return
		}
		c.send(ctx, c.next(), due)
	}
}

// next makes the client's next command.
func (c *client) next() Command {
	c.n++
	app := c.apps[c.rnd.IntN(len(c.apps))]
	cmd := Command{App: app, Key: fmt.Sprintf("load-%s-%d-%d", c.cfg.RunID, c.id, c.n)}
	cmd.Op, cmd.BackupID = c.created.take(c.rnd, c.cfg.Mix.pick(c.rnd), app)
	switch cmd.Op {
	case OpRename:
		cmd.BackupID = c.cfg.Apps[app]
		cmd.Name = fmt.Sprintf("load %d.%d", c.id, c.n)
	case OpCreate:
		cmd.Name = fmt.Sprintf("load %d.%d", c.id, c.n)
	}
	return cmd
}

// send sends cmd until it is acknowledged or RetryFor has passed.
func (c *client) send(ctx context.Context, cmd Command, due time.Time) {
	first := time.Now()
	if c.cfg.Rate <= 0 {
		due = first
	}
	for pause := 50 * time.Millisecond; ; pause = min(2*pause, time.Second) {
		t := c.cfg.Targets[c.target]
		sent := time.Now()
		a := t.Send(ctx, cmd)
		c.rec.attempt(cmd, a, time.Since(sent))
		if a.Err == nil && a.Status >= 200 && a.Status < 300 {
			if cmd.Op == OpCreate {
				cmd.BackupID = a.BackupID
			}
			c.done(cmd, true, time.Since(due))
			return
		}
		retryable := a.Err != nil || a.Status == 503
		if !retryable || ctx.Err() != nil || time.Since(first) > c.cfg.RetryFor {
			c.done(cmd, false, 0)
			return
		}
		// Another replica may answer: move on to the next target, after
		// the pause the answer asks for (within the retry budget).
		c.target = (c.target + 1) % len(c.cfg.Targets)
		wait := pause
		if a.RetryAfter > 0 {
			wait = min(a.RetryAfter, 2*time.Second)
		}
		if !Sleep(ctx, wait) {
			c.done(cmd, false, 0)
			return
		}
	}
}

// done ends cmd.
func (c *client) done(cmd Command, acked bool, latency time.Duration) {
	if cmd.Op != OpRename {
		c.created.settle(cmd, acked)
	}
	c.rec.done(cmd, acked, latency)
}

// Sleep waits d or until ctx ends, reporting whether d passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
