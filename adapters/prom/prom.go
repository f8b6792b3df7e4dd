// Package prom exposes backupledger's metrics to Prometheus
// (docs/metrics.md): counters and histograms fed by the ledger's Observer
// and the adapters' hooks, and gauges read from the projection at scrape
// time. Everything is registered on the registry given to New; there are
// no package-level metrics.
package prom

import (
	"cmp"
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/backupledger/backupledger/domain"
)

// Namespace prefixes every metric of the service.
const Namespace = "backupledger"

// DefaultMaxApps bounds the apps of the per-app metric.
const DefaultMaxApps = 500

// Ledger is what the scrape-time gauges read: the projection
// (*projections.Store).
type Ledger interface {
	Apps() []string
	ReadApp(app string, fn func(a *domain.App))
	// Applied returns the last stream sequence the projection applied.
	Applied() uint64
	// Rejected returns how many messages of the stream the projection
	// refused (not signed by the ledger's keys, or not chained), by reason.
	Rejected() map[string]uint64
	// LastRefused returns the stream sequence of the last message the
	// projection refused, 0 if none.
	LastRefused() uint64
}

// JetStreamUsage is the embedded NATS server's JetStream usage.
type JetStreamUsage struct {
	StorageBytes uint64
	Messages     uint64
	Streams      int
}

// Config says where the scrape-time gauges come from.
type Config struct {
	// MaxApps bounds the apps of backupledger_last_successful_backup_
	// timestamp_seconds (default DefaultMaxApps): the apps whose last
	// backup is the most recent are kept.
	MaxApps int
	// LastSeq returns the stream's last sequence, for the projection lag;
	// nil leaves the lag out.
	LastSeq func(ctx context.Context) (uint64, error)
	// JetStream returns the embedded server's usage; nil (an external
	// cluster) leaves those gauges out.
	JetStream func() (JetStreamUsage, error)
	// JobsInFlight returns how many backup jobs this process runs.
	JobsInFlight func() int
	// Nightly is the schedule of apps that set none (the server's
	// default), for backupledger_nightly_enabled.
	Nightly domain.Schedule
}

// Metrics holds the service's metrics.
type Metrics struct {
	commands        *prometheus.CounterVec
	commandDuration *prometheus.HistogramVec
	appended        *prometheus.CounterVec
	conflicts       prometheus.Counter
	retries         prometheus.Counter
	backupsFinished *prometheus.CounterVec
	backupDuration  *prometheus.HistogramVec
	restoresDone    *prometheus.CounterVec
	restoreDuration *prometheus.HistogramVec
	archiveWritten  prometheus.Counter
	archiveRead     prometheus.Counter
	jobsRedelivered prometheus.Counter
	jobsFailed      prometheus.Counter
	webhooks        *prometheus.CounterVec
	httpRequests    *prometheus.CounterVec

	ledger Ledger
}

var _ domain.Observer = (*Metrics)(nil)

