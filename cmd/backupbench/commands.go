package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/backupledger/backupledger/cmd/backupbench/loadgen"
	"github.com/backupledger/backupledger/cmd/backupd/daemon"
)

const commandsUsage = `usage: backupbench commands [flags]

Measures the command path from outside against raw JetStream in the same
run: for each --sync mode it starts backupd (a separate process, embedded
NATS, temp data dir), sets up the apps, and drives renames with the load
generator over the NATS API and over HTTP, at peak (as fast as the clients'
answers come) and at half of our peak; the raw baseline is an OCC publish
(Nats-Expected-Last-Subject-Sequence, a subject per app) to a stream on the
same server, with the same clients. Every acknowledged command is checked
against LEDGER. It fails on errors and wrong results, never on timing.

`

// commandsConfig is the command line of `backupbench commands`.
type commandsConfig struct {
	syncs    []string
	duration time.Duration
	apps     int
	clients  int
	quick    bool
	write    string
	// events and coldApps size the cold start (0 events: not measured).
	events, coldApps int
}

func runCommands(args []string) error {
	var cfg commandsConfig
	fs := flag.NewFlagSet("backupbench commands", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), commandsUsage)
		fs.PrintDefaults()
	}
	syncs := fs.String("sync", "interval,always", "the --sync modes to measure, comma-separated")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long each run sends")
	fs.IntVar(&cfg.apps, "apps", 64, "apps (one subject each in the raw stream)")
	fs.IntVar(&cfg.clients, "clients", 32, "concurrent clients, each sending one command at a time")
	fs.IntVar(&cfg.events, "events", 1_000_000, "events in LEDGER for the cold start (0: no cold start)")
	fs.IntVar(&cfg.coldApps, "cold-apps", 1000, "apps of the cold start's events")
	fs.BoolVar(&cfg.quick, "quick", false, "a short run for CI: 1 s per run, 8 apps, a cold start over 20,000 events of 20 apps, nothing written")
	fs.StringVar(&cfg.write, "write", "", "write the table into this markdown file (between its backupbench commands markers)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.syncs = strings.Split(*syncs, ",")
	if cfg.quick {
		cfg.duration, cfg.apps, cfg.write = time.Second, 8, ""
		cfg.events, cfg.coldApps = min(cfg.events, 20_000), min(cfg.coldApps, 20)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	tmp, err := os.MkdirTemp("", "backupbench-commands-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin, err := buildBackupd(ctx, tmp)
	if err != nil {
		return err
	}
	rep := commandsReport{cfg: cfg, started: time.Now()}
	for _, sync := range cfg.syncs {
		m, err := measureCommands(ctx, bin, filepath.Join(tmp, sync), sync, cfg)
		if err != nil {
			return fmt.Errorf("--sync %s: %w", sync, err)
		}
		rep.modes = append(rep.modes, m)
		rep.natsVersion = m.natsVersion
	}
	if cfg.events > 0 {
		if rep.cold, err = measureColdStart(ctx, bin, filepath.Join(tmp, "cold"), cfg.coldApps, cfg.events, cfg.clients); err != nil {
			return fmt.Errorf("cold start: %w", err)
		}
	}
	out := rep.markdown()
	fmt.Print(out)
	if cfg.write != "" {
		return writeBetweenMarkers(cfg.write, "backupbench commands", out)
	}
	return nil
}

// commandsMode is what one --sync mode measured.
type commandsMode struct {
	sync                        string
	natsVersion                 string
	rawPeak, natsPeak, httpPeak *loadgen.Result
	natsHalf, rawNatsHalf       *loadgen.Result
	httpHalf, rawHTTPHalf       *loadgen.Result
	natsRate, httpRate          float64
	checkedCommands             int
}

// measureCommands runs every load of one --sync mode on a backupd of its
// own.
func measureCommands(ctx context.Context, bin, dir, sync string, cfg commandsConfig) (*commandsMode, error) {
	d, err := startProcess(ctx, bin, dir, []string{"--nats-listen", freeAddr(), "--sync", sync, "--admin-token", "bench",
		"--log-level", "warn", "--min-interval", "0s"})
	if err != nil {
		return nil, err
	}
	defer d.stop()
	if d.nc, d.js, err = connectAs(dir, daemon.RoleBackupd); err != nil {
		return nil, err
	}
	producer, _, err := connectAs(dir, daemon.RoleProducer)
	if err != nil {
		return nil, err
	}
	defer producer.Close()
	m := &commandsMode{sync: sync, natsVersion: d.nc.ConnectedServerVersion()}
	fmt.Fprintf(os.Stderr, "--sync %s: setting up %d apps...\n", sync, cfg.apps)
	apps, err := loadgen.Setup(ctx, d.base, "bench", "bench", cfg.apps)
	if err != nil {
		return nil, err
	}
	raw, err := loadgen.NewRaw(ctx, d.js, "BENCH_RAW")
	if err != nil {
		return nil, fmt.Errorf("raw stream: %w", err)
	}
	natsAPI := []loadgen.Target{&loadgen.NATS{Conn: producer, Token: "bench"}}
	httpAPI := []loadgen.Target{loadgen.NewHTTP(d.base, "bench", cfg.clients)}
	rawAPI := []loadgen.Target{raw}
	from, err := loadgen.LastSeq(ctx, d.js)
	if err != nil {
		return nil, err
	}
	acked := map[string]loadgen.Op{}
	runs := 0
	run := func(name string, targets []loadgen.Target, rate float64, ours bool) (*loadgen.Result, error) {
		fmt.Fprintf(os.Stderr, "--sync %s: %s...\n", sync, name)
		runs++
		res, err := loadgen.Run(ctx, loadgen.Config{Targets: targets, Apps: apps, Clients: cfg.clients, Rate: rate,
			Duration: cfg.duration, RunID: fmt.Sprintf("%s%d-%d", sync, runs, time.Now().Unix()), Bound: 5 * time.Second})
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(os.Stderr, "  %s\n", res.Summary())
		if res.ErrorCount > 0 || len(res.Acked) == 0 {
			return nil, fmt.Errorf("%s: %d errors, %d acknowledged: %v", name, res.ErrorCount, len(res.Acked), res.Errors[:min(3, len(res.Errors))])
		}
		if ours {
			for k, op := range res.Acked {
				acked[k] = op
			}
		}
		return res, nil
	}
	if m.rawPeak, err = run("raw peak", rawAPI, 0, false); err != nil {
		return nil, err
	}
	if m.natsPeak, err = run("NATS API peak", natsAPI, 0, true); err != nil {
		return nil, err
	}
	if m.httpPeak, err = run("HTTP peak", httpAPI, 0, true); err != nil {
		return nil, err
	}
	m.natsRate, m.httpRate = m.natsPeak.Throughput()/2, m.httpPeak.Throughput()/2
	if m.natsHalf, err = run("NATS API at half its peak", natsAPI, m.natsRate, true); err != nil {
		return nil, err
	}
	if m.rawNatsHalf, err = run("raw at the same rate", rawAPI, m.natsRate, false); err != nil {
		return nil, err
	}
	if m.httpHalf, err = run("HTTP at half its peak", httpAPI, m.httpRate, true); err != nil {
		return nil, err
	}
	if m.rawHTTPHalf, err = run("raw at the same rate", rawAPI, m.httpRate, false); err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	counts, err := loadgen.CommandCounts(cctx, d.js, from)
	if err != nil {
		return nil, err
	}
	c := loadgen.Compare(acked, counts)
	if !c.OK() || c.Found != len(acked) {
		return nil, fmt.Errorf("ledger check: %s %v", c, c.Examples)
	}
	m.checkedCommands = c.Found
	fmt.Fprintf(os.Stderr, "--sync %s: ledger check %s\n", sync, c)
	return m, nil
}

// commandsReport is the table of every mode measured.
type commandsReport struct {
	cfg         commandsConfig
	started     time.Time
	natsVersion string
	modes       []*commandsMode
	cold        *coldStart
}

func (r *commandsReport) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Measured %s on %s, %s, nats-server %s (embedded in backupd, R1 file store); backupd a separate process, the load from another on the same machine; %d apps, %d clients, %s per run; renames.\n\n",
		r.started.UTC().Format("2006-01-02"), machine(), runtime.Version(), r.natsVersion, r.cfg.apps, r.cfg.clients, r.cfg.duration)
	fmt.Fprintln(&b, "| measure | ours | raw, same run | ratio | target | met |")
	fmt.Fprintln(&b, "| --- | --- | --- | --- | --- | --- |")
	targets := map[string][2]float64{"interval": {0.5, 0.35}, "always": {0.85, 0.75}}
	for _, m := range r.modes {
		t := targets[m.sync]
		peak := func(what string, ours *loadgen.Result, target float64) {
			ratio := ours.Throughput() / m.rawPeak.Throughput()
			fmt.Fprintf(&b, "| commands/s, %s, `--sync %s` | %.0f/s (p99 %s) | %.0f/s (p99 %s) | %.2f | ≥ %.2f | %s |\n",
				what, m.sync, ours.Throughput(), msStr(ours.Percentile(99)), m.rawPeak.Throughput(), msStr(m.rawPeak.Percentile(99)), ratio, target, yes(ratio >= target))
		}
		peak("NATS API", m.natsPeak, t[0])
		peak("HTTP", m.httpPeak, t[1])
		half := func(what string, ours, raw *loadgen.Result, rate float64) {
			p99, rp99 := ours.Percentile(99), raw.Percentile(99)
			fmt.Fprintf(&b, "| p99 at half our peak (%.0f/s), %s, `--sync %s` | %s (p50 %s) | %s (p50 %s) | %.1f× | ≤ 10 ms and ≤ 3× raw | %s |\n",
				rate, what, m.sync, msStr(p99), msStr(ours.Percentile(50)), msStr(rp99), msStr(raw.Percentile(50)), float64(p99)/float64(rp99),
				yes(p99 <= 10*time.Millisecond && p99 <= 3*rp99))
		}
		half("NATS API", m.natsHalf, m.rawNatsHalf, m.natsRate)
		half("HTTP", m.httpHalf, m.rawHTTPHalf, m.httpRate)
	}
	if c := r.cold; c != nil {
		ratio := c.rate() / c.rawRate()
		fmt.Fprintf(&b, "| cold start: rebuild rate over %d events (%d apps), to `/readyz` | %.0f events/s | ordered-consumer replay %.0f events/s | %.2f | ≥ 0.5 | %s |\n",
			c.events, c.apps, c.rate(), c.rawRate(), ratio, yes(ratio >= 0.5))
		fmt.Fprintf(&b, "| start to `/readyz` with %d events | %.1f s | %.1f s | | ≤ 10 s | %s |\n",
			c.events, c.ready.Seconds(), c.rawTime.Seconds(), yes(c.ready <= 10*time.Second))
		fmt.Fprintf(&b, "| RSS after start with %d events / idle with none | %.0f MiB / %.0f MiB | | | ≤ 256 / ≤ 64 MiB | %s |\n",
			c.events, mib(c.rss), mib(c.idleRSS), yes(c.rss <= 256<<20 && c.idleRSS <= 64<<20))
	}
	fmt.Fprintln(&b)
	var checked []string
	for _, m := range r.modes {
		checked = append(checked, fmt.Sprintf("%d (`--sync %s`)", m.checkedCommands, m.sync))
	}
	fmt.Fprintf(&b, "Every acknowledged command was found in `LEDGER` exactly once: %s.\n", strings.Join(checked, ", "))
	return b.String()
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func msStr(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

// machine describes the CPU and memory of this machine.
func machine() string {
	cpu := runtime.GOARCH
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf(", %.0f GiB", float64(kb)/(1<<20))
		}
	}
	return fmt.Sprintf("%d cores (%s)%s, %s", runtime.NumCPU(), cpu, mem, runtime.GOOS)
}

// writeBetweenMarkers replaces the text between the lines
// "<!-- name: begin -->" and "<!-- name: end -->" of the file at path.
func writeBetweenMarkers(path, name, text string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	begin, end := []byte("<!-- "+name+": begin -->\n"), []byte("<!-- "+name+": end -->")
	i, j := bytes.Index(b, begin), bytes.Index(b, end)
	if i < 0 || j < i {
		return errors.New(path + ": no " + string(bytes.TrimSpace(begin)) + " … " + string(end) + " markers")
	}
	out := append(append(append([]byte{}, b[:i+len(begin)]...), text...), b[j:]...)
	return os.WriteFile(path, out, 0o644)
}
