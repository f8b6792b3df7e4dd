package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	ledgerjs "github.com/backupledger/backupledger/adapters/jetstream"
	"github.com/backupledger/backupledger/domain"
)

// defaultNATSLogin is the audit role's login that backupd writes in its data
// directory (--data-dir ./data) when its NATS server listens on a port.
const defaultNATSLogin = "data/nats/audit.json"

const helpAuditTail = `
Prints the events of the ledger (the stream LEDGER, subjects
ledger.events.>), oldest first, one per line, each the event's JSON body
exactly as stored (docs/events.md): JSON Lines, ready for jq or a log
shipper. It reads the stream directly over NATS as the audit role, not
through the HTTP API; --server and --token do not apply.

Flags:
  --app APP         only APP's events (subject ledger.events.APP);
                    _identity is the stream of users, organisations and
                    app admins, _keys the ledger's signing keys
  --since TIME|SEQ  start at the first event stored at or after TIME (RFC
                    3339, e.g. 2026-11-21T10:00:00Z), or at the stream
                    sequence SEQ (a positive integer); default: the
                    first event
  --follow          keep printing new events as they are stored, until
                    interrupted (Ctrl-C, SIGTERM; exit 0)
  --nats-login FILE the audit role's login (default ./data/nats/audit.json,
                    which backupd writes into its data directory when its
                    NATS server listens on a port): JSON with user,
                    password, inbox_prefix and url
  --nats-url URL    the NATS server (default: the login's url)

Without --follow it stops after the last event that was stored when it
started. --timeout bounds the connection and each wait for the next of
those events. See docs/audit.md.
`

// natsLogin is a NATS role's login file, as backupd writes it to
// <data-dir>/nats/<role>.json (docs/security.md).
type natsLogin struct {
	User        string `json:"user"`
	Password    string `json:"password"`
	InboxPrefix string `json:"inbox_prefix"`
	URL         string `json:"url"`
}

// natsFlags are the flags of the commands that talk to NATS directly.
type natsFlags struct {
	login string
	url   string
}

func (f *natsFlags) add(fs *flag.FlagSet) {
	fs.StringVar(&f.login, "nats-login", defaultNATSLogin, "")
	fs.StringVar(&f.url, "nats-url", "", "")
}

// readNATSLogin reads a login file. A file that does not exist or is not a
// login is a usageError.
func readNATSLogin(cmd *command, path string) (natsLogin, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return natsLogin{}, &usageError{cmd: cmd, msg: fmt.Sprintf("no NATS login: %s does not exist; run backupctl "+
			"in the directory that holds backupd's data/ (its NATS server must listen on a port), or pass --nats-login FILE", path)}
	}
	if err != nil {
		return natsLogin{}, &usageError{cmd: cmd, msg: fmt.Sprintf("read NATS login: %v", err)}
	}
	var l natsLogin
	if err := json.Unmarshal(b, &l); err != nil {
		return natsLogin{}, &usageError{cmd: cmd, msg: fmt.Sprintf("NATS login %s is not a login file: %v", path, err)}
	}
	return l, nil
}

// natsSession is a connection to NATS with a JetStream client, and the
// last asynchronous error the server sent (a permissions violation).
type natsSession struct {
	nc    *nats.Conn
	js    njs.JetStream
	async atomic.Pointer[error]
}

// explain adds to err the last asynchronous error of the server, which
// says why a request timed out when the login lacks a permission.
func (s *natsSession) explain(err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return err
	}
	if async := s.async.Load(); async != nil {
		return fmt.Errorf("%w (the NATS server said: %v)", err, *async)
	}
	return err
}

func (s *natsSession) close() { s.nc.Close() }

