package test

import (
	"os"
	"os/exec"
	"path/filepath"
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
		// docker-compose.yml's Prometheus, with the rules next to it.
		{"check", "config", filepath.Join(dir, "prometheus.yml")},
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}
