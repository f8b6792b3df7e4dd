package jetstream_test

import (
	"context"
	"errors"
	"testing"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/jetstream"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/test/natstest"
)

// timerMsg returns the schedule message of app's timer, nil when none.
func timerMsg(t *testing.T, js njs.JetStream, app string) *njs.RawStreamMsg {
	t.Helper()
	st, err := js.Stream(t.Context(), jetstream.TimerStreamName)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := st.GetLastMsgForSubject(t.Context(), jetstream.TimerScheduleSubject+"."+app)
	if errors.Is(err, njs.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// The server fires an app's timer and a process gets the tick; Sync
// publishes the app's cron in its zone once, and removes it when off.
func TestNightlyTimers(t *testing.T) {
	s := natstest.Server(t, "")
	_, js := natstest.Connect(t, s)
	ctx := t.Context()
	if err := jetstream.SetupTimers(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	if err := jetstream.SetupTimers(ctx, js, 1); err != nil {
		t.Fatalf("setup again: %v", err)
	}
	tm, err := jetstream.NewTimers(ctx, js, nil)
	if err != nil {
		t.Fatal(err)
	}
	ticks := make(chan string, 16)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- tm.Run(runCtx, func(_ context.Context, app string) error {
			select {
			case ticks <- app:
			default:
			}
			return nil
		})
	}()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()

	if err := tm.SetTimerCron(ctx, "crm", "* * * * * *", "UTC"); err != nil {
		t.Fatal(err)
	}
	select {
	case app := <-ticks:
		if app != "crm" {
			t.Fatalf("tick for %q", app)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no tick within 10 s of a timer firing every second")
	}

	// A real schedule: 02:30 in Berlin, published once.
	berlin := domain.Schedule{Enabled: true, Time: "02:30", TimeZone: "Europe/Berlin"}
	if err := tm.Sync(ctx, "crm", berlin); err != nil {
		t.Fatal(err)
	}
	m := timerMsg(t, js, "crm")
	if m == nil || m.Header.Get(njs.ScheduleHeader) != "0 30 2 * * *" || m.Header.Get(njs.ScheduleTimeZoneHeader) != "Europe/Berlin" ||
		m.Header.Get(njs.ScheduleTargetHeader) != jetstream.TimerTickSubject+".crm" {
		t.Fatalf("timer of crm: %+v", m)
	}
	// The same schedule again, or from another process, changes nothing.
	other, err := jetstream.NewTimers(ctx, js, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []*jetstream.Timers{tm, other} {
		if err := x.Sync(ctx, "crm", berlin); err != nil {
			t.Fatal(err)
		}
	}
	if again := timerMsg(t, js, "crm"); again == nil || again.Sequence != m.Sequence {
		t.Fatalf("an unchanged schedule was published again: %+v", again)
	}
	// Off: the timer is gone.
	if err := other.Sync(ctx, "crm", domain.Schedule{Time: "02:30", TimeZone: "Europe/Berlin"}); err != nil {
		t.Fatal(err)
	}
	if gone := timerMsg(t, js, "crm"); gone != nil {
		t.Fatalf("timer left after the schedule went off: %+v", gone.Header)
	}
	if err := tm.Sync(ctx, "crm", domain.Schedule{Enabled: true, Time: "25:00", TimeZone: "UTC"}); domain.Code(err) != domain.CodeInvalidArgument {
		t.Fatalf("bad schedule: %v", err)
	}
}
