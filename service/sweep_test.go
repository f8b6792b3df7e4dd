package service_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backupledger/backupledger/service"
)

// lockedBuffer is a log sink safe for the runner's goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestEverySweepsUntilStopped(t *testing.T) {
	var logs lockedBuffer
	var runs atomic.Int64
	sweep := func(context.Context) (int, error) {
		if runs.Add(1) == 2 {
			return 0, errors.New("store down")
		}
		return 1, nil
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	loop := service.Every(time.Millisecond, "expiry", func(context.Context) error { return nil }, sweep, slog.New(slog.NewTextHandler(&logs, nil)))
	go func() { done <- loop(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for runs.Load() < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("swept %d times in 10 s, want at least 4: a failed sweep must not stop the loop", runs.Load())
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Every returned %v when stopped, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Every did not return once its context ended")
	}
	if !strings.Contains(logs.String(), "expiry sweep") || !strings.Contains(logs.String(), "store down") {
		t.Errorf("the failed sweep was not logged: %q", logs.String())
	}
}

func TestEveryWaitsUntilReady(t *testing.T) {
	var runs atomic.Int64
	sweep := func(context.Context) (int, error) { runs.Add(1); return 0, nil }
	// The fold never catches up: the process stops first.
	notReady := func(ctx context.Context) error { return context.Canceled }
	if err := service.Every(time.Millisecond, "orphans", notReady, sweep, nil)(t.Context()); err != nil {
		t.Fatalf("Every = %v, want nil (stopping)", err)
	}
	if n := runs.Load(); n != 0 {
		t.Fatalf("swept %d times before the fold caught up, want 0", n)
	}
}