// connectNATS connects to NATS with the login of f (its url, unless --nats-url
// overrides it). A missing or invalid login is a usageError; a refused or
// failed connection an error that never shows the password.
func (c *cli) connectNATS(cmd *command, f natsFlags) (*natsSession, error) {
	l, err := readNATSLogin(cmd, f.login)
	if err != nil {
		return nil, err
	}
	server := cmp.Or(f.url, l.URL)
	if server == "" {
		return nil, &usageError{cmd: cmd, msg: fmt.Sprintf("NATS login %s has no url; pass --nats-url", f.login)}
	}
	s := &natsSession{}
	opts := []nats.Option{
		nats.Name("backupctl"),
		nats.Timeout(c.g.timeout),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { s.async.Store(&err) }),
	}
	if l.User != "" {
		opts = append(opts, nats.UserInfo(l.User, l.Password))
	}
	if l.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(l.InboxPrefix))
	}
	if s.nc, err = nats.Connect(server, opts...); err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %s", redactURLs(server), redactPassword(err.Error(), l.Password))
	}
	if s.js, err = njs.New(s.nc, njs.WithDefaultTimeout(c.g.timeout)); err != nil {
		s.nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return s, nil
}

// redactURLs replaces the passwords in a comma-separated list of URLs.
func redactURLs(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}

// redactPassword removes pw from an error text.
func redactPassword(s, pw string) string {
	if pw == "" {
		return s
	}
	return strings.ReplaceAll(s, pw, "xxxxx")
}

// auditApp parses --app: an app id, _identity or _keys. It returns the
// subject filter: every subject without --app.
func auditApp(cmd *command, app string) (string, error) {
	if app == "" {
		return ledgerjs.SubjectAll, nil
	}
	if app != domain.IdentityStream && app != domain.KeysStream {
		if err := domain.ValidateAppID(app); err != nil {
			return "", &usageError{cmd: cmd, msg: fmt.Sprintf("--app %q: %v", app, err)}
		}
	}
	return ledgerjs.Subject(app), nil
}

// ledgerQuery says which events readLedger reads.
type ledgerQuery struct {
	// filters are the subject filters; the messages of all of them are
	// read in stream order.
	filters   []string
	startSeq  uint64    // first stream sequence, 0: from the start
	startTime time.Time // first store time, zero: from the start
	// follow keeps reading new events until ctx ends; else reading stops
	// after the last event stored when it began.
	follow bool
	// wait bounds each wait for the next event when not following.
	wait time.Duration
}

// ledgerMsg is one event as stored.
type ledgerMsg struct {
	seq     uint64
	subject string
	data    []byte
	// keyID and signature are the values of the headers
	// domain.HeaderKeyID and domain.HeaderSignature, "" when absent.
	keyID     string
	signature string
	// stored is the time the server stored the message.
	stored time.Time
	// pending is how many events of the query the server held after this
	// one when it was delivered.
	pending uint64
}