// New registers the service's metrics on reg, with the gauges read from
// ledger and cfg at scrape time.
func New(reg prometheus.Registerer, ledger Ledger, cfg Config) (*Metrics, error) {
	name := func(n string) string { return Namespace + "_" + n }
	m := &Metrics{
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{Name: name("commands_total"),
			Help: "Commands this process decided, by command and result (ok, duplicate, refused, error)."}, []string{"command", "result"}),
		commandDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name("command_duration_seconds"),
			Help:    "Time from a command's start to its answer.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, []string{"command"}),
		appended: prometheus.NewCounterVec(prometheus.CounterOpts{Name: name("events_appended_total"),
			Help: "Events this process appended, by type."}, []string{"type"}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{Name: name("append_conflicts_total"),
			Help: "Appends refused because another process wrote the app first."}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{Name: name("append_retries_total"),
			Help: "Commands decided again after an append conflict."}),
		backupsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{Name: name("backups_finished_total"),
			Help: "Backups this process finished, by result (ready, failed) and origin."}, []string{"result", "origin"}),
		backupDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name("backup_duration_seconds"),
			Help:    "Time from a backup's request to its end, by result.",
			Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200}}, []string{"result"}),
		restoresDone: prometheus.NewCounterVec(prometheus.CounterOpts{Name: name("restores_finished_total"),
			Help: "Restores this process ended, by result (completed, failed)."}, []string{"result"}),
		restoreDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name("restore_duration_seconds"),
			Help:    "Time from a restore's request to its end, by result.",
			Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200}}, []string{"result"}),
		archiveWritten: prometheus.NewCounter(prometheus.CounterOpts{Name: name("archive_written_bytes_total"),
			Help: "Archive bytes this process stored (backups and uploads)."}),
		archiveRead: prometheus.NewCounter(prometheus.CounterOpts{Name: name("archive_read_bytes_total"),
			Help: "Archive bytes this process read back (downloads, restores, checks)."}),
		jobsRedelivered: prometheus.NewCounter(prometheus.CounterOpts{Name: name("jobs_redelivered_total"),
			Help: "Jobs this process got again after an earlier delivery."}),
		jobsFailed: prometheus.NewCounter(prometheus.CounterOpts{Name: name("jobs_failed_total"),
			Help: "Jobs that failed on their last delivery."}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: name("webhook_deliveries_total"),
			Help: "Webhook delivery attempts this process made, by result (delivered, failed, gave_up, dropped)."}, []string{"result"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: name("http_requests_total"),
			Help: "HTTP requests answered, by method and status code."}, []string{"method", "code"}),
		ledger: ledger,
	}
	cs := []prometheus.Collector{m.commands, m.commandDuration, m.appended, m.conflicts, m.retries, m.backupsFinished,
		m.backupDuration, m.restoresDone, m.restoreDuration, m.archiveWritten, m.archiveRead, m.jobsRedelivered,
		m.jobsFailed, m.webhooks, m.httpRequests, &ledgerCollector{ledger: ledger, cfg: cfg}}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Known label values start at zero, so that rates and alerts see them
	// before the first one happens.
	for _, r := range []string{"ready", "failed"} {
		m.backupDuration.WithLabelValues(r)
		for _, o := range []domain.Origin{domain.OriginManual, domain.OriginNightly, domain.OriginPreRestore} {
			m.backupsFinished.WithLabelValues(r, string(o))
		}
	}
	for _, r := range []string{"completed", "failed"} {
		m.restoresDone.WithLabelValues(r)
		m.restoreDuration.WithLabelValues(r)
	}
	for _, r := range []string{"delivered", "failed", "gave_up", "dropped"} {
		m.webhooks.WithLabelValues(r)
	}
	return m, nil
}

// Executed implements domain.Observer.
func (m *Metrics) Executed(command, outcome string, took time.Duration) {
	m.commands.WithLabelValues(command, outcome).Inc()
	m.commandDuration.WithLabelValues(command).Observe(took.Seconds())
}

// Conflict implements domain.Observer.
func (m *Metrics) Conflict(retried bool) {
	m.conflicts.Inc()
	if retried {
		m.retries.Inc()
	}
}

