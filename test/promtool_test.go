package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// promtoolPath finds promtool (Debian's prometheus package; .ci/run installs
// it). Without it the test skips, except under CI, where it fails.
func promtoolPath(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("promtool not found and CI is set (.ci/run installs Debian's prometheus package): %v", err)
		}
		t.Skip("promtool not found: install it (apt-get install prometheus, as .ci/run does) to check the Prometheus rules")
	}
	return path
}

// TestPromtoolRules checks the alerting rules in docs/prometheus with
// promtool and runs their unit tests.
func TestPromtoolRules(t *testing.T) {
	promtool := promtoolPath(t)
	dir := filepath.Join("..", "docs", "prometheus")
	for _, args := range [][]string{
		{"check", "rules", filepath.Join(dir, "alerts.yml")},
		{"test", "rules", filepath.Join(dir, "alerts_test.yml")},
		// docker-compose.yml's Prometheus, with the rules next to it and
		// the scrape token where compose mounts it.
		{"check", "config", composePrometheusConfig(t, dir)},
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}

// composePrometheusConfig returns a copy of docker-compose.yml's Prometheus
// configuration in dir, with its rules next to it and the scrape token's
// file (the compose secret /run/secrets/metrics_token) made in a temporary
// directory: promtool checks that the files a configuration names exist.
func composePrometheusConfig(t *testing.T, dir string) string {
	t.Helper()
	const secret = "/run/secrets/metrics_token"
	tmp := t.TempDir()
	cfg, err := os.ReadFile(filepath.Join(dir, "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg), "credentials_file: "+secret) {
		t.Errorf("prometheus.yml does not read the scrape token from %s", secret)
	}
	token := filepath.Join(tmp, "metrics_token")
	if err := os.WriteFile(token, []byte("scrape-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rules, err := os.ReadFile(filepath.Join(dir, "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "alerts.yml"), rules, 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(tmp, "prometheus.yml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(cfg), secret, token)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
