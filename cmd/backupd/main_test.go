package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.yaml.in/yaml/v3"

	"github.com/backupledger/backupledger/cmd/backupd/daemon"
	"github.com/backupledger/backupledger/domain"
)

// env returns a lookup function over vars, like os.LookupEnv.
func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

// parse runs parseFlags and fails the test on an error.
func parse(t *testing.T, args []string, vars map[string]string) daemon.Config {
	t.Helper()
	var stderr bytes.Buffer
	cfg, err := parseFlags(args, env(vars), &stderr)
	if err != nil {
		t.Fatalf("parseFlags(%q, %v) = %v\nstderr:\n%s", args, vars, err, stderr.String())
	}
	if stderr.Len() != 0 {
		t.Errorf("parseFlags(%q) wrote to stderr on success:\n%s", args, stderr.String())
	}
	if cfg.Logger == nil {
		t.Errorf("parseFlags(%q) left Logger nil", args)
	}
	return cfg
}

// assertConfig compares two configs; the time zone by name, the logger not.
func assertConfig(t *testing.T, got, want daemon.Config) {
	t.Helper()
	if g, w := got.Rules.Location.String(), want.Rules.Location.String(); g != w {
		t.Errorf("time zone = %s, want %s", g, w)
	}
	got.Logger, want.Logger = nil, nil
	got.Rules.Location, want.Rules.Location = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("config =\n%+v\nwant\n%+v", got, want)
	}
}

func TestParseFlagsDefaults(t *testing.T) {
	cfg := parse(t, nil, nil)
	assertConfig(t, cfg, daemon.DefaultConfig())

	// The defaults of DESIGN §8 and §9, spelled out.
	if cfg.DataDir != "./data" || cfg.HTTP.Addr != "127.0.0.1:8080" || cfg.NATS.Listen != "127.0.0.1:4222" ||
		cfg.NATS.URL != "" || cfg.NATS.Replicas != 1 || cfg.NATS.Sync != daemon.SyncAlways || cfg.AdminToken != "" {
		t.Errorf("defaults = data %q http %q nats-listen %q nats-url %q replicas %d sync %q token %q",
			cfg.DataDir, cfg.HTTP.Addr, cfg.NATS.Listen, cfg.NATS.URL, cfg.NATS.Replicas, cfg.NATS.Sync, cfg.AdminToken)
	}
	r := cfg.Rules
	if r.MaxBackups != 10 || r.MinInterval != 5*time.Minute || r.Retention != 60*24*time.Hour || r.Location != time.UTC {
		t.Errorf("default rules = %+v, want 10 backups, 5m, 60 days, UTC", r)
	}
	ctx := context.Background()
	if !cfg.Logger.Enabled(ctx, slog.LevelInfo) || cfg.Logger.Enabled(ctx, slog.LevelDebug) {
		t.Error("default log level is not info")
	}
}

func TestParseFlagsOverride(t *testing.T) {
	args := []string{
		"--data-dir", "/var/lib/backupd", "--http-addr=:9090", "--nats-url", "nats://a:4222,nats://b:4222",
		"--nats-listen=none", "--replicas=3", "--sync=interval", "--admin-token=s3cret",
		"--max-backups=3", "--min-interval=1m", "--retention=24h", "--timezone=Europe/Berlin",
		"--command-memory=50", "--workers=8", "--job-ack-wait=10s", "--job-max-deliver=3",
		"--job-timeout=5m", "--job-retry-for=30s", "--shutdown-timeout=2s", "--log-level=debug",
	}
	cfg := parse(t, args, nil)

	want := daemon.DefaultConfig()
	want.DataDir = "/var/lib/backupd"
	want.HTTP.Addr = ":9090"
	want.NATS.URL = "nats://a:4222,nats://b:4222"
	want.NATS.Listen = daemon.ListenNone
	want.NATS.Replicas = 3
	want.NATS.Sync = daemon.SyncInterval
	want.AdminToken = "s3cret"
	want.Rules.MaxBackups = 3
	want.Rules.MinInterval = time.Minute
	want.Rules.Retention = 24 * time.Hour
	want.Rules.Location = mustLoad(t, "Europe/Berlin")
	want.Rules.CommandMemory = 50
	want.Rules.Nightly.TimeZone = "Europe/Berlin" // --timezone's, by default
	want.Jobs.Workers = 8
	want.Jobs.AckWait = 10 * time.Second
	want.Jobs.MaxDeliver = 3
	want.Jobs.Timeout = 5 * time.Minute
	want.Jobs.RetryFor = 30 * time.Second
	want.ShutdownTimeout = 2 * time.Second
	assertConfig(t, cfg, want)

	if !cfg.Logger.Enabled(context.Background(), slog.LevelDebug) {
		t.Error("--log-level=debug: debug is not enabled")
	}
}