// Appended implements domain.Observer: it counts the event and, for the
// end of a backup or a restore, reads its start from the projection,
// which has not applied the event yet.
func (m *Metrics) Appended(app string, ev domain.Event) {
	m.appended.WithLabelValues(ev.EventType()).Inc()
	var (
		result string
		start  time.Time
		origin domain.Origin
		backup bool
		now    = time.Now()
	)
	switch e := ev.(type) {
	case *domain.BackupCompleted, *domain.BackupFailed:
		result, backup = "ready", true
		if _, failed := e.(*domain.BackupFailed); failed {
			result = "failed"
		}
		m.ledger.ReadApp(app, func(a *domain.App) {
			if b, ok := a.Backup(domain.BackupID(ev)); ok {
				start, origin = b.CreatedAt, b.Origin
			}
		})
	case *domain.RestoreCompleted, *domain.RestoreFailed:
		result = "completed"
		if _, failed := e.(*domain.RestoreFailed); failed {
			result = "failed"
		}
		m.ledger.ReadApp(app, func(a *domain.App) {
			if r, ok := a.Restore(domain.RestoreID(ev)); ok {
				start = r.RequestedAt
			}
		})
	default:
		return
	}
	if backup {
		m.backupsFinished.WithLabelValues(result, string(cmp.Or(origin, domain.OriginManual))).Inc()
		if !start.IsZero() {
			m.backupDuration.WithLabelValues(result).Observe(now.Sub(start).Seconds())
		}
		return
	}
	m.restoresDone.WithLabelValues(result).Inc()
	if !start.IsZero() {
		m.restoreDuration.WithLabelValues(result).Observe(now.Sub(start).Seconds())
	}
}

// ArchiveWritten counts archive bytes stored.
func (m *Metrics) ArchiveWritten(n int64) { m.archiveWritten.Add(float64(n)) }

// ArchiveRead counts archive bytes read back.
func (m *Metrics) ArchiveRead(n int64) { m.archiveRead.Add(float64(n)) }

// JobRedelivered counts a job delivered again.
func (m *Metrics) JobRedelivered() { m.jobsRedelivered.Inc() }

// JobFailed counts a job that failed on its last delivery.
func (m *Metrics) JobFailed() { m.jobsFailed.Inc() }

// WebhookAttempt counts a webhook delivery attempt by its result.
func (m *Metrics) WebhookAttempt(result string) { m.webhooks.WithLabelValues(result).Inc() }

// InstrumentHTTP counts the requests h answers by method and status code.
func (m *Metrics) InstrumentHTTP(h http.Handler) http.Handler {
	return promhttp.InstrumentHandlerCounter(m.httpRequests, h)
}

// ledgerCollector reads the gauges at scrape time.
type ledgerCollector struct {
	ledger Ledger
	cfg    Config
}

var (
	descBackups = prometheus.NewDesc(Namespace+"_backups", "Live backups of the ledger by status.", []string{"status"}, nil)
	descLast    = prometheus.NewDesc(Namespace+"_last_successful_backup_timestamp_seconds",
		"When each app's last backup became ready (Unix time); the most recent apps up to --metrics-max-apps.", []string{"app"}, nil)
	descNightly = prometheus.NewDesc(Namespace+"_nightly_enabled",
		"1 when the app's nightly backups are on, else 0; for the same apps as the last successful backup.", []string{"app"}, nil)
	descOmitted     = prometheus.NewDesc(Namespace+"_metrics_apps_omitted", "Apps left out of the per-app metrics by --metrics-max-apps.", nil, nil)
	descRestores    = prometheus.NewDesc(Namespace+"_restores_in_progress", "Restores running now.", nil, nil)
	descApplied     = prometheus.NewDesc(Namespace+"_projection_applied_sequence", "The last stream sequence this process's projection applied.", nil, nil)
	descLag         = prometheus.NewDesc(Namespace+"_projection_lag_events", "Stream messages the projection has not applied yet.", nil, nil)
	descInFlight    = prometheus.NewDesc(Namespace+"_jobs_in_flight", "Backup jobs this process runs now.", nil, nil)
	descLastRefused = prometheus.NewDesc(Namespace+"_ledger_rejected_last_sequence",
		"The stream sequence of the last message of the ledger's stream this process's projection refused, 0 if none: it does not move when a restart folds the stream again.", nil, nil)
	descRejected = prometheus.NewDesc(Namespace+"_ledger_rejected_total",
		"Messages of the ledger's stream this process's projection refused, by reason: not signed by a key of the ledger, or not chained to the app's last event (docs/security.md).", []string{"reason"}, nil)
	descJSBytes  = prometheus.NewDesc(Namespace+"_nats_jetstream_storage_bytes", "File storage the embedded NATS server's JetStream uses.", nil, nil)
	descJSMsgs   = prometheus.NewDesc(Namespace+"_nats_jetstream_messages", "Messages in the embedded NATS server's streams.", nil, nil)
	descJSStream = prometheus.NewDesc(Namespace+"_nats_jetstream_streams", "Streams of the embedded NATS server.", nil, nil)
)

