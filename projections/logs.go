package projections

import (
	"context"
	"errors"
	"fmt"

	"github.com/backupledger/backupledger/domain"
)

// appLog is an app's log as the Store keeps it: its latest entries in
// memory (all of them for a Store without a History).
type appLog struct {
	entries []logged // the latest entries, oldest first
	dropped int      // how many older entries are no longer in memory
	// backups are the backups the log names, with the stream sequence of
	// each one's first entry: a backup's log is in memory when that entry
	// is.
	backups map[string]uint64
}

// add appends e, keeping at least keep latest entries (0: all). Entries
// are dropped keep at a time, so that adding stays cheap.
func (l *appLog) add(e logged, keep int) {
	if id := domain.BackupID(e.ev); id != "" {
		if _, ok := l.backups[id]; !ok {
			l.backups[id] = e.seq
		}
	}
	l.entries = append(l.entries, e)
	if keep > 0 && len(l.entries) >= 2*keep {
		n := copy(l.entries, l.entries[len(l.entries)-keep:])
		clear(l.entries[n:])
		l.dropped += len(l.entries) - n
		l.entries = l.entries[:n]
	}
}

// holds reports whether every entry from stream sequence seq on is in
// memory.
func (l *appLog) holds(seq uint64) bool {
	return l.dropped == 0 || (len(l.entries) > 0 && seq >= l.entries[0].seq)
}

// entriesOf returns the entries in memory of backup id ("" for all).
func (l *appLog) entriesOf(id string) []LogEntry {
	out := []LogEntry{}
	for _, e := range l.entries {
		if id == "" || domain.BackupID(e.ev) == id {
			out = append(out, e.entry())
		}
	}
	return out
}

// appEvent is what the app of m's subject folds of m, accepted by the
// check with verdict v: its event, or, when m is not a valid event of that
// app (only in the unsigned prefix), an opaque one.
func appEvent(m domain.StoredMessage, v domain.Verdict) decoded {
	switch {
	case v.Env == nil:
		return decoded{env: &domain.Envelope{App: m.Token, Type: TypeUndecodable}}
	case v.Env.App != m.Token:
		return decoded{env: &domain.Envelope{App: m.Token, Type: TypeUndecodable, Time: v.Env.Time, Actor: v.Env.Actor}}
	}
	return decoded{env: v.Env, ev: v.Event}
}

// loggedOf is the log entry of an applied event.
func loggedOf(seq uint64, d decoded) logged {
	return logged{seq: seq, time: d.env.Time.UTC(), actor: d.env.Actor, typ: d.env.Type, ev: d.ev}
}

// rejectedEntry is the log entry of m, refused by the check with verdict v.
func rejectedEntry(m domain.StoredMessage, v domain.Verdict) logged {
	claim := ""
	if v.Env != nil {
		claim = fmt.Sprintf("; it claims to be %s by %q", v.Env.Type, v.Env.Actor)
	}
	return logged{seq: m.Seq, time: m.Stored.UTC(), typ: TypeRejected,
		note: fmt.Sprintf("message at stream sequence %d refused (%s): %s%s", m.Seq, v.Rejected, v.Detail, claim)}
}

// AppLog returns the log of app, oldest first, up to the last applied
// event. A log longer than the memory keeps is read from the stream; it
// returns an *domain.Error with CodeUnavailable when that fails.
func (s *Store) AppLog(ctx context.Context, app string) ([]LogEntry, error) {
	s.mu.RLock()
	m, applied := s.apps[app], s.applied
	if m == nil || m.log.dropped == 0 {
		out := []LogEntry{}
		if m != nil {
			out = m.log.entriesOf("")
		}
		s.mu.RUnlock()
		return out, nil
	}
	last := m.state.Seq()
	s.mu.RUnlock()
	return s.logFromStream(ctx, app, "", applied, last)
}

// BackupLog returns the log of one backup, also after it was deleted, or an
// *domain.Error with CodeNotFound for a backup the app never had (as
// AppLog, read from the stream when the memory no longer holds it).
func (s *Store) BackupLog(ctx context.Context, app, id string) ([]LogEntry, error) {
	s.mu.RLock()
	var (
		first uint64
		ok    bool
	)
	m, applied := s.apps[app], s.applied
	if m != nil {
		first, ok = m.log.backups[id]
	}
	if !ok {
		s.mu.RUnlock()
		return nil, domain.Errorf(domain.CodeNotFound, "backup %s not found in app %s", id, app)
	}
	if m.log.holds(first) {
		out := m.log.entriesOf(id)
		s.mu.RUnlock()
		return out, nil
	}
	last := m.state.Seq()
	s.mu.RUnlock()
	return s.logFromStream(ctx, app, id, applied, last)
}

// logFromStream reads the log of app (of its backup id, or all of it for
// "") from the history up to stream sequence upTo, checking each message as
// Apply does with the keys' messages. last is the sequence of the app's
// last message this store applied: a read that ends before it (a replica
// behind answered) is unavailable, never a log short of what this server
// has answered already.
func (s *Store) logFromStream(ctx context.Context, app, id string, upTo, last uint64) ([]LogEntry, error) {
	check := s.newCheck()
	out := []LogEntry{}
	var seen uint64
	err := s.hist.Messages(ctx, []string{app, domain.KeysStream}, func(m domain.StoredMessage) bool {
		if m.Seq > upTo {
			return false
		}
		v := check.Check(m)
		if m.Token != app {
			return true
		}
		seen = m.Seq
		var e logged
		if v.Accepted() {
			e = loggedOf(m.Seq, appEvent(m, v))
		} else {
			e = rejectedEntry(m, v)
		}
		if id == "" || domain.BackupID(e.ev) == id {
			out = append(out, e.entry())
		}
		return true
	})
	if err != nil {
		var de *domain.Error
		if errors.As(err, &de) {
			return nil, err
		}
		return nil, domain.ReadUnavailable(fmt.Errorf("log of app %s: %w", app, err))
	}
	if seen < last {
		return nil, domain.ReadUnavailable(fmt.Errorf("log of app %s: the stream answered up to seq %d, this server applied %d", app, seen, last))
	}
	return out, nil
}

// newCheck returns a ledger check as the store's, before any message.
func (s *Store) newCheck() *domain.LedgerCheck {
	check := domain.NewLedgerCheck()
	if s.macKey != nil {
		check.TrustMAC(s.macKey)
	}
	if s.pin != "" {
		check.PinGenesis(s.pin)
	}
	return check
}
