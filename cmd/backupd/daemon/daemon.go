package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/jetstream"
	"github.com/backupledger/backupledger/adapters/natsapi"
	"github.com/backupledger/backupledger/adapters/notify"
	"github.com/backupledger/backupledger/adapters/objectstore"
	"github.com/backupledger/backupledger/adapters/source/dir"
	"github.com/backupledger/backupledger/adapters/source/kv"
	"github.com/backupledger/backupledger/projections"
	"github.com/backupledger/backupledger/service"
)

// drainTimeout bounds the drain of the NATS connection at a graceful stop.
const drainTimeout = 10 * time.Second

// Daemon is one running backupd.
type Daemon struct {
	cfg Config
	log *slog.Logger

	sweeper  *service.Sweeper
	verifier *service.Verifier
	nightly  *service.Nightly
	orphans  *service.Orphans
	timers   *jetstream.Timers
	notifier *notify.Notifier
	reactor  *jetstream.Reactor
	signing  *service.Signing

	// files is the dir source, one for backups and restores alike: it
	// keeps an import and an export of one app apart.
	files *dir.Source

	srv      *server.Server
	login    *NATSCredentials // the embedded server's backupd login
	nc       *nats.Conn
	closed   <-chan struct{} // closed when nc is closed
	js       njs.JetStream
	proj     *projections.Store
	follower *jetstream.Follower
	// snapshots keeps the projection's snapshots; snapSeq is the sequence
	// of the last one this process loaded or made.
	snapshots  *jetstream.Snapshots
	snapSeq    atomic.Uint64
	loadedSnap uint64
	health     health
	ledger     *service.Ledger
	archives   *objectstore.Archives
	config     *kv.Source
	jobs       *jetstream.Jobs
	api        *natsapi.Service
	http       *http.Server
	httpLn     net.Listener
	// metricsSrv serves /metrics on cfg.Metrics.Addr (nil with "none").
	metricsSrv *http.Server
	metricsLn  net.Listener
	// lock is the data dir's lock, held from Start to the end of stop.
	lock *dirLock

	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopOnce sync.Once
	stopErr  error
}

// New checks cfg and returns a Daemon that is not started yet.
func New(cfg Config) (*Daemon, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Daemon{cfg: cfg, log: log}, nil
}

// Run starts the daemon, serves until ctx is done, then stops gracefully.
func (d *Daemon) Run(ctx context.Context) error {
	if err := d.Start(ctx); err != nil {
		return err
	}
	d.log.Info("backupd serving", "http", d.HTTPURL(), "metrics", d.MetricsURL(), "nats", redactURLs(d.NATSURL()), "data_dir", d.cfg.DataDir)
	<-ctx.Done()
	d.log.Info("backupd stopping")
	err := d.Close()
	d.log.Info("backupd stopped", "err", err)
	return err
}

// otherAccounts returns the JetStream API prefixes under which backupd
// reaches the account of the staging bucket and the account of the audit
// mirror ("" for one that is left out): those of docs/nats/accounts.conf
// with the embedded server, else the settings.
func (d *Daemon) otherAccounts() (staging, audit string) {
	if d.srv != nil {
		return DefaultStagingAPI, DefaultAuditAPI
	}
	staging, audit = d.cfg.NATS.StagingAPI, d.cfg.NATS.AuditAPI
	if staging == APINone {
		staging = ""
	}
	if audit == APINone {
		audit = ""
	}
	return staging, audit
}

// stagingJetStream returns the JetStream API of the staging bucket's
// account under prefix, or nil for none, once that account answers. A
// staging bucket left in the ledger's own account by a backupd without
// accounts is removed then: the ledger's account holds nothing that
// others write, and a staging object lives an hour at most anyway.
func (d *Daemon) stagingJetStream(ctx context.Context, prefix string) (njs.JetStream, error) {
	var js njs.JetStream
	if prefix != "" {
		var err error
		if js, err = njs.NewWithAPIPrefix(d.nc, prefix); err != nil {
			return nil, fmt.Errorf("jetstream of the staging bucket's account: %w", err)
		}
		if _, err := js.AccountInfo(ctx); err != nil {
			return nil, fmt.Errorf("the staging bucket's account, under %s: %w (see docs/nats/accounts.conf, or --nats-staging-api none)", prefix, err)
		}
	}
	old := "OBJ_" + objectstore.DefaultStagingBucket
	switch _, err := d.js.Stream(ctx, old); {
	case err == nil:
		if err := d.js.DeleteStream(ctx, old); err != nil {
			return nil, fmt.Errorf("remove the staging bucket of the ledger's account: %w", err)
		}
		d.log.Info("removed the staging bucket of the ledger's account; staging is in the producers' account now", "stream", old)
	case !errors.Is(err, njs.ErrStreamNotFound):
		return nil, fmt.Errorf("look for a staging bucket in the ledger's account: %w", err)
	}
	return js, nil
}