// readLedger calls fn with each event of q, in stream order, through an
// ordered consumer of its own (deleted at the end). It returns fn's error,
// ctx's error when ctx ends (also when following), and the server's
// errors, wrapped.
func readLedger(ctx context.Context, js njs.JetStream, q ledgerQuery, fn func(ledgerMsg) error) error {
	st, err := js.Stream(ctx, ledgerjs.StreamName)
	if err != nil {
		if errors.Is(err, njs.ErrStreamNotFound) {
			return fmt.Errorf("stream %s not found: is this backupd's NATS server?", ledgerjs.StreamName)
		}
		return fmt.Errorf("stream %s: %w (is the login the audit role's?)", ledgerjs.StreamName, err)
	}
	last := st.CachedInfo().State.LastSeq
	if !q.follow && (last == 0 || q.startSeq > last) {
		return nil
	}
	cfg := njs.OrderedConsumerConfig{FilterSubjects: q.filters, DeliverPolicy: njs.DeliverAllPolicy}
	switch {
	case q.startSeq > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = njs.DeliverByStartSequencePolicy, q.startSeq
	case !q.startTime.IsZero():
		cfg.DeliverPolicy, cfg.OptStartTime = njs.DeliverByStartTimePolicy, &q.startTime
	}
	cons, err := st.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("consumer of %s: %w", ledgerjs.StreamName, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("consumer of %s: %w", ledgerjs.StreamName, err)
	}
	defer func() {
		it.Stop()
		// The server would drop the consumer after a while of inactivity;
		// deleting it leaves nothing behind at once.
		if info := cons.CachedInfo(); info != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			_ = js.DeleteConsumer(dctx, ledgerjs.StreamName, info.Name)
			cancel()
		}
	}()
	if info := cons.CachedInfo(); !q.follow && info != nil && info.NumPending == 0 {
		return nil
	}
	what := strings.Join(q.filters, ", ")
	for {
		nctx, cancel := ctx, context.CancelFunc(func() {})
		if !q.follow {
			nctx, cancel = context.WithTimeout(ctx, q.wait)
		}
		msg, err := it.Next(njs.NextContext(nctx))
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			return fmt.Errorf("read %s: no event within %s", what, q.wait)
		case err != nil:
			return fmt.Errorf("read %s: %w", what, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("read %s: %w", what, err)
		}
		if !q.follow && md.Sequence.Stream > last {
			return nil
		}
		m := ledgerMsg{seq: md.Sequence.Stream, subject: msg.Subject(), data: msg.Data(), stored: md.Timestamp, pending: md.NumPending}
		if h := msg.Headers(); h != nil {
			m.keyID, m.signature = h.Get(domain.HeaderKeyID), h.Get(domain.HeaderSignature)
		}
		if err := fn(m); err != nil {
			return err
		}
		if !q.follow && (md.NumPending == 0 || md.Sequence.Stream >= last) {
			return nil
		}
	}
}

// parseSince parses --since: a positive stream sequence, or an RFC 3339
// time.
func parseSince(cmd *command, s string) (seq uint64, t time.Time, err error) {
	if s == "" {
		return 0, time.Time{}, nil
	}
	if n, err := strconv.ParseUint(s, 10, 64); err == nil {
		if n == 0 {
			return 0, time.Time{}, &usageError{cmd: cmd, msg: "--since: stream sequences start at 1"}
		}
		return n, time.Time{}, nil
	}
	t, err = time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, time.Time{}, &usageError{cmd: cmd, msg: fmt.Sprintf("--since %q is neither a stream sequence nor an RFC 3339 time (2026-11-21T10:00:00Z)", s)}
	}
	return 0, t, nil
}

func auditTail(ctx context.Context, c *cli, cmd *command, args []string) error {
	fs := c.flagSet(cmd.name)
	var nf natsFlags
	nf.add(fs)
	app := fs.String("app", "", "")
	since := fs.String("since", "", "")
	follow := fs.Bool("follow", false, "")
	if _, err := c.parse(cmd, fs, args, 0, 0); err != nil {
		return err
	}
	filter, err := auditApp(cmd, *app)
	if err != nil {
		return err
	}
	startSeq, startTime, err := parseSince(cmd, *since)
	if err != nil {
		return err
	}
	ns, err := c.connectNATS(cmd, nf)
	if err != nil {
		return err
	}
	defer ns.close()
	w := bufio.NewWriterSize(c.stdout, 64<<10)
	q := ledgerQuery{filters: []string{filter}, startSeq: startSeq, startTime: startTime, follow: *follow, wait: c.g.timeout}
	err = readLedger(ctx, ns.js, q, func(m ledgerMsg) error {
		// backupd's bodies are compact JSON without a newline.
		w.Write(m.data)
		if err := w.WriteByte('\n'); err != nil {
			return err
		}
		if m.pending == 0 {
			// Caught up: show what there is before waiting.
			return w.Flush()
		}
		return nil
	})
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if *follow && errors.Is(err, context.Canceled) {
		return nil // interrupted: the normal end of --follow
	}
	if errors.Is(err, context.Canceled) {
		return errors.New("interrupted")
	}
	return ns.explain(err)
}
