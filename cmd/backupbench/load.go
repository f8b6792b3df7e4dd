package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/cmd/backupbench/loadgen"
	"github.com/backupledger/backupledger/cmd/backupd/daemon"
)

// loadConfig is the command line of `backupbench load`.
type loadConfig struct {
	targets   string // base URLs of running backupds; empty: start our own
	token     string
	natsURL   string // with targets: the NATS API's server
	natsCreds string // with targets: the producer's login file
	checkURL  string // with targets: a login that reads LEDGER, or "none"
	checkCred string

	nodes, replicas int
	sync            string
	fault           string
	via             string
	apps, clients   int
	rate            float64
	duration        time.Duration
	mix             string
	retryFor        time.Duration
	bound           time.Duration
	attempt         time.Duration
	keep            bool
	timeout         time.Duration
	profile         string
	pprofAddr       string
}

const loadUsage = `usage: backupbench load [flags]

Sends creates, renames and deletes of backups to backupd over HTTP or the NATS
API, each with an idempotency key of its own and retried with the same key
on 503 or no answer; prints throughput and latency percentiles; then reads
the LEDGER stream and checks that every acknowledged command is in it exactly
once. Without -target it starts its own backupd (a separate process, temp
data dir): on its embedded NATS server (-nodes 1), or as -replicas processes
on an in-process NATS cluster of -nodes servers, where -fault shuts a server
down during the run and starts it again.

`

