package archive_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The archive format knows nothing of where archives are kept: neither the
// package nor anything it imports is of NATS.
func TestNoNATS(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go command not found: %v", err)
	}
	out, err := exec.Command(gobin, "list", "-deps", "-test=false", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for dep := range strings.FieldsSeq(string(out)) {
		if strings.Contains(dep, "nats-io") {
			t.Errorf("package archive depends on %s", dep)
		}
	}
}