// dropForeignConsumers deletes the consumers of LEDGER that are not
// backupd's: those that logins of the single account of old (the audit
// role) left on it. backupd's own are its durable ones and pull consumers;
// the audit mirror's delivers under jetstream.MirrorDeliverPrefix. A push
// consumer of someone else's would deliver the ledger to any subject of
// the ledger's account.
func (d *Daemon) dropForeignConsumers(ctx context.Context) error {
	st, err := d.js.Stream(ctx, jetstream.StreamName)
	if err != nil {
		return fmt.Errorf("stream %s: %w", jetstream.StreamName, err)
	}
	own := map[string]bool{jetstream.ConsumerName: true, jetstream.ReactorConsumerName: true}
	list := st.ListConsumers(ctx)
	var drop []string
	for info := range list.Info() {
		cfg := info.Config
		push := cfg.DeliverSubject != "" && !strings.HasPrefix(cfg.DeliverSubject, jetstream.MirrorDeliverPrefix+".")
		if push || (cfg.Durable != "" && !own[cfg.Durable]) {
			drop = append(drop, info.Name)
		}
	}
	if err := list.Err(); err != nil {
		return fmt.Errorf("consumers of %s: %w", jetstream.StreamName, err)
	}
	for _, name := range drop {
		if err := st.DeleteConsumer(ctx, name); err != nil && !errors.Is(err, njs.ErrConsumerNotFound) {
			return fmt.Errorf("delete consumer %s of %s: %w", name, jetstream.StreamName, err)
		}
		d.log.Warn("deleted a consumer of the ledger that is not backupd's", "stream", jetstream.StreamName, "consumer", name)
	}
	return nil
}

// setupAuditMirror creates or updates the audit consumers' mirror of LEDGER
// in the account reached under prefix.
func (d *Daemon) setupAuditMirror(ctx context.Context, prefix string) error {
	js, err := njs.NewWithAPIPrefix(d.nc, prefix)
	if err != nil {
		return fmt.Errorf("jetstream of the audit mirror's account: %w", err)
	}
	if err := jetstream.SetupAuditMirror(ctx, js, d.cfg.NATS.Replicas); err != nil {
		return fmt.Errorf("%w (the audit mirror lives in its own account, reached under %s: see docs/nats/accounts.conf, or --nats-audit-api none)", err, prefix)
	}
	return nil
}

// sources builds the sources of every app: the default, and the apps that
// use another kind. wrap, when set, wraps each of them.
func (d *Daemon) sources(wrap func(service.Source) service.Source) (service.SourceSet, error) {
	root := d.cfg.Sources.DirRoot
	if root == "" {
		root = filepath.Join(d.cfg.DataDir, "files")
	}
	byKind := func(kind string) (service.Source, error) {
		var s service.Source = d.config
		if kind == SourceDir {
			if d.files == nil {
				var err error
				if d.files, err = dir.New(dir.Config{Root: root}); err != nil {
					return nil, err
				}
			}
			s = d.files
		}
		if wrap != nil {
			s = wrap(s)
		}
		return s, nil
	}
	set := service.SourceSet{ByApp: map[string]service.Source{}}
	var err error
	if set.Default, err = byKind(d.cfg.Sources.Default); err != nil {
		return set, err
	}
	for app, kind := range d.cfg.Sources.ByApp {
		if set.ByApp[app], err = byKind(kind); err != nil {
			return set, err
		}
	}
	return set, nil
}

// every runs sweep (named what, for the log) once the projection has
// caught up and then every period, until ctx ends (service.Every).
func (d *Daemon) every(period time.Duration, what string, sweep func(context.Context) (int, error)) func(context.Context) error {
	return service.Every(period, what, d.follower.WaitCaughtUp, sweep, d.log)
}

// SweepNow expires the backups whose retention has passed now, and
// returns how many (tests, and operators through a later API).
func (d *Daemon) SweepNow(ctx context.Context) (int, error) { return d.sweeper.Sweep(ctx) }

