package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/docs/examples/auditfeed/feed"
	"github.com/backupledger/backupledger/test/natstest"
)

func TestRun(t *testing.T) {
	s := natstest.Server(t, "")
	_, js := natstest.Connect(t, s)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: feed.Stream, Subjects: []string{feed.SubjectAll}}); err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	for i, app := range []string{"crm", "hr", "crm"} {
		body := fmt.Appendf(nil, `{"id":"%d","app":%q,"prev_hash":""}`, i, app)
		if _, err := js.Publish(ctx, "ledger.events."+app, body); err != nil {
			t.Fatal(err)
		}
		if app == "crm" {
			want.Write(body)
			want.WriteByte('\n')
		}
	}
	dir := t.TempDir()
	login := filepath.Join(dir, "audit.json")
	b, err := json.Marshal(feed.Login{URL: s.ClientURL(), InboxPrefix: "_INBOX_audit"})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(login, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "crm.jsonl")

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(runCtx, []string{"--login", login, "--out", out, "--durable", "crm-feed", "--filter", "ledger.events.crm"}, &stderr)
	}()
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		got, err := os.ReadFile(out)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want.Bytes()) {
			return fmt.Errorf("file holds %q, want %q", got, want.Bytes())
		}
		return nil
	})
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit %d: %s", code, &stderr)
	}

	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--login", login, "--durable", "notifier"}, 2, "backupd's own consumer"},
		{[]string{"--login", filepath.Join(dir, "none.json")}, 2, "no such file"},
		{[]string{"--bogus"}, 2, "flag provided but not defined"},
		{[]string{"--login", login, "extra"}, 2, "unexpected arguments"},
	} {
		var stderr bytes.Buffer
		if code := run(ctx, tc.args, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.msg) {
			t.Errorf("%q: exit %d, %s; want %d with %q", tc.args, code, &stderr, tc.code, tc.msg)
		}
	}
}
