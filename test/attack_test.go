package test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
	"golang.org/x/crypto/bcrypt"

	"github.com/backupledger/backupledger/adapters/jetstream"
	"github.com/backupledger/backupledger/adapters/password"
	"github.com/backupledger/backupledger/cmd/backupd/daemon"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/projections"
)

// The reply-subject attacks (docs/security.md): NATS checks what a client
// may publish, never the reply subject it names, and every responder
// answers there with its own rights. With one account for everything, the
// producer and audit logins had responders write into the ledger's
// streams and buckets. These tests send every responder they can reach a
// request whose reply subject is each of the ledger's subjects, with a
// body of the attacker's choice wherever they can choose one, and check
// that nothing of the ledger's account changed.

// attackTarget is a subject of the ledger's account that must never take a
// message from anyone but backupd, and what an attacker would put there.
type attackTarget struct {
	subject string
	payload []byte
}

// attackWorld is a running backupd with an app, a ready backup, a user
// with a password and a webhook, and the two NATS logins of outsiders.
type attackWorld struct {
	t        *testing.T
	n        *node
	srv      *server.Server // the NATS server, which lists every consumer
	producer *roleConn
	audit    *roleConn
	backup   projections.BackupView
	targets  []attackTarget
	password string // ada's
}

const attackerPassword = "the attacker's own password"

func newAttackWorld(t *testing.T, n *node, srv *server.Server, producer, audit *roleConn) *attackWorld {
	t.Helper()
	w := &attackWorld{t: t, n: n, srv: srv, producer: producer, audit: audit, password: "ada has a long password"}
	n.must(http.StatusCreated, "POST", "/v1/orgs", map[string]string{"id": "acme"})
	n.must(http.StatusCreated, "POST", "/v1/users", map[string]string{"id": "ada", "name": "Ada", "password": w.password})
	n.must(http.StatusNoContent, "PUT", "/v1/orgs/acme/members/ada", nil)
	n.must(http.StatusOK, "PUT", "/v1/apps/crm", map[string]string{"org": "acme"})
	w.backup = n.readyBackup("crm")
	n.registerWebhook("crm", "https://hooks.example.com/crm", nil)

	// What each target would take: a forged event that chains onto the
	// app's last one, a forged grant, a password hash the attacker knows,
	// a configuration document, an archive's meta pointing elsewhere.
	head, err := n.ledgerMsg(n.lastSeqOf("crm"))
	if err != nil {
		t.Fatal(err)
	}
	forged := func(app, typ string, data any) []byte {
		raw, err := json.Marshal(data)
		if err != nil {
			t.Fatal(err)
		}
		prev := ""
		if app == "crm" {
			prev = domain.HashEvent(head.Data)
		}
		b, err := json.Marshal(domain.Envelope{ID: "01JFORGED000000000000000000", Type: typ, Version: 1, App: app,
			Time: time.Now().UTC(), Actor: "mallory", CommandID: "forged", PrevHash: prev, Data: raw})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(attackerPassword), 4)
	if err != nil {
		t.Fatal(err)
	}
	w.targets = []attackTarget{
		{"ledger.events.crm", forged("crm", domain.TypeBackupDeleted, domain.BackupDeleted{BackupID: w.backup.ID})},
		{"ledger.events._identity", forged(domain.IdentityStream, domain.TypeAdminGranted, domain.AdminGranted{App: "crm", User: "mallory"})},
		{"$KV.ledger_secrets.password.ada", hash},
		{"$KV.ledger_config.crm.app.json", []byte(`{"name":"owned"}`)},
		{"$O.ledger_archives.M." + base64.URLEncoding.EncodeToString([]byte(w.backup.ID)), []byte(`{"name":"` + w.backup.ID + `","nuid":"x","size":1,"chunks":1,"digest":"SHA-256=AAAA"}`)},
		// The doors between the accounts: the service the producers
		// import, and what the audit mirror's account imports from the
		// ledger's (the consumer API, with a request that would make a
		// consumer deliver into LEDGER; flow control; the deliveries).
		{"ledger.api.backups.delete", []byte(`{"app":"crm","id":"` + w.backup.ID + `"}`)},
		{"$SRV.PING", []byte(`{}`)},
		{jetstream.MirrorLedgerAPI + ".CONSUMER.CREATE.LEDGER.attack", pushConsumerRequest("LEDGER", "attack", "$KV.ledger_secrets.password.ada")},
		{jetstream.MirrorLedgerAPI + ".CONSUMER.CREATE.LEDGER", pushConsumerRequest("LEDGER", "attack2", "ledger.events.crm")},
		{"$JS.FC.LEDGER.attack.x", []byte(`{}`)},
		{jetstream.MirrorDeliverPrefix + ".attack", forged("crm", domain.TypeBackupDeleted, domain.BackupDeleted{BackupID: w.backup.ID})},
	}
	return w
}

