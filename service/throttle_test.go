package service_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/backupledger/backupledger/service"
)

func TestThrottleClientLimit(t *testing.T) {
	clock := newClock(t0)
	th := service.NewThrottle(clock)
	// One address guessing many names: ClientFailures, then nothing from
	// it for any name until the first failure leaves the window.
	for i := range service.ClientFailures {
		if ok, _ := th.Allow(fmt.Sprint("user", i), "a"); !ok {
			t.Fatalf("try %d refused", i)
		}
		th.Failed(fmt.Sprint("user", i), "a")
		clock.Advance(time.Second)
	}
	ok, retry := th.Allow("someone", "a")
	if ok || retry != service.ThrottleWindow-time.Duration(service.ClientFailures)*time.Second {
		t.Errorf("after %d failures: allowed %v, retry %v", service.ClientFailures, ok, retry)
	}
	if ok, _ := th.Allow("someone", "b"); !ok {
		t.Error("another address is refused")
	}
	clock.Advance(retry)
	if ok, _ := th.Allow("someone", "a"); !ok {
		t.Error("refused after the window")
	}
}

func TestThrottleNameAndPair(t *testing.T) {
	clock := newClock(t0)
	th := service.NewThrottle(clock)
	// Attackers on many addresses make a name busy.
	for i := range service.NameFailures {
		th.Failed("alice", fmt.Sprint("bot", i))
	}
	// A fresh address gets one try per NameInterval for the name, all
	// fresh addresses together; the user's own among them.
	if ok, _ := th.Allow("alice", "home"); !ok {
		t.Fatal("the first fresh try on a busy name is refused")
	}
	ok, retry := th.Allow("alice", "bot99")
	if ok || retry != service.NameInterval {
		t.Errorf("a second fresh try at once: allowed %v, retry %v", ok, retry)
	}
	clock.Advance(service.NameInterval)
	if ok, _ := th.Allow("alice", "home"); !ok {
		t.Error("the user's own try after NameInterval is refused")
	}
	// Another name is not busy.
	if ok, _ := th.Allow("bob", "bot99"); !ok {
		t.Error("another name is refused")
	}
	// An address that failed on the name goes by its own count: free
	// tries, then a doubling delay.
	for i := range service.PairFailures + 2 {
		if i >= service.PairFailures {
			want := service.PairBaseDelay << (i - service.PairFailures)
			if ok, retry := th.Allow("alice", "bot0"); ok || retry != want {
				t.Fatalf("try %d: allowed %v, retry %v; want a wait of %v", i, ok, retry, want)
			}
			clock.Advance(want)
		}
		if ok, _ := th.Allow("alice", "bot0"); !ok {
			t.Fatalf("try %d refused", i)
		}
		if i > 0 {
			th.Failed("alice", "bot0")
		}
	}
	// The administrator's reset forgets the name.
	th.Forget("alice")
	if ok, _ := th.Allow("alice", "bot0"); !ok {
		t.Error("refused after Forget")
	}
}

func TestClientAddr(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1:4711":             "192.0.2.1",
		"192.0.2.1":                  "192.0.2.1",
		"[::ffff:192.0.2.1]:80":      "192.0.2.1",
		"[2001:db8:1:2:3:4:5:6]:443": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1":       "2001:db8:1:2::/64",
		"nats":                       "nats",
		"@":                          "@",
	} {
		if got := service.ClientAddr(in); got != want {
			t.Errorf("ClientAddr(%q) = %q, want %q", in, got, want)
		}
	}
}
