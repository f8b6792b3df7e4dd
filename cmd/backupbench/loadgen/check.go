package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/jetstream"
)

// Check is the comparison of a run's acknowledged commands with the ledger.
type Check struct {
	// Read is the number of events read from the stream.
	Read int
	// Found, Lost and Duplicates count the acknowledged commands that are
	// in the stream, that are not, and that are there more than once.
	Found, Lost, Duplicates int
	// Examples name a few lost or duplicated keys.
	Examples []string
}

// OK reports whether nothing acknowledged was lost or stored twice.
func (c Check) OK() bool { return c.Lost == 0 && c.Duplicates == 0 }

func (c Check) String() string {
	return fmt.Sprintf("found %d, lost %d, duplicates %d (%d events read)", c.Found, c.Lost, c.Duplicates, c.Read)
}

// Compare counts acknowledged keys (of a Result's Acked, or any set of
// keys) against how often each command id is in the ledger.
func Compare[V any](acked map[string]V, counts map[string]int) Check {
	var c Check
	for key := range acked {
		switch n := counts[key]; {
		case n == 0:
			c.Lost++
			if len(c.Examples) < 10 {
				c.Examples = append(c.Examples, "lost "+key)
			}
		case n > 1:
			c.Duplicates++
			c.Found++
			if len(c.Examples) < 10 {
				c.Examples = append(c.Examples, fmt.Sprintf("%d × %s", n, key))
			}
		default:
			c.Found++
		}
	}
	for _, n := range counts {
		c.Read += n
	}
	return c
}

// LastSeq returns the last sequence of the LEDGER stream, where a check
// that reads only the run's events starts.
func LastSeq(ctx context.Context, js njs.JetStream) (uint64, error) {
	st, err := js.Stream(ctx, jetstream.StreamName)
	if err != nil {
		return 0, err
	}
	return st.CachedInfo().State.LastSeq, nil
}

// CommandCounts reads the LEDGER stream after sequence after to its last
// message and returns how often each command id is in it. A read that fails
// (a node just came back) goes on after the last message read, until ctx
// ends.
func CommandCounts(ctx context.Context, js njs.JetStream, after uint64) (map[string]int, error) {
	counts := map[string]int{}
	seq := after
	var last error
	for ctx.Err() == nil {
		done, err := readFrom(ctx, js, &seq, counts)
		if done {
			return counts, nil
		}
		last = err
		if !Sleep(ctx, 200*time.Millisecond) {
			break
		}
	}
	return nil, fmt.Errorf("read the ledger after seq %d: %w (last error: %v)", seq, ctx.Err(), last)
}

// readFrom reads the stream after *seq to its last message, moving *seq on
// with each message read.
func readFrom(ctx context.Context, js njs.JetStream, seq *uint64, counts map[string]int) (bool, error) {
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	st, err := js.Stream(cctx, jetstream.StreamName)
	if err != nil {
		return false, err
	}
	last := st.CachedInfo().State.LastSeq
	if *seq >= last {
		return true, nil
	}
	cons, err := js.OrderedConsumer(cctx, jetstream.StreamName, njs.OrderedConsumerConfig{
		DeliverPolicy: njs.DeliverByStartSequencePolicy, OptStartSeq: *seq + 1, MaxResetAttempts: 3})
	if err != nil {
		return false, err
	}
	it, err := cons.Messages(njs.PullMaxMessages(1000))
	if err != nil {
		return false, err
	}
	defer it.Stop()
	stop := context.AfterFunc(cctx, it.Stop)
	defer stop()
	for *seq < last {
		msg, err := it.Next()
		if err != nil {
			return false, err
		}
		md, err := msg.Metadata()
		if err != nil {
			return false, err
		}
		*seq = md.Sequence.Stream
		var env struct {
			CommandID string `json:"command_id"`
		}
		if err := json.Unmarshal(msg.Data(), &env); err != nil {
			return false, fmt.Errorf("event at seq %d: %w", *seq, err)
		}
		counts[env.CommandID]++
	}
	return true, nil
}