// pushConsumerRequest is the body of a request that creates a push
// consumer name of stream delivering to subject.
func pushConsumerRequest(stream, name, subject string) []byte {
	b, _ := json.Marshal(map[string]any{"stream_name": stream, "config": map[string]any{
		"name": name, "deliver_subject": subject, "deliver_policy": "all", "ack_policy": "none",
	}})
	return b
}

// lastSeqOf returns the stream sequence of app's last message, 0 for a
// subject without messages.
func (n *node) lastSeqOf(app string) uint64 {
	n.t.Helper()
	st, err := n.js.Stream(context.Background(), jetstream.StreamName)
	if err != nil {
		n.t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(context.Background(), jetstream.Subject(app))
	if errors.Is(err, njs.ErrMsgNotFound) {
		return 0
	}
	if err != nil {
		n.t.Fatal(err)
	}
	return m.Sequence
}

// streamState is what a stream holds, as far as a landed message changes it.
type streamState struct {
	Msgs, FirstSeq, LastSeq uint64
}

// ledgerAccount returns the state of every stream of the ledger's account.
func (w *attackWorld) ledgerAccount() map[string]streamState {
	w.t.Helper()
	out := map[string]streamState{}
	streams := w.n.js.ListStreams(context.Background())
	for info := range streams.Info() {
		out[info.Config.Name] = streamState{info.State.Msgs, info.State.FirstSeq, info.State.LastSeq}
	}
	if err := streams.Err(); err != nil {
		w.t.Fatal(err)
	}
	for _, want := range []string{"LEDGER", "KV_ledger_secrets", "KV_ledger_config", "OBJ_ledger_archives"} {
		if _, ok := out[want]; !ok {
			w.t.Fatalf("the ledger's account has no stream %s (streams: %v)", want, slices.Sorted(maps.Keys(out)))
		}
	}
	return out
}

// responder is something that answers a request on the reply subject the
// requester names: it is what the attacks go through.
type responder struct {
	name string
	// request builds the request that makes the responder write tg's
	// payload (where it echoes one) to tg's subject; with an empty
	// subject, the request for an answer to the requester itself.
	request func(tg attackTarget) *nats.Msg
	// reachable says whether the accounts let the login ask at all.
	reachable bool
}

// responders returns what c would go through, each responder of DESIGN §10
// (the micro service, its discovery, the JetStream API, a direct get of a
// message whose bytes the attacker chose) and a push consumer's
// deliveries, with whether the accounts let c reach it.
func (w *attackWorld) responders(c *roleConn) []responder {
	w.t.Helper()
	ctx := context.Background()
	producer := c.role == daemon.RoleProducer
	stream := "LEDGER" // the audit role's: the mirror
	if producer {
		stream = "OBJ_ledger_staging"
	}
	consumers := 0
	rs := []responder{
		{"the backup-ledger service", func(attackTarget) *nats.Msg {
			m := nats.NewMsg("ledger.api.backups.list")
			m.Data = []byte(`{"app":"crm"}`)
			return m
		}, producer},
		{"service discovery", func(attackTarget) *nats.Msg { return nats.NewMsg("$SRV.PING") }, producer},
		{"the JetStream API", func(attackTarget) *nats.Msg { return nats.NewMsg("$JS.API.INFO") }, true},
		{"a push consumer's deliveries", func(tg attackTarget) *nats.Msg {
			consumers++
			name := fmt.Sprintf("attack-%d", consumers)
			cfg := map[string]any{"name": name, "ack_policy": "none", "deliver_policy": "last", "inactive_threshold": int64(time.Minute)}
			m := nats.NewMsg("$JS.API.CONSUMER.CREATE." + stream + "." + name)
			if tg.subject != "" {
				// The attack is where the consumer delivers; the create's
				// answer comes back to the attacker.
				cfg["deliver_subject"] = tg.subject
				m.Reply = c.nc.NewRespInbox()
			}
			m.Data, _ = json.Marshal(map[string]any{"stream_name": stream, "config": cfg})
			return m
		}, true},
	}
	if producer {
		// A direct get of a staging chunk answers with the attacker's own
		// bytes: one object per payload.
		obs, err := c.js.ObjectStore(ctx, "ledger_staging")
		if err != nil {
			w.t.Fatalf("%s: staging bucket: %v", c.role, err)
		}
		return append(rs, responder{"a direct get of a staging chunk", func(tg attackTarget) *nats.Msg {
			name := fmt.Sprintf("attack-%x", domain.HashEvent(append([]byte(tg.subject+"|"), tg.payload...)))
			info, err := obs.PutBytes(ctx, name, tg.payload)
			if err != nil {
				w.t.Fatalf("%s: put %s: %v", c.role, name, err)
			}
			return nats.NewMsg("$JS.API.DIRECT.GET.OBJ_ledger_staging.$O.ledger_staging.C." + info.NUID)
		}, true})
	}
	return append(rs,
		// The audit role reads a genuine event, which it would replay.
		responder{"a direct get of the mirror", func(attackTarget) *nats.Msg {
			return nats.NewMsg("$JS.API.DIRECT.GET.LEDGER.ledger.events.crm")
		}, true},
		// The staging bucket is the producers': the audit role cannot ask.
		responder{"a direct get of a staging chunk", func(attackTarget) *nats.Msg {
			m := nats.NewMsg("$JS.API.DIRECT.GET.OBJ_ledger_staging")
			m.Data = []byte(`{"last_by_subj":"$O.ledger_staging.C.x"}`)
			return m
		}, false},
	)
}

// attack sends every responder c can reach a request answered on each
// target, and checks reachability as the accounts promise: a reachable
// responder answers the same request on c's own inbox (before and after
// the attacks, which is also the fence: the answer comes once the
// responder has handled what c sent before), an unreachable one is a
// permissions violation. A test may not pass by skipping a responder.
func (w *attackWorld) attack(c *roleConn) {
	w.t.Helper()
	for _, r := range w.responders(c) {
		w.t.Run(c.role+" through "+r.name, func(t *testing.T) {
			control := func() {
				t.Helper()
				m := r.request(attackTarget{payload: w.targets[0].payload})
				if !r.reachable {
					if resp, err := c.nc.RequestMsg(m, time.Second); err == nil {
						t.Fatalf("%s: %s answered %s, but the login may not ask it", c.role, m.Subject, resp.Data)
					}
					c.waitViolation(m.Subject)
					return
				}
				resp, err := c.nc.RequestMsg(m, 5*time.Second)
				if err != nil {
					t.Fatalf("%s: %s: %v (the responder must be reachable, or the test proves nothing)", c.role, m.Subject, err)
				}
				if len(resp.Data) == 0 {
					t.Fatalf("%s: %s answered nothing", c.role, m.Subject)
				}
			}
			control()
			for _, tg := range w.targets {
				m := r.request(tg)
				if m.Reply == "" {
					m.Reply = tg.subject
				}
				if err := c.nc.PublishMsg(m); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.nc.Flush(); err != nil {
				t.Fatal(err)
			}
			control()
		})
	}
}

// check fails the test if the ledger's account changed since before, or
// the ledger's state shows any of the attacks.
func (w *attackWorld) check(before map[string]streamState, consumers []string) {
	w.t.Helper()
	if after := w.ledgerAccount(); !maps.Equal(before, after) {
		for name, b := range before {
			if a := after[name]; a != b {
				w.t.Errorf("stream %s changed: %+v, now %+v", name, b, a)
			}
		}
		for name := range after {
			if _, ok := before[name]; !ok {
				w.t.Errorf("new stream %s in the ledger's account", name)
			}
		}
	}
	// No consumer of LEDGER, listed or direct (as the mirror's is), delivers
	// anywhere but to the audit mirror.
	jsz, err := w.srv.Jsz(&server.JSzOptions{Account: daemon.AccountLedger, Accounts: true, Streams: true, Consumer: true, DirectConsumer: true, Config: true})
	if err != nil {
		w.t.Fatal(err)
	}
	seen := 0
	for _, acc := range jsz.AccountDetails {
		for _, st := range acc.Streams {
			for _, c := range append(slices.Clone(st.Consumer), st.DirectConsumer...) {
				seen++
				if ds := c.Config.DeliverSubject; ds != "" && !strings.HasPrefix(ds, jetstream.MirrorDeliverPrefix+".") {
					w.t.Errorf("consumer %s of %s delivers to %s", c.Name, st.Name, ds)
				}
			}
		}
	}
	if seen == 0 {
		w.t.Error("the server reported no consumer at all of the ledger's account: the check proves nothing")
	}
	if now := w.durableConsumers(); !slices.Equal(now, consumers) {
		w.t.Errorf("durable consumers of LEDGER: %v, before %v", now, consumers)
	}
	// The backup is there, ada still logs in with her password and the
	// attacker's does not, the app has no other admin.
	if b := w.n.backup("crm", w.backup.ID); b.Status != "ready" {
		w.t.Errorf("backup %s is %s", w.backup.ID, b.Status)
	}
	w.n.must(http.StatusCreated, "POST", "/v1/sessions", map[string]string{"user": "ada", "password": w.password}, w.n.as("")...)
	w.n.must(http.StatusUnauthorized, "POST", "/v1/sessions", map[string]string{"user": "ada", "password": attackerPassword}, w.n.as("")...)
	if got := w.n.configDocs("crm"); got["app.json"] != `{"name":"crm"}` {
		w.t.Errorf("crm's app.json = %q", got["app.json"])
	}
	if _, err := w.n.archiveBytes(w.backup.ID); err != nil {
		w.t.Errorf("the archive of %s: %v", w.backup.ID, err)
	}
}

// durableConsumers returns the durable consumers of LEDGER, sorted.
func (w *attackWorld) durableConsumers() []string {
	w.t.Helper()
	var out []string
	st, err := w.n.js.Stream(context.Background(), jetstream.StreamName)
	if err != nil {
		w.t.Fatal(err)
	}
	names := st.ListConsumers(context.Background())
	for info := range names.Info() {
		if info.Config.Durable != "" {
			out = append(out, info.Config.Durable)
		}
	}
	if err := names.Err(); err != nil {
		w.t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// run attacks with both logins and checks that nothing landed.
func (w *attackWorld) run() {
	w.t.Helper()
	w.audit.waitMirror(w.n.lastSeq())
	before, consumers := w.ledgerAccount(), w.durableConsumers()
	w.attack(w.producer)
	w.attack(w.audit)
	w.check(before, consumers)
}

func TestNATSReplyAttacks(t *testing.T) {
	n := startNode(t, t.TempDir(), func(c *daemon.Config) { c.Identity.PasswordParams = password.TestParams() }, nil)
	w := newAttackWorld(t, n, n.d.Server(), n.connectAs(daemon.RoleProducer), n.connectAs(daemon.RoleAudit))
	w.run()
}

// The attacks need what they go through: a staging object's chunk is the
// attacker's bytes, read back by a direct get.
func TestNATSDirectGetOfAStagingChunkEchoesTheAttackersBytes(t *testing.T) {
	n := startNode(t, t.TempDir(), nil, nil)
	p := n.connectAs(daemon.RoleProducer)
	obs, err := p.js.ObjectStore(context.Background(), "ledger_staging")
	if err != nil {
		t.Fatal(err)
	}
	info, err := obs.PutBytes(context.Background(), "echo", []byte("chosen bytes"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := p.nc.Request("$JS.API.DIRECT.GET.OBJ_ledger_staging.$O.ledger_staging.C."+info.NUID, nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(resp.Data, []byte("chosen bytes")) {
		t.Fatalf("direct get answered %q", resp.Data)
	}
	if _, err := p.js.Stream(context.Background(), "LEDGER"); !errors.Is(err, njs.ErrStreamNotFound) && err == nil {
		t.Fatal("the producer sees LEDGER")
	}
}