func mustLoad(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestParseFlagsEnvironment(t *testing.T) {
	vars := map[string]string{
		"BACKUPD_HTTP_ADDR":    "0.0.0.0:8081",
		"BACKUPD_MIN_INTERVAL": "1m",
		"BACKUPD_MAX_BACKUPS":  "3",
		"BACKUPD_TIMEZONE":     "Europe/Berlin",
		"BACKUPD_NATS_LISTEN":  "none",
		"BACKUPD_SYNC":         "interval",
		"BACKUPD_ADMIN_TOKEN":  "from-env",
		"BACKUPD_LOG_LEVEL":    "warn",
		"backupd_workers":      "7", // not the variable's name
		"HTTP_ADDR":            "not-mine:1",
	}
	cfg := parse(t, nil, vars)

	want := daemon.DefaultConfig()
	want.HTTP.Addr = "0.0.0.0:8081"
	want.Rules.MinInterval = time.Minute
	want.Rules.MaxBackups = 3
	want.Rules.Location = mustLoad(t, "Europe/Berlin")
	want.Rules.Nightly.TimeZone = "Europe/Berlin"
	want.NATS.Listen = daemon.ListenNone
	want.NATS.Sync = daemon.SyncInterval
	want.AdminToken = "from-env"
	assertConfig(t, cfg, want)

	ctx := context.Background()
	if cfg.Logger.Enabled(ctx, slog.LevelInfo) || !cfg.Logger.Enabled(ctx, slog.LevelWarn) {
		t.Error("BACKUPD_LOG_LEVEL=warn: the logger's level is not warn")
	}
}

func TestParseFlagsFlagWinsOverEnvironment(t *testing.T) {
	vars := map[string]string{
		"BACKUPD_HTTP_ADDR":   "env:1",
		"BACKUPD_MAX_BACKUPS": "3",
		"BACKUPD_TIMEZONE":    "Europe/Berlin",
		"BACKUPD_REPLICAS":    "abc", // ignored: the flag is given
		"BACKUPD_WORKERS":     "5",
	}
	// --max-backups=10 is the default value, given explicitly: it still wins.
	args := []string{"--http-addr=flag:2", "--max-backups=10", "--timezone=America/New_York", "--replicas=3"}
	cfg := parse(t, args, vars)

	want := daemon.DefaultConfig()
	want.HTTP.Addr = "flag:2"
	want.Rules.Location = mustLoad(t, "America/New_York")
	want.Rules.Nightly.TimeZone = "America/New_York"
	want.NATS.Replicas = 3
	want.Jobs.Workers = 5 // from the environment: no flag
	assertConfig(t, cfg, want)
}

// The lifecycle settings: nightly default, sweeps, webhooks, e-mail.
func TestParseFlagsLifecycle(t *testing.T) {
	args := []string{"--nightly", "--nightly-time=03:30", "--nightly-time-zone=Asia/Tokyo", "--nightly-interval=30s",
		"--orphan-interval=10m", "--orphan-grace=2h", "--webhook-timeout=3s", "--webhook-backoff=1s", "--webhook-retry-for=1h",
		"--webhook-allow-private", "--smtp-host=mail.example.com", "--smtp-port=25", "--smtp-starttls=always", "--smtp-user=backups",
		"--smtp-from=Backups <backups@example.com>", "--public-url=https://backups.example.com"}
	cfg := parse(t, args, map[string]string{"BACKUPD_SMTP_PASSWORD": "from-env"})
	want := daemon.DefaultConfig()
	want.Rules.Nightly = domain.Schedule{Enabled: true, Time: "03:30", TimeZone: "Asia/Tokyo"}
	want.Sweeps.NightlyInterval = 30 * time.Second
	want.Sweeps.OrphanInterval = 10 * time.Minute
	want.Sweeps.OrphanGrace = 2 * time.Hour
	want.Webhooks.Timeout, want.Webhooks.Backoff, want.Webhooks.RetryFor = 3*time.Second, time.Second, time.Hour
	want.Webhooks.AllowPrivate = true
	want.SMTP = daemon.SMTPConfig{Host: "mail.example.com", Port: 25, StartTLS: "always", User: "backups", Password: "from-env",
		From: "Backups <backups@example.com>"}
	want.HTTP.PublicURL = "https://backups.example.com"
	assertConfig(t, cfg, want)

	for _, bad := range [][]string{
		{"--nightly-time=25:00"}, {"--nightly-time-zone=Mars/Base"}, {"--smtp-host=mail.example.com"},
		{"--public-url=backups.example.com"}, {"--orphan-grace=1s"},
	} {
		if _, err := parseFlags(bad, func(string) (string, bool) { return "", false }, io.Discard); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

// Logs are JSON by default, key=value with --log-format text.
func TestParseFlagsLogFormat(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{{nil, `{"time":`}, {[]string{"--log-format=json"}, `{"time":`}, {[]string{"--log-format=text"}, "time="}} {
		var buf bytes.Buffer
		cfg, err := parseFlags(c.args, func(string) (string, bool) { return "", false }, &buf)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Logger.Info("hello", "app", "crm")
		if !strings.HasPrefix(buf.String(), c.want) || !strings.Contains(buf.String(), "crm") {
			t.Errorf("%v: log line %q, want it to start with %q", c.args, buf.String(), c.want)
		}
	}
	if _, err := parseFlags([]string{"--log-format=xml"}, func(string) (string, bool) { return "", false }, io.Discard); err == nil {
		t.Error("--log-format=xml: no error")
	}
}

func TestParseFlagsInvalid(t *testing.T) {
	tests := []struct {
		name string
		args []string
		vars map[string]string
		want []string // substrings of the error
	}{
		{"env not a number", nil, map[string]string{"BACKUPD_REPLICAS": "abc"}, []string{"BACKUPD_REPLICAS"}},
		{"env bad duration", nil, map[string]string{"BACKUPD_MIN_INTERVAL": "soon"}, []string{"BACKUPD_MIN_INTERVAL"}},
		{"flag not a number", []string{"--replicas=abc"}, nil, []string{"replicas", "abc"}},
		{"sync", []string{"--sync=sometimes"}, nil, []string{"sync", "sometimes"}},
		{"max backups", []string{"--max-backups=0"}, nil, []string{"max backups", "0"}},
		{"replicas range", []string{"--replicas=7"}, nil, []string{"replicas", "7"}},
		{"timezone", []string{"--timezone=Nowhere/City"}, nil, []string{"timezone", "Nowhere/City"}},
		{"env timezone", nil, map[string]string{"BACKUPD_TIMEZONE": "Nowhere/City"}, []string{"Nowhere/City"}},
		{"log level", []string{"--log-level=loud"}, nil, []string{"log level", "loud"}},
		{"positional", []string{"--replicas=1", "serve", "now"}, nil, []string{"unexpected arguments", "serve", "now"}},
		{"unknown flag", []string{"--no-such-flag"}, nil, []string{"no-such-flag"}},
		{"empty data dir", nil, map[string]string{"BACKUPD_DATA_DIR": ""}, []string{"data dir"}},
		{"several at once", []string{"--sync=sometimes", "--max-backups=0"}, nil, []string{"sync", "max backups"}},
		{"source", []string{"--source=ftp"}, nil, []string{"source", "ftp"}},
		{"memory limit", []string{"--memory-limit=lots"}, nil, []string{"memory-limit", "lots"}},
		{"upload ratio", []string{"--max-upload-ratio=-1"}, nil, []string{"ratio", "-1"}},
		{"app source not a pair", []string{"--app-source=wiki"}, nil, []string{"app-source", "wiki"}},
		{"app source kind", []string{"--app-source=wiki=ftp"}, nil, []string{"wiki=ftp"}},
		{"app source app id", []string{"--app-source=Wiki=dir"}, nil, []string{"Wiki"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			_, err := parseFlags(tc.args, env(tc.vars), &stderr)
			if err == nil {
				t.Fatalf("parseFlags(%q, %v) = nil error, want one naming %q", tc.args, tc.vars, tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}

func TestParseFlagsHelp(t *testing.T) {
	var stderr bytes.Buffer
	_, err := parseFlags([]string{"-h"}, env(nil), &stderr)
	if !errors.Is(err, flag.ErrHelp) {
		t.Errorf("parseFlags(-h) = %v, want flag.ErrHelp", err)
	}
	for _, name := range []string{"-data-dir", "-http-addr", "-nats-url", "-sync", "-timezone",
		"-nats-creds", "-nats-user", "-nats-password", "-nats-tls-ca", "-nats-tls-cert", "-nats-tls-key"} {
		if !strings.Contains(stderr.String(), name) {
			t.Errorf("usage does not mention %s:\n%s", name, stderr.String())
		}
	}
}

func TestParseFlagsSources(t *testing.T) {
	cfg := parse(t, []string{"--source=dir", "--dir-root=/srv/apps"}, map[string]string{"BACKUPD_APP_SOURCE": "crm=kv, wiki=dir"})
	if cfg.Sources.Default != "dir" || cfg.Sources.DirRoot != "/srv/apps" {
		t.Errorf("source %q dir root %q", cfg.Sources.Default, cfg.Sources.DirRoot)
	}
	if want := map[string]string{"crm": "kv", "wiki": "dir"}; !reflect.DeepEqual(cfg.Sources.ByApp, want) {
		t.Errorf("app sources = %v, want %v", cfg.Sources.ByApp, want)
	}
	if d := parse(t, nil, nil); d.Sources.Default != "kv" || d.Sources.ByApp != nil {
		t.Errorf("default source %q, app sources %v", d.Sources.Default, d.Sources.ByApp)
	}
}

func TestParseFlagsMemoryLimit(t *testing.T) {
	for in, want := range map[string]int64{"96MiB": 96 << 20, "1GiB": 1 << 30, "4096": 4096, "512KiB": 512 << 10} {
		if got := parse(t, []string{"--memory-limit=" + in}, nil).Process.MemoryLimit; got != want {
			t.Errorf("--memory-limit=%s gives %d, want %d", in, got, want)
		}
	}
	if got := parse(t, nil, map[string]string{"BACKUPD_MEMORY_LIMIT": "64MiB"}).Process.MemoryLimit; got != 64<<20 {
		t.Errorf("BACKUPD_MEMORY_LIMIT=64MiB gives %d", got)
	}
}

func TestParseFlagsNATSClient(t *testing.T) {
	tests := []struct {
		name string
		args []string
		vars map[string]string
		want func(*daemon.Config)
	}{
		{
			name: "credentials file and tls from flags",
			args: []string{"--nats-url=tls://a:4222", "--nats-creds=/etc/backupd/ledger.creds",
				"--nats-tls-ca=/etc/ca.pem", "--nats-tls-cert=/etc/c.pem", "--nats-tls-key=/etc/k.pem"},
			want: func(c *daemon.Config) {
				c.NATS.URL, c.NATS.Creds = "tls://a:4222", "/etc/backupd/ledger.creds"
				c.NATS.TLSCA, c.NATS.TLSCert, c.NATS.TLSKey = "/etc/ca.pem", "/etc/c.pem", "/etc/k.pem"
			},
		},
		{
			name: "user and password from the environment",
			vars: map[string]string{"BACKUPD_NATS_URL": "nats://a:4222", "BACKUPD_NATS_USER": "ledger", "BACKUPD_NATS_PASSWORD": "s3cret"},
			want: func(c *daemon.Config) { c.NATS.URL, c.NATS.User, c.NATS.Password = "nats://a:4222", "ledger", "s3cret" },
		},
		{
			name: "everything from the environment",
			vars: map[string]string{"BACKUPD_NATS_URL": "tls://a:4222", "BACKUPD_NATS_CREDS": "x.creds",
				"BACKUPD_NATS_TLS_CA": "ca.pem", "BACKUPD_NATS_TLS_CERT": "c.pem", "BACKUPD_NATS_TLS_KEY": "k.pem"},
			want: func(c *daemon.Config) {
				c.NATS.URL, c.NATS.Creds = "tls://a:4222", "x.creds"
				c.NATS.TLSCA, c.NATS.TLSCert, c.NATS.TLSKey = "ca.pem", "c.pem", "k.pem"
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := daemon.DefaultConfig()
			tc.want(&want)
			assertConfig(t, parse(t, tc.args, tc.vars), want)
		})
	}
}

func TestParseFlagsNATSClientInvalid(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"creds without url", []string{"--nats-creds=x.creds"}, "nats creds"},
		{"tls without url", []string{"--nats-tls-ca=ca.pem"}, "nats tls ca"},
		{"cert without key", []string{"--nats-url=nats://a:4222", "--nats-tls-cert=c.pem"}, "nats tls key"},
		{"password without user", []string{"--nats-url=nats://a:4222", "--nats-password=p"}, "nats user"},
		{"creds and user", []string{"--nats-url=nats://a:4222", "--nats-creds=x.creds", "--nats-user=u", "--nats-password=p"}, "set one"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseFlags(tc.args, env(nil), &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("parseFlags(%q) = %v, want an error naming %q", tc.args, err, tc.want)
			}
		})
	}
}

func TestParseFlagsUploadLimits(t *testing.T) {
	cfg := parse(t, []string{"--max-upload-ratio=1000", "--max-upload-bytes=1048576"}, nil)
	if cfg.Archives.MaxUploadRatio != 1000 || cfg.Archives.MaxUploadBytes != 1<<20 {
		t.Errorf("ratio %d bytes %d", cfg.Archives.MaxUploadRatio, cfg.Archives.MaxUploadBytes)
	}
}

// The backupd services of docker-compose.yml start with flags this
// backupd accepts, on the cluster and with the replicas they describe, and
// every file the compose file mounts exists.
func TestComposeFile(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Build       string            `yaml:"build"`
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
			Volumes     []string          `yaml:"volumes"`
			Secrets     []string          `yaml:"secrets"`
			Ports       []string          `yaml:"ports"`
		} `yaml:"services"`
		Secrets map[string]struct {
			Environment string `yaml:"environment"`
		} `yaml:"secrets"`
	}
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	backupds, nodes := 0, 0
	var metricsTargets []string // host:port of each backupd's metrics
	for name, svc := range compose.Services {
		for _, v := range svc.Volumes {
			if src, _, ok := strings.Cut(v, ":"); ok && strings.HasPrefix(src, "./") {
				if _, err := os.Stat(filepath.Join("..", "..", src)); err != nil {
					t.Errorf("%s mounts %s: %v", name, src, err)
				}
			}
		}
		if strings.HasPrefix(name, "nats-") {
			nodes++
			checkNATSNode(t, name, svc.Command, svc.Environment)
			continue
		}
		if svc.Build != "." {
			continue
		}
		backupds++
		env := func(k string) (string, bool) {
			v, ok := svc.Environment[k]
			if strings.HasPrefix(v, "${") {
				v = "from-the-environment"
			}
			return v, ok
		}
		cfg, err := parseFlags(svc.Command, env, io.Discard)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !strings.Contains(cfg.NATS.URL, "nats-3:4222") || cfg.NATS.Replicas != 3 || cfg.HTTP.Addr != "0.0.0.0:8080" || cfg.AdminToken == "" {
			t.Errorf("%s: config %+v", name, cfg)
		}
		// backupd logs in to the cluster's accounts as backupd.
		if cfg.NATS.User != daemon.RoleBackupd || cfg.NATS.Password == "" || cfg.NATS.StagingAPI != daemon.DefaultStagingAPI || cfg.NATS.AuditAPI != daemon.DefaultAuditAPI {
			t.Errorf("%s: nats login %q, staging %q, audit %q", name, cfg.NATS.User, cfg.NATS.StagingAPI, cfg.NATS.AuditAPI)
		}
		// Metrics: for the compose network (Prometheus is another
		// container), behind the token of the secret Prometheus reads,
		// and not published on the host.
		host, port, err := net.SplitHostPort(cfg.Metrics.Addr)
		if err != nil || host != "0.0.0.0" || cfg.Metrics.Token == "" ||
			svc.Environment["BACKUPD_METRICS_TOKEN"] != "${"+compose.Secrets["metrics_token"].Environment+":?set "+compose.Secrets["metrics_token"].Environment+"}" {
			t.Errorf("%s: metrics on %q (%v), token from %q", name, cfg.Metrics.Addr, err, svc.Environment["BACKUPD_METRICS_TOKEN"])
		}
		for _, p := range svc.Ports {
			if strings.HasSuffix(p, ":"+port) {
				t.Errorf("%s publishes its metrics port: %s", name, p)
			}
		}
		metricsTargets = append(metricsTargets, net.JoinHostPort(name, port))
	}
	checkComposePrometheus(t, compose.Services["prometheus"].Secrets, compose.Secrets["metrics_token"].Environment, metricsTargets)
	if backupds < 2 {
		t.Errorf("%d backupd services, want replicas", backupds)
	}
	if nodes != 3 {
		t.Errorf("%d NATS nodes, want 3", nodes)
	}
}

// checkNATSNode parses the configuration a NATS service of
// docker-compose.yml runs with (-c, mounted from docs/nats), with the
// service's environment, as nats-server would.
func checkNATSNode(t *testing.T, name string, command []string, env map[string]string) {
	t.Helper()
	if len(command) != 2 || command[0] != "-c" || command[1] != "/etc/nats/cluster.conf" {
		t.Errorf("%s: command %q, want -c /etc/nats/cluster.conf", name, command)
		return
	}
	for k, v := range env {
		if strings.HasPrefix(v, "${") {
			v = "from-the-environment"
		}
		t.Setenv(k, v)
	}
	opts, err := server.ProcessConfigFile(filepath.Join("..", "..", "docs", "nats", "cluster.conf"))
	if err != nil {
		t.Errorf("%s: %v", name, err)
		return
	}
	if opts.ServerName != name || !opts.JetStream || opts.StoreDir != "/data" || len(opts.Routes) != 3 || opts.Cluster.Name != "ledger" {
		t.Errorf("%s: server %q, jetstream %v in %q, %d routes, cluster %q", name, opts.ServerName, opts.JetStream, opts.StoreDir, len(opts.Routes), opts.Cluster.Name)
	}
	users := map[string]string{}
	for _, u := range opts.Users {
		users[u.Username] = u.Account.Name
	}
	want := map[string]string{daemon.RoleBackupd: daemon.AccountLedger, daemon.RoleProducer: daemon.AccountProducers, daemon.RoleAudit: daemon.AccountAudit}
	if !maps.Equal(users, want) {
		t.Errorf("%s: users %v, want %v", name, users, want)
	}
}

// checkComposePrometheus checks that docker-compose.yml's Prometheus
// (docs/prometheus/prometheus.yml) scrapes every backupd's metrics port
// with the scrape token, read from the secret the service mounts.
func checkComposePrometheus(t *testing.T, secrets []string, secretEnv string, targets []string) {
	t.Helper()
	if !slices.Contains(secrets, "metrics_token") || secretEnv != "BACKUPLEDGER_METRICS_TOKEN" {
		t.Errorf("prometheus mounts the secrets %q; the secret metrics_token comes from %q", secrets, secretEnv)
	}
	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", "prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var prom struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			Authorization struct {
				Type            string `yaml:"type"`
				CredentialsFile string `yaml:"credentials_file"`
			} `yaml:"authorization"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(raw, &prom); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	for _, sc := range prom.ScrapeConfigs {
		if sc.JobName != "backupd" {
			continue
		}
		if sc.Authorization.Type != "Bearer" || sc.Authorization.CredentialsFile != "/run/secrets/metrics_token" {
			t.Errorf("backupd scrapes with authorization %+v, want the bearer token of /run/secrets/metrics_token", sc.Authorization)
		}
		var got []string
		for _, c := range sc.StaticConfigs {
			got = append(got, c.Targets...)
		}
		slices.Sort(got)
		slices.Sort(targets)
		if !slices.Equal(got, targets) {
			t.Errorf("Prometheus scrapes %q, want every backupd's metrics address %q", got, targets)
		}
		return
	}
	t.Error("prometheus.yml has no job backupd")
}

// The HTTP listeners' bounds and the metrics listener, from flags and the
// environment; bad values are refused naming the setting.
func TestParseFlagsHTTPAndMetrics(t *testing.T) {
	d := parse(t, nil, nil)
	if d.HTTP.ReadHeaderTimeout != 10*time.Second || d.HTTP.ReadTimeout != time.Minute || d.HTTP.IdleTimeout != time.Minute ||
		d.HTTP.MaxConns != 1024 || d.Metrics.Addr != "127.0.0.1:9464" || d.Metrics.Token != "" || d.Metrics.TokenFile != "" {
		t.Errorf("defaults: header %s read %s idle %s conns %d metrics %q token %q file %q", d.HTTP.ReadHeaderTimeout, d.HTTP.ReadTimeout,
			d.HTTP.IdleTimeout, d.HTTP.MaxConns, d.Metrics.Addr, d.Metrics.Token, d.Metrics.TokenFile)
	}

	cfg := parse(t, []string{"--http-read-header-timeout=2s", "--http-read-timeout=30s", "--http-idle-timeout=5m", "--http-max-conns=64",
		"--metrics-addr=0.0.0.0:9100"}, map[string]string{"BACKUPD_METRICS_TOKEN": "scrape-secret"})
	want := daemon.DefaultConfig()
	want.HTTP.ReadHeaderTimeout, want.HTTP.ReadTimeout, want.HTTP.IdleTimeout = 2*time.Second, 30*time.Second, 5*time.Minute
	want.HTTP.MaxConns = 64
	want.Metrics.Addr, want.Metrics.Token = "0.0.0.0:9100", "scrape-secret"
	assertConfig(t, cfg, want)

	if c := parse(t, []string{"--metrics-addr=none"}, nil); c.Metrics.Addr != daemon.ListenNone {
		t.Errorf("--metrics-addr=none: %q", c.Metrics.Addr)
	}
	if c := parse(t, []string{"--metrics-token-file=/run/secrets/t"}, nil); c.Metrics.TokenFile != "/run/secrets/t" {
		t.Errorf("--metrics-token-file: %q", c.Metrics.TokenFile)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--http-read-timeout=0"}, "http read header, read and idle timeouts must be positive"},
		{[]string{"--http-idle-timeout=-1s"}, "http read header, read and idle timeouts must be positive"},
		{[]string{"--http-read-header-timeout=2m"}, "must not exceed the http read timeout"},
		{[]string{"--http-max-conns=0"}, "http max conns must be at least 1"},
		{[]string{"--metrics-addr="}, "metrics address must be set"},
		{[]string{"--metrics-addr=none", "--metrics-token=x"}, "metrics token applies only to a metrics address"},
		{[]string{"--metrics-token=x", "--metrics-token-file=f"}, "set one"},
	} {
		if _, err := parseFlags(tc.args, env(nil), io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseFlags(%q) = %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}
