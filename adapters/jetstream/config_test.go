package jetstream_test

import (
	"strings"
	"testing"
	"time"

	"github.com/backupledger/backupledger/adapters/jetstream"
)

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

func TestConfigDefaultsAndValidate(t *testing.T) {
	t.Parallel()
	d := jetstream.DefaultConfig()
	if err := d.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	if d.Replicas != 1 || d.DuplicateWindow != 2*time.Minute || d.AckWait != 30*time.Second ||
		d.MaxDeliver != 5 || d.Workers != 2 || d.WorkerName == "" {
		t.Fatalf("defaults %+v", d)
	}
	err := jetstream.Config{Replicas: 7, DuplicateWindow: time.Minute, AckWait: time.Millisecond, MaxDeliver: 1}.Validate()
	if err == nil {
		t.Fatal("invalid config passed")
	}
	for _, want := range []string{"replicas", "duplicate window", "ack wait", "max deliver", "workers", "retry delay", "worker name"} {
		if !containsFold(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if got := jetstream.Subject("crm"); got != "ledger.events.crm" {
		t.Errorf("subject %q", got)
	}
}