// Describe implements prometheus.Collector.
func (c *ledgerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBackups, descLast, descNightly, descOmitted, descRestores, descApplied, descLag, descInFlight, descRejected, descLastRefused} {
		ch <- d
	}
	if c.cfg.JetStream != nil {
		ch <- descJSBytes
		ch <- descJSMsgs
		ch <- descJSStream
	}
}

// Collect implements prometheus.Collector.
func (c *ledgerCollector) Collect(ch chan<- prometheus.Metric) {
	byStatus := map[domain.Status]int{domain.StatusQueued: 0, domain.StatusRunning: 0, domain.StatusReady: 0, domain.StatusFailed: 0}
	restores := 0
	type last struct {
		app     string
		at      time.Time
		nightly bool
	}
	var lasts []last
	for _, app := range c.ledger.Apps() {
		c.ledger.ReadApp(app, func(a *domain.App) {
			for st, n := range a.CountByStatus() {
				byStatus[st] += n
			}
			if a.ActiveRestore() != "" {
				restores++
			}
			lasts = append(lasts, last{app, a.LastBackupAt(), a.EffectiveSchedule(c.cfg.Nightly).Enabled})
		})
	}
	for st, n := range byStatus {
		ch <- prometheus.MustNewConstMetric(descBackups, prometheus.GaugeValue, float64(n), string(st))
	}
	slices.SortFunc(lasts, func(x, y last) int { return cmp.Or(y.at.Compare(x.at), cmp.Compare(x.app, y.app)) })
	limit := cmp.Or(c.cfg.MaxApps, DefaultMaxApps)
	omitted := max(0, len(lasts)-limit)
	for _, l := range lasts[:len(lasts)-omitted] {
		if !l.at.IsZero() {
			ch <- prometheus.MustNewConstMetric(descLast, prometheus.GaugeValue, float64(l.at.UnixMilli())/1000, l.app)
		}
		on := 0.0
		if l.nightly {
			on = 1
		}
		ch <- prometheus.MustNewConstMetric(descNightly, prometheus.GaugeValue, on, l.app)
	}
	ch <- prometheus.MustNewConstMetric(descOmitted, prometheus.GaugeValue, float64(omitted))
	ch <- prometheus.MustNewConstMetric(descRestores, prometheus.GaugeValue, float64(restores))
	applied := c.ledger.Applied()
	ch <- prometheus.MustNewConstMetric(descApplied, prometheus.GaugeValue, float64(applied))
	for reason, n := range c.ledger.Rejected() {
		ch <- prometheus.MustNewConstMetric(descRejected, prometheus.CounterValue, float64(n), reason)
	}
	ch <- prometheus.MustNewConstMetric(descLastRefused, prometheus.GaugeValue, float64(c.ledger.LastRefused()))
	if c.cfg.LastSeq != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if last, err := c.cfg.LastSeq(ctx); err == nil {
			ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(last-min(last, applied)))
		}
	}
	if c.cfg.JobsInFlight != nil {
		ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(c.cfg.JobsInFlight()))
	}
	if c.cfg.JetStream != nil {
		if u, err := c.cfg.JetStream(); err == nil {
			ch <- prometheus.MustNewConstMetric(descJSBytes, prometheus.GaugeValue, float64(u.StorageBytes))
			ch <- prometheus.MustNewConstMetric(descJSMsgs, prometheus.GaugeValue, float64(u.Messages))
			ch <- prometheus.MustNewConstMetric(descJSStream, prometheus.GaugeValue, float64(u.Streams))
		}
	}
}
