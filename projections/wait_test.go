package projections_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
)

// bounded returns a context that ends after released: a call that should
// return at once fails the test instead of hanging it.
func bounded(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), released)
	t.Cleanup(cancel)
	return ctx
}

func TestWaitAppliedReturnsAtOnceForAppliedSeq(t *testing.T) {
	s := projections.New(domain.DefaultRules(), projections.Options{})
	if err := s.WaitApplied(bounded(t), 0); err != nil {
		t.Errorf("WaitApplied(0) on an empty store = %v", err)
	}
	s.Apply(domain.StoredMessage{Seq: 3, Token: "crm", Body: []byte("x")})
	for _, seq := range []uint64{1, 3} {
		if err := s.WaitApplied(bounded(t), seq); err != nil {
			t.Errorf("WaitApplied(%d) after Apply(3) = %v, want nil", seq, err)
		}
	}
	// An applied sequence wins over a done context.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.WaitApplied(ctx, 3); err != nil {
		t.Errorf("WaitApplied(3) with a cancelled context = %v, want nil: seq 3 is applied", err)
	}
}

// The waiting tests run in a synctest bubble: synctest.Wait returns once the
// waiting goroutines are blocked, so "has not returned" is checked after
// they had every chance to return, and a waiter that is never released
// fails the test at once (the bubble's clock jumps to the time-out).

func TestWaitAppliedBlocksUntilApply(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := projections.New(domain.DefaultRules(), projections.Options{})
		s.Apply(domain.StoredMessage{Seq: 1, Token: "crm", Body: []byte("x")})
		done := make(chan error, 1)
		go func() { done <- s.WaitApplied(t.Context(), 3) }()

		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("WaitApplied(3) returned %v before seq 3 was applied", err)
		default:
		}
		s.Apply(domain.StoredMessage{Seq: 2, Token: "crm", Body: []byte("x")})
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("WaitApplied(3) returned %v after Apply(2)", err)
		default:
		}

		s.Apply(domain.StoredMessage{Seq: 3, Token: "crm", Body: []byte("undecodable, but applied")})
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("WaitApplied(3) = %v, want nil", err)
			}
		case <-time.After(released):
			t.Fatal("WaitApplied(3) did not return after Apply(3)")
		}
	})
}

func TestWaitAppliedReleasedByLaterSeq(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := projections.New(domain.DefaultRules(), projections.Options{})
		done := make(chan error, 1)
		go func() { done <- s.WaitApplied(t.Context(), 3) }()
		synctest.Wait()
		s.Apply(domain.StoredMessage{Seq: 7, Token: "crm", Body: []byte("x")}) // sequences may jump (other subjects, purges)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("WaitApplied(3) = %v after Apply(7), want nil", err)
			}
		case <-time.After(released):
			t.Fatal("WaitApplied(3) did not return after Apply(7)")
		}
	})
}

func TestWaitAppliedReturnsContextError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := projections.New(domain.DefaultRules(), projections.Options{})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- s.WaitApplied(ctx, 5) }()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("WaitApplied(5) returned %v before cancel", err)
		default:
		}
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("WaitApplied after cancel = %v, want context.Canceled", err)
			}
		case <-time.After(released):
			t.Fatal("WaitApplied did not return after cancel")
		}

		// A deadline in the bubble's clock.
		short, cancel2 := context.WithTimeout(t.Context(), time.Minute)
		defer cancel2()
		start := time.Now()
		if err := s.WaitApplied(short, 5); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("WaitApplied past its deadline = %v, want context.DeadlineExceeded", err)
		}
		if waited := time.Since(start); waited != time.Minute {
			t.Errorf("WaitApplied returned after %s, want at its deadline (1m)", waited)
		}

		// Cancelled waiters do not disturb a later Apply or a later waiter.
		s.Apply(domain.StoredMessage{Seq: 5, Token: "crm", Body: []byte("x")})
		if err := s.WaitApplied(t.Context(), 5); err != nil {
			t.Errorf("WaitApplied(5) after Apply(5) = %v", err)
		}
	})
}

func TestWaitAppliedReleasesManyWaiters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := projections.New(domain.DefaultRules(), projections.Options{})
		const n = 200
		early := make(chan error, n)
		late := make(chan error, n)
		for i := range n {
			go func() { early <- s.WaitApplied(t.Context(), uint64(i%50+1)) }()
			go func() { late <- s.WaitApplied(t.Context(), 51) }()
		}
		synctest.Wait()
		if len(early) != 0 || len(late) != 0 {
			t.Fatalf("%d waiters returned before any Apply", len(early)+len(late))
		}

		s.Apply(domain.StoredMessage{Seq: 50, Token: "crm", Body: []byte("x")})
		synctest.Wait()
		if got := len(early); got != n {
			t.Fatalf("Apply(50) released %d of %d waiters for seq <= 50", got, n)
		}
		if got := len(late); got != 0 {
			t.Fatalf("Apply(50) released %d waiters for seq 51", got)
		}

		s.Apply(domain.StoredMessage{Seq: 51, Token: "crm", Body: []byte("x")})
		synctest.Wait()
		if got := len(late); got != n {
			t.Fatalf("Apply(51) released %d of %d waiters for seq 51", got, n)
		}
		for range n {
			if err := <-early; err != nil {
				t.Errorf("waiter for seq <= 50: %v", err)
			}
			if err := <-late; err != nil {
				t.Errorf("waiter for seq 51: %v", err)
			}
		}
	})
}

func TestWaitAppliedConcurrentWithApply(t *testing.T) {
	// Without a bubble: real goroutines racing the registration against
	// Apply, which WaitApplied re-checks after registering.
	s := projections.New(domain.DefaultRules(), projections.Options{})
	ctx := bounded(t)
	const n = 500
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- s.WaitApplied(ctx, uint64(i+1)) }()
	}
	for i := range n {
		s.Apply(domain.StoredMessage{Seq: uint64(i + 1), Token: "crm", Body: []byte("x")})
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("a waiter was not released: %v", err)
		}
	}
}