func runLoad(args []string) error {
	var cfg loadConfig
	fs := flag.NewFlagSet("backupbench load", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), loadUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.targets, "target", "", "base URLs of running backupd replicas, comma-separated (default: start backupd)")
	fs.StringVar(&cfg.token, "token", "bench", "bearer token (an administrator's) of the requests, with -target")
	fs.StringVar(&cfg.natsURL, "nats-url", "", "with -target and -via nats: the NATS servers of the API")
	fs.StringVar(&cfg.natsCreds, "nats-creds", "", "with -target: the producer's login (<data-dir>/nats/producer.json of backupd)")
	fs.StringVar(&cfg.checkURL, "check-url", "", `with -target: the NATS servers to read LEDGER from for the check, or "none"`)
	fs.StringVar(&cfg.checkCred, "check-creds", "", "with -target: a login that reads LEDGER (<data-dir>/nats/backupd.json)")
	fs.IntVar(&cfg.nodes, "nodes", 1, "without -target: 1 (backupd's embedded NATS) or the servers of an in-process NATS cluster (3)")
	fs.IntVar(&cfg.replicas, "replicas", 2, "with -nodes > 1: backupd processes, each with --replicas equal to -nodes")
	fs.StringVar(&cfg.sync, "sync", "interval", `backupd --sync: "interval" or "always" (and of the cluster's servers)`)
	fs.StringVar(&cfg.fault, "fault", "none", `with -nodes > 1: "stream-leader" (LEDGER's leader) or "quorum" (all but one server) down from 1/3 to 2/3 of the run`)
	fs.StringVar(&cfg.via, "via", "http", `"http" or "nats"`)
	fs.IntVar(&cfg.apps, "apps", 64, "apps")
	fs.IntVar(&cfg.clients, "clients", 32, "concurrent clients, each sending one command at a time")
	fs.Float64Var(&cfg.rate, "rate", 0, "commands per second over all clients (0: as fast as answers come)")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long commands are started")
	fs.StringVar(&cfg.mix, "mix", "rename", `commands and weights, e.g. "rename=8,create=1,delete=1" (creates need backupd --min-interval 0s)`)
	fs.DurationVar(&cfg.retryFor, "retry-for", 60*time.Second, "how long a command is retried with its key before it counts as failed")
	fs.DurationVar(&cfg.bound, "bound", 0, "longest single answer allowed (0: none); longer ones are errors")
	fs.DurationVar(&cfg.attempt, "attempt-timeout", 10*time.Second, "how long an attempt waits for its answer before the command is sent again")
	fs.StringVar(&cfg.profile, "profile", "", "with -nodes 1: write a CPU profile of backupd over the middle of the run to this file")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the temporary directory")
	fs.DurationVar(&cfg.timeout, "timeout", 10*time.Minute, "bound on the whole run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	mix, err := loadgen.ParseMix(cfg.mix)
	if err != nil {
		return err
	}
	switch {
	case cfg.via != "http" && cfg.via != "nats":
		return fmt.Errorf("-via %q: http or nats", cfg.via)
	case cfg.fault != "none" && cfg.fault != "stream-leader" && cfg.fault != "quorum":
		return fmt.Errorf("-fault %q: none, stream-leader or quorum", cfg.fault)
	case cfg.fault != "none" && (cfg.targets != "" || cfg.nodes < 3):
		return errors.New("-fault needs our own cluster: no -target, -nodes 3 or more")
	case cfg.nodes < 1 || cfg.replicas < 1:
		return errors.New("-nodes and -replicas must be at least 1")
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()

	sys, err := startSystem(ctx, &cfg)
	if err != nil {
		return err
	}
	defer sys.close()

	fmt.Fprintf(os.Stderr, "setting up %d apps...\n", cfg.apps)
	apps, err := loadgen.Setup(ctx, sys.bases[0], cfg.token, "load", cfg.apps)
	if err != nil {
		return err
	}
	var from uint64
	if sys.check != nil {
		if from, err = loadgen.LastSeq(ctx, sys.check); err != nil {
			return fmt.Errorf("the ledger's last sequence: %w", err)
		}
	}
	targets, err := sys.targets(&cfg)
	if err != nil {
		return err
	}
	faultDone := make(chan error, 1)
	if cfg.fault != "none" {
		go func() { faultDone <- sys.cluster.fault(ctx, cfg.fault, sys.check, cfg.duration) }()
	} else {
		faultDone <- nil
	}
	profiled := make(chan error, 1)
	if cfg.profile != "" {
		if cfg.pprofAddr == "" {
			return errors.New("-profile needs our own backupd with -nodes 1")
		}
		go func() {
			secs := max(int(cfg.duration.Seconds())/2, 1)
			if !loadgen.Sleep(ctx, cfg.duration/4) {
				profiled <- ctx.Err()
				return
			}
			profiled <- cpuProfile(ctx, cfg.pprofAddr, cfg.profile, secs)
		}()
	} else {
		profiled <- nil
	}
	fmt.Fprintf(os.Stderr, "sending %s over %s for %s...\n", mix, cfg.via, cfg.duration)
	res, err := loadgen.Run(ctx, loadgen.Config{Targets: targets, Apps: apps, Clients: cfg.clients,
		Rate: cfg.rate, Duration: cfg.duration, Mix: mix, RetryFor: cfg.retryFor, Bound: cfg.bound})
	if err != nil {
		return err
	}
	if err := <-faultDone; err != nil {
		return fmt.Errorf("fault: %w", err)
	}
	if err := <-profiled; err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	where := fmt.Sprintf("1 backupd, embedded NATS, --sync %s", cfg.sync)
	switch {
	case cfg.targets != "":
		where = "backupd at " + cfg.targets
	case cfg.nodes > 1:
		where = fmt.Sprintf("%d backupd on a %d-node NATS cluster (R%d), --sync %s, fault %s", cfg.replicas, cfg.nodes, cfg.nodes, cfg.sync, cfg.fault)
	}
	fmt.Printf("backupbench load: %s; %s, %d apps, %d clients, rate %s, %s, mix %s\n",
		where, cfg.via, cfg.apps, cfg.clients, rateString(cfg.rate), cfg.duration, mix)
	fmt.Println(res.Summary())
	for _, e := range res.Errors {
		fmt.Println("  error:", e)
	}
	var bad []string
	if res.ErrorCount > 0 {
		bad = append(bad, fmt.Sprintf("%d errors", res.ErrorCount))
	}
	if sys.check != nil {
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Minute)
		counts, err := loadgen.CommandCounts(cctx, sys.check, from)
		ccancel()
		if err != nil {
			return err
		}
		c := loadgen.Compare(res.Acked, counts)
		fmt.Println("ledger check:", c)
		for _, e := range c.Examples {
			fmt.Println("  ", e)
		}
		if !c.OK() {
			bad = append(bad, "acknowledged commands lost or stored twice")
		}
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}

func rateString(r float64) string {
	if r <= 0 {
		return "open (as fast as answers come)"
	}
	return fmt.Sprintf("%.0f/s", r)
}

// system is the backupd replicas under load and what the load reaches them
// with.
type system struct {
	tmp     string
	keep    bool
	bases   []string
	procs   []*backupd
	cluster *cluster
	// producer logs in to the NATS API (nil: no login needed).
	producer *daemon.NATSCredentials
	natsURL  string
	// check reads LEDGER (nil: no check).
	check  njs.JetStream
	conns  []*nats.Conn
	closed bool
}

func startSystem(ctx context.Context, cfg *loadConfig) (*system, error) {
	s := &system{keep: cfg.keep}
	if cfg.targets != "" {
		return s, s.external(cfg)
	}
	tmp, err := os.MkdirTemp("", "backupbench-load-")
	if err != nil {
		return nil, err
	}
	s.tmp = tmp
	bin, err := buildBackupd(ctx, tmp)
	if err != nil {
		s.close()
		return nil, err
	}
	if err := s.start(ctx, cfg, bin); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// start starts backupd: one with its embedded server, or cfg.replicas on an
// in-process cluster.
func (s *system) start(ctx context.Context, cfg *loadConfig, bin string) error {
	common := []string{"--sync", cfg.sync, "--admin-token", cfg.token, "--log-level", "warn", "--min-interval", "0s"}
	if cfg.nodes == 1 {
		dir := filepath.Join(s.tmp, "data")
		args := append(common, "--nats-listen", freeAddr())
		if cfg.profile != "" {
			cfg.pprofAddr = freeAddr()
			args = append(args, "--pprof-addr", cfg.pprofAddr)
		}
		d, err := startProcess(ctx, bin, dir, args)
		if err != nil {
			return err
		}
		s.procs, s.bases = append(s.procs, d), append(s.bases, d.base)
		d.nc, d.js, err = connectAs(dir, daemon.RoleBackupd)
		if err != nil {
			return err
		}
		s.check = d.js
		login, err := daemon.ReadNATSCredentials(dir, daemon.RoleProducer)
		if err != nil {
			return err
		}
		s.producer, s.natsURL = &login, login.URL
		return nil
	}
	c, err := startCluster(filepath.Join(s.tmp, "nats"), cfg.nodes, cfg.sync)
	if err != nil {
		return err
	}
	s.cluster, s.natsURL = c, c.urls()
	nc, err := nats.Connect(s.natsURL, nats.MaxReconnects(-1))
	if err != nil {
		return err
	}
	s.conns = append(s.conns, nc)
	if s.check, err = njs.New(nc); err != nil {
		return err
	}
	args := append(common, "--nats-url", c.urls(), "--replicas", fmt.Sprint(cfg.nodes),
		"--nats-staging-api", "none", "--nats-audit-api", "none")
	for i := range cfg.replicas {
		d, err := startProcess(ctx, bin, filepath.Join(s.tmp, fmt.Sprintf("replica-%d", i+1)), args)
		if err != nil {
			return err
		}
		s.procs, s.bases = append(s.procs, d), append(s.bases, d.base)
	}
	return nil
}

// external reaches running backupds.
func (s *system) external(cfg *loadConfig) error {
	s.bases = strings.Split(cfg.targets, ",")
	s.natsURL = cfg.natsURL
	if cfg.natsCreds != "" {
		login, err := readLogin(cfg.natsCreds)
		if err != nil {
			return err
		}
		s.producer = &login
		if s.natsURL == "" {
			s.natsURL = login.URL
		}
	}
	if cfg.checkURL == "none" {
		return nil
	}
	var opts []nats.Option
	url := cfg.checkURL
	if cfg.checkCred != "" {
		login, err := readLogin(cfg.checkCred)
		if err != nil {
			return err
		}
		opts = login.Options()
		if url == "" {
			url = login.URL
		}
	}
	if url == "" {
		return errors.New(`with -target: -check-url and/or -check-creds to read LEDGER, or -check-url none`)
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return fmt.Errorf("connect to read LEDGER: %w", err)
	}
	s.conns = append(s.conns, nc)
	s.check, err = njs.New(nc)
	return err
}

// targets returns the load's targets: every replica over HTTP, or a NATS
// connection per replica (the NATS API's queue group spreads the requests).
func (s *system) targets(cfg *loadConfig) ([]loadgen.Target, error) {
	var out []loadgen.Target
	for _, base := range s.bases {
		if cfg.via == "http" {
			h := loadgen.NewHTTP(base, cfg.token, cfg.clients)
			h.Timeout = cfg.attempt
			out = append(out, h)
			continue
		}
		if s.natsURL == "" {
			return nil, errors.New("-via nats needs -nats-url or -nats-creds")
		}
		opts := []nats.Option{nats.MaxReconnects(-1)}
		if s.producer != nil {
			opts = append(opts, s.producer.Options()...)
		}
		nc, err := nats.Connect(s.natsURL, opts...)
		if err != nil {
			return nil, fmt.Errorf("connect to the NATS API: %w", err)
		}
		s.conns = append(s.conns, nc)
		out = append(out, &loadgen.NATS{Conn: nc, Token: cfg.token, Timeout: cfg.attempt})
	}
	return out, nil
}

func (s *system) close() {
	if s.closed {
		return
	}
	s.closed = true
	for _, nc := range s.conns {
		nc.Close()
	}
	for _, d := range s.procs {
		d.stop()
	}
	if s.cluster != nil {
		s.cluster.shutdown()
	}
	if s.tmp != "" && !s.keep {
		os.RemoveAll(s.tmp)
	}
}

// readLogin reads a login file that backupd wrote (<data-dir>/nats/<role>.json).
func readLogin(path string) (daemon.NATSCredentials, error) {
	var c daemon.NATSCredentials
	b, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// connectAs connects to the embedded server of the backupd with data dir
// dir as role.
func connectAs(dir, role string) (*nats.Conn, njs.JetStream, error) {
	login, err := daemon.ReadNATSCredentials(dir, role)
	if err != nil {
		return nil, nil, err
	}
	nc, err := login.Connect()
	if err != nil {
		return nil, nil, err
	}
	js, err := njs.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}
