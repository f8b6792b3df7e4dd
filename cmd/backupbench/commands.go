package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
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

// commandsConfig is what the command path and the cold start are given:
// the flags of `backupbench commands` and of the default run.
type commandsConfig struct {
	syncs    commaList
	duration time.Duration
	apps     int
	clients  int
	// events and coldApps size the cold start (0 events: not measured).
	events, coldApps int
}

// register adds the flags of the command path and the cold start to fs.
func (cfg *commandsConfig) register(fs *flag.FlagSet) {
	cfg.syncs = commaList{"interval", "always"}
	fs.Var(&cfg.syncs, "sync", "the --sync `modes` of the command path, comma-separated (empty: none)")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long each run of the command path sends")
	fs.IntVar(&cfg.apps, "apps", 64, "apps of the command path (one subject each in the raw stream)")
	fs.IntVar(&cfg.clients, "clients", 32, "concurrent clients, each sending one command at a time")
	fs.IntVar(&cfg.events, "events", 1_000_000, "events in LEDGER for the cold start (0: no cold start)")
	fs.IntVar(&cfg.coldApps, "cold-apps", 1000, "apps of the cold start's events")
}

// validate returns the errors of cfg, joined.
func (cfg *commandsConfig) validate() error {
	var errs []error
	for _, s := range cfg.syncs {
		if s != "interval" && s != "always" {
			errs = append(errs, fmt.Errorf("-sync %q: interval or always", s))
		}
	}
	if cfg.duration <= 0 {
		errs = append(errs, errors.New("-duration must be positive"))
	}
	if cfg.apps < 1 || cfg.clients < 1 {
		errs = append(errs, errors.New("-apps and -clients must be at least 1"))
	}
	if cfg.events < 0 || (cfg.events > 0 && cfg.coldApps < 1) {
		errs = append(errs, errors.New("-events must be at least 0, and -cold-apps at least 1"))
	}
	return errors.Join(errs...)
}

// quicken makes cfg the short form of CI: 1 s per run, 8 apps, a cold
// start over at most 20,000 events of 20 apps.
func (cfg *commandsConfig) quicken() {
	cfg.duration, cfg.apps = time.Second, 8
	cfg.events, cfg.coldApps = min(cfg.events, 20_000), min(cfg.coldApps, 20)
}

func runCommands(args []string) error {
	var cfg commandsConfig
	fs := flag.NewFlagSet("backupbench commands", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), commandsUsage)
		fs.PrintDefaults()
	}
	cfg.register(fs)
	quick := fs.Bool("quick", false, "a short run for CI: 1 s per run, 8 apps, a cold start over 20,000 events of 20 apps, nothing written")
	write := fs.String("write", "", "write the table into this markdown file (between its backupbench commands markers)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("commands: unexpected arguments %q", fs.Args())
	}
	if *quick {
		cfg.quicken()
		*write = ""
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	tmp, bin, done, err := workDir(ctx, "backupbench-commands-", false)
	if err != nil {
		return err
	}
	defer done()
	rep := report{commands: cfg, started: time.Now()}
	if err := rep.measureCommandPath(ctx, bin, tmp); err != nil {
		return err
	}
	out := rep.markdown()
	fmt.Print(out)
	if *write != "" {
		return writeBetweenMarkers(*write, "backupbench commands", out)
	}
	return nil
}

// measureCommandPath measures every --sync mode of r.commands and then the
// cold start, each on a backupd from bin with a data dir under dir.
func (r *report) measureCommandPath(ctx context.Context, bin, dir string) error {
	for _, sync := range r.commands.syncs {
		m, err := measureCommands(ctx, bin, filepath.Join(dir, sync), sync, r.commands)
		if err != nil {
			return fmt.Errorf("--sync %s: %w", sync, err)
		}
		r.modes = append(r.modes, m)
		r.natsVersion = m.natsVersion
	}
	if r.commands.events > 0 {
		var err error
		if r.cold, err = measureColdStart(ctx, bin, filepath.Join(dir, "cold"), r.commands.coldApps, r.commands.events, r.commands.clients); err != nil {
			return fmt.Errorf("cold start: %w", err)
		}
		if r.natsVersion == "" {
			r.natsVersion = r.cold.natsVersion
		}
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