// goRun runs a long-running part until ctx ends, logging an unexpected end.
func (d *Daemon) goRun(ctx context.Context, name string, run func(context.Context) error) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := run(ctx); err != nil && ctx.Err() == nil {
			d.log.Error("part stopped", "part", name, "err", err)
		}
	}()
}

// WaitReady returns once the projections have caught up with the stream.
func (d *Daemon) WaitReady(ctx context.Context) error { return d.follower.WaitCaughtUp(ctx) }

// HTTPURL returns the base URL of the HTTP API: https with --tls-cert.
func (d *Daemon) HTTPURL() string {
	if d.cfg.HTTP.TLSCert != "" {
		return "https://" + d.HTTPAddr()
	}
	return "http://" + d.HTTPAddr()
}

// HTTPAddr returns the address the HTTP API listens on.
func (d *Daemon) HTTPAddr() string {
	if d.httpLn == nil {
		return ""
	}
	return d.httpLn.Addr().String()
}

// MetricsAddr returns the address /metrics is served on, "" for none.
func (d *Daemon) MetricsAddr() string {
	if d.metricsLn == nil {
		return ""
	}
	return d.metricsLn.Addr().String()
}

// MetricsURL returns the URL of /metrics (https with --tls-cert), "" when
// it is not served.
func (d *Daemon) MetricsURL() string {
	if d.metricsLn == nil {
		return ""
	}
	scheme := "http://"
	if d.cfg.HTTP.TLSCert != "" {
		scheme = "https://"
	}
	return scheme + d.MetricsAddr() + "/metrics"
}

// NATSURL returns the URL of the NATS server clients can use: the embedded
// server's listen address (without a login: see NATSCredentials and
// NATSConnectOptions), or the configured cluster.
func (d *Daemon) NATSURL() string {
	if d.srv != nil {
		if d.cfg.NATS.Listen == ListenNone {
			return ""
		}
		return d.srv.ClientURL()
	}
	return d.cfg.NATS.URL
}

// Server returns the embedded NATS server, or nil.
func (d *Daemon) Server() *server.Server { return d.srv }

// Close stops gracefully: no new requests, in-flight requests finish, running
// jobs are handed back to the queue, the connection drains and the embedded
// server shuts down.
func (d *Daemon) Close() error {
	d.stopOnce.Do(func() { d.stopErr = d.stop(true) })
	return d.stopErr
}

// Kill stops at once, as a crash would: nothing is handed back or drained.
func (d *Daemon) Kill() {
	d.stopOnce.Do(func() { d.stopErr = d.stop(false) })
}

func (d *Daemon) stop(graceful bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.ShutdownTimeout)
	defer cancel()
	var errs []error
	if !graceful && d.nc != nil {
		d.nc.Close() // no ack, nak or reply leaves this process any more
	}
	for _, srv := range []struct {
		what string
		srv  *http.Server
	}{{"http", d.http}, {"metrics", d.metricsSrv}} {
		switch {
		case srv.srv == nil:
		case graceful:
			if err := srv.srv.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("%s shutdown: %w", srv.what, err))
			}
		default:
			srv.srv.Close()
		}
	}
	if d.api != nil {
		if err := d.api.Stop(); err != nil && graceful {
			errs = append(errs, fmt.Errorf("nats api stop: %w", err))
		}
	}
	if d.cancel != nil {
		d.cancel()
	}
	d.wg.Wait()
	if graceful && d.snapshots != nil {
		// Nothing is applied any more: the next start folds from here.
		// With a bound of its own: the requests and jobs may have spent
		// the shutdown's.
		sctx, scancel := context.WithTimeout(context.Background(), snapshotAtStop)
		if err := d.saveSnapshot(sctx); err != nil {
			d.log.Warn("snapshot at stop", "err", err)
		}
		scancel()
	}
	if d.nc != nil && graceful {
		// The drain has its own bound: the shutdown budget may be spent
		// on requests and jobs by now.
		drain := time.NewTimer(drainTimeout)
		defer drain.Stop()
		if err := d.nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			errs = append(errs, fmt.Errorf("nats drain: %w", err))
		}
		select {
		case <-d.closed:
		case <-drain.C:
			errs = append(errs, fmt.Errorf("nats drain: not done after %s", drainTimeout))
		}
		d.nc.Close()
	}
	if d.srv != nil {
		d.srv.Shutdown()
		d.srv.WaitForShutdown()
	}
	// Last: the next backupd on this data dir may start now.
	if err := d.lock.release(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func workerName() string {
	host, err := os.Hostname()
	if err != nil {
		host = "backupd"
	}
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}
