package main

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	ledgerjs "github.com/backupledger/backupledger/adapters/jetstream"
	"github.com/backupledger/backupledger/domain"
)

const helpAuditVerify = `
Checks that every message of the ledger is part of it, with exactly the
rules backupd's projections apply (docs/events.md, "Signatures"). From the
genesis on (the first key.created, on ledger.events._keys), a message
counts only if it is signed by a key of the ledger (headers Ledger-Key-Id
and Ledger-Signature, Ed25519 over the body exactly as stored), its app is
its subject's, and its prev_hash is the SHA-256 (hex) of its app's last
accepted event. A replaced key's signatures count on messages stored up
to a minute (server store time) after its key.rotated. The events before
the genesis are the unsigned prefix of a ledger written before signing
existed: each app's hash chain is checked, their signatures are not. It
reads over NATS as the audit role (a mirror of the stream LEDGER): read
access is all it needs.

Prints, per app (and _identity, _keys), the events accepted, how many of
them are unsigned (before the genesis), the messages refused, the stream
sequence of the last accepted event and its hash (the chain's head:
record it elsewhere to detect later that events at the end were removed);
then the genesis, the keys and a summary. With --json, prints the same as
a JSON document.

It exits 1 if a message was refused or a link of the unsigned prefix is
broken. For each such app it prints the first bad message: a refused one
with its stream sequence, reason and what it claimed to be, or a
broken link with its stream sequence, the prev_hash expected and the
one found. It exits 1 as well if --key is not the ledger's genesis key.

Flags:
  --app APP         only APP's events (ledger.events._keys is read as
                    well, for the keys, but not listed)
  --key KEYID       the genesis key's id you recorded for this ledger (16
                    hex digits; key.created's key_id): only a key.created
                    of it starts the signed ledger (any other is refused),
                    and verify exits 1 if the ledger has none
  --nats-login FILE the audit role's login (default ./data/nats/audit.json)
  --nats-url URL    the NATS server (default: the login's url)

See docs/audit.md.
`

// chain is what audit verify learnt of one subject: its accepted events,
// which form its hash chain, and the messages refused.
type chain struct {
	App     string `json:"app"`
	Subject string `json:"subject"`
	// Events counts the accepted events, Legacy those of them before the
	// genesis (unsigned), Rejected the messages refused.
	Events   int `json:"events"`
	Legacy   int `json:"legacy"`
	Rejected int `json:"rejected"`
	// LastSeq is the stream sequence of the last accepted event, Head its
	// hash (domain.LedgerCheck.Head): the prev_hash of the next event.
	LastSeq uint64 `json:"last_seq"`
	Head    string `json:"head"`
	// Intact: no message refused, no broken link.
	Intact bool        `json:"intact"`
	Broken *chainBreak `json:"broken,omitempty"` // the first broken link of the unsigned prefix
	// Refused lists the messages refused, in stream order.
	Refused []refusal `json:"refused,omitempty"`
}

// chainBreak is the first broken link of a chain's unsigned prefix: the
// event at Seq, accepted all the same (as backupd always took it).
type chainBreak struct {
	Seq uint64 `json:"seq"`
	// Reason is the domain.Reason code: prev_hash, no_prev_hash,
	// undecodable or wrong_app.
	Reason string `json:"reason"`
	// Expected is the hash of the previous event of the subject ("" for
	// the first); ExpectedOf its stream sequence (0 for none).
	Expected   string `json:"expected"`
	ExpectedOf uint64 `json:"expected_of,omitempty"`
	// Found is the event's prev_hash; empty when Problem says why the
	// event has none.
	Found string `json:"found"`
	// Problem says what is wrong when it is not just the hash.
	Problem string `json:"problem,omitempty"`
}

// refusal is a message that is not part of the ledger.
type refusal struct {
	Seq uint64 `json:"seq"`
	// Reason is the domain.Reason code, Detail the sentence of
	// domain.Verdict.Detail.
	Reason string `json:"reason"`
	Detail string `json:"detail"`
	// Type and Actor are what the message claimed to be: its envelope's,
	// "" if the body is not one.
	Type  string `json:"type,omitempty"`
	Actor string `json:"actor,omitempty"`
}

// verifyKey is one signing key of the ledger.
type verifyKey struct {
	ID        string `json:"id"`
	PublicKey string `json:"public_key"` // standard base64
	// FromSeq is the sequence of the key.created or key.rotated that
	// announced it; RetiredSeq that of the key.rotated that replaced it,
	// 0 while it is current.
	FromSeq    uint64 `json:"from_seq"`
	RetiredSeq uint64 `json:"retired_seq,omitempty"`
}

// verifyReport is audit verify's result, as --json prints it.
type verifyReport struct {
	// Apps counts the chains listed; Events, Legacy and Rejected are
	// their sums.
	Apps     int  `json:"apps"`
	Events   int  `json:"events"`
	Legacy   int  `json:"legacy"`
	Rejected int  `json:"rejected"`
	Intact   bool `json:"intact"` // every chain listed is intact
	// GenesisSeq and GenesisKey are the sequence of the key.created that
	// starts the signed ledger and its key; 0 and "" while it is unsigned.
	GenesisSeq uint64      `json:"genesis_seq,omitempty"`
	GenesisKey string      `json:"genesis_key,omitempty"`
	Keys       []verifyKey `json:"keys"`
	// ExpectedKey is --key; KeyMatches whether it is GenesisKey (absent
	// without --key).
	ExpectedKey string `json:"expected_key,omitempty"`
	KeyMatches  *bool  `json:"key_matches,omitempty"`
	// Verified is the verdict: Intact, and the genesis key is --key if
	// given. audit verify exits 0 exactly when it is true.
	Verified bool     `json:"verified"`
	Chains   []*chain `json:"chains"`
	// KeyChain is, with --app, the chain of ledger.events._keys, read for
	// the keys but not listed in Chains (nor counted).
	KeyChain *chain `json:"key_chain,omitempty"`
}

// verifier feeds the messages of LEDGER, in stream order, to one
// domain.LedgerCheck (the very check of backupd's projections) and keeps
// per subject what audit verify reports.
type verifier struct {
	check  *domain.LedgerCheck
	app    string            // --app: the only token listed; "" for all
	chains map[string]*chain // by token
}

// newVerifier returns a verifier of app's events (all with ""), whose
// genesis must announce the key pin (--key) when it is set.
func newVerifier(app, pin string) *verifier {
	v := &verifier{check: domain.NewLedgerCheck(), app: app, chains: map[string]*chain{}}
	if pin != "" {
		v.check.PinGenesis(pin)
	}
	return v
}

// add checks m, the message after those added before.
func (v *verifier) add(m ledgerMsg) {
	token := strings.TrimPrefix(m.subject, ledgerjs.SubjectPrefix)
	ch := v.chains[token]
	if ch == nil {
		ch = &chain{App: token, Subject: m.subject, Intact: true}
		v.chains[token] = ch
	}
	expected, expectedOf := v.check.Head(token), ch.LastSeq
	verdict := v.check.Check(domain.StoredMessage{Seq: m.seq, Token: token, Body: m.data,
		KeyID: m.keyID, Signature: m.signature, Stored: m.stored})
	if !verdict.Accepted() {
		r := refusal{Seq: m.seq, Reason: verdict.Rejected, Detail: verdict.Detail}
		if verdict.Env != nil {
			r.Type, r.Actor = verdict.Env.Type, verdict.Env.Actor
		}
		ch.Rejected++
		ch.Refused = append(ch.Refused, r)
		ch.Intact = false
		return
	}
	ch.Events++
	ch.LastSeq = m.seq
	if verdict.Legacy {
		ch.Legacy++
	}
	if verdict.Broken == "" || ch.Broken != nil {
		return
	}
	brk := &chainBreak{Seq: m.seq, Reason: verdict.Broken, Expected: expected, ExpectedOf: expectedOf}
	if verdict.Env != nil && verdict.Broken != domain.ReasonNoPrevHash {
		brk.Found = verdict.Env.PrevHash
	}
	if verdict.Broken != domain.ReasonPrevHash {
		brk.Problem = verdict.Detail
	}
	ch.Broken, ch.Intact = brk, false
}

// report returns the result of the messages added; expectKey is --key.
func (v *verifier) report(expectKey string) verifyReport {
	rep := verifyReport{Intact: true, Keys: []verifyKey{}, Chains: []*chain{}}
	for token, ch := range v.chains {
		ch.Head = v.check.Head(token)
		switch {
		case v.app == "" || token == v.app:
			rep.Chains = append(rep.Chains, ch)
		case token == domain.KeysStream:
			rep.KeyChain = ch
		}
	}
	slices.SortFunc(rep.Chains, func(a, b *chain) int { return strings.Compare(a.App, b.App) })
	rep.Apps = len(rep.Chains)
	for _, ch := range rep.Chains {
		rep.Events += ch.Events
		rep.Legacy += ch.Legacy
		rep.Rejected += ch.Rejected
		rep.Intact = rep.Intact && ch.Intact
	}
	keys := v.check.Keys()
	for _, k := range keys {
		rep.Keys = append(rep.Keys, verifyKey{ID: k.ID, PublicKey: base64.StdEncoding.EncodeToString(k.PublicKey), FromSeq: k.CreatedSeq, RetiredSeq: k.RetiredSeq})
	}
	if g := v.check.Genesis(); g != 0 && len(keys) > 0 {
		rep.GenesisSeq, rep.GenesisKey = g, keys[0].ID
	}
	rep.Verified = rep.Intact
	if expectKey != "" {
		matches := rep.GenesisKey == expectKey
		rep.ExpectedKey, rep.KeyMatches = expectKey, &matches
		rep.Verified = rep.Verified && matches
	}
	return rep
}

// otherGenesis returns, with --key, the sequence of the first key.created
// refused for announcing another key than --key; 0 if there is none.
func (rep verifyReport) otherGenesis() uint64 {
	if rep.ExpectedKey == "" {
		return 0
	}
	keys := rep.KeyChain
	for _, ch := range rep.Chains {
		if ch.App == domain.KeysStream {
			keys = ch
		}
	}
	if keys == nil {
		return 0
	}
	for _, r := range keys.Refused {
		if r.Reason == domain.ReasonNotGenesis {
			return r.Seq
		}
	}
	return 0
}

// firstBad returns the chain's first bad message: its first broken link
// or its first refused message, whichever came first.
func (ch *chain) firstBad() (seq uint64, reason string) {
	if ch.Broken != nil {
		seq, reason = ch.Broken.Seq, ch.Broken.Reason
	}
	if len(ch.Refused) > 0 && (seq == 0 || ch.Refused[0].Seq < seq) {
		seq, reason = ch.Refused[0].Seq, ch.Refused[0].Reason
	}
	return seq, reason
}

// parseKeyID parses --key: a key id, 16 hex digits.
func parseKeyID(cmd *command, s string) (string, error) {
	id := strings.ToLower(s)
	if len(id) != 16 || strings.Trim(id, "0123456789abcdef") != "" {
		return "", &usageError{cmd: cmd, msg: fmt.Sprintf("--key %q is not a key id: 16 hex digits, the key_id of the ledger's key.created", s)}
	}
	return id, nil
}

func auditVerify(ctx context.Context, c *cli, cmd *command, args []string) error {
	fs := c.flagSet(cmd.name)
	var nf natsFlags
	nf.add(fs)
	app := fs.String("app", "", "")
	key := fs.String("key", "", "")
	if _, err := c.parse(cmd, fs, args, 0, 0); err != nil {
		return err
	}
	filter, err := auditApp(cmd, *app)
	if err != nil {
		return err
	}
	filters := []string{filter}
	if *app != "" && *app != domain.KeysStream {
		// The signatures need the keys.
		filters = append(filters, ledgerjs.Subject(domain.KeysStream))
	}
	var expectKey string
	if *key != "" {
		if expectKey, err = parseKeyID(cmd, *key); err != nil {
			return err
		}
	}
	ns, err := c.connectNATS(cmd, nf)
	if err != nil {
		return err
	}
	defer ns.close()
	v := newVerifier(*app, expectKey)
	err = readLedger(ctx, ns.js, ledgerQuery{filters: filters, wait: c.g.timeout}, func(m ledgerMsg) error {
		v.add(m)
		return nil
	})
	if errors.Is(err, context.Canceled) {
		return errors.New("interrupted")
	}
	if err != nil {
		return ns.explain(err)
	}
	rep := v.report(expectKey)
	if c.g.json {
		if err := printJSON(c.stdout, rep); err != nil {
			return err
		}
	} else if err := printVerify(c.stdout, rep, *app); err != nil {
		return err
	}
	if rep.Verified {
		return nil
	}
	return &failure{msg: verifyFailure(rep)}
}

// verifyFailure says why rep is not verified, in one line for stderr.
func verifyFailure(rep verifyReport) string {
	var why, bad []string
	for _, ch := range rep.Chains {
		if !ch.Intact {
			seq, reason := ch.firstBad()
			bad = append(bad, fmt.Sprintf("%s (seq %d: %s)", clean(ch.App), seq, reason))
		}
	}
	if len(bad) > 0 {
		why = append(why, fmt.Sprintf("ledger not intact in %d of %d apps: %s", len(bad), rep.Apps, strings.Join(bad, ", ")))
	}
	switch {
	case rep.KeyMatches == nil || *rep.KeyMatches:
	case rep.GenesisKey == "" && rep.otherGenesis() != 0:
		why = append(why, fmt.Sprintf("the ledger has no key.created of %s (--key): the one at seq %d announces another key", rep.ExpectedKey, rep.otherGenesis()))
	case rep.GenesisKey == "":
		why = append(why, fmt.Sprintf("the ledger is not signed (no key.created): no genesis key to match --key %s", rep.ExpectedKey))
	default:
		why = append(why, fmt.Sprintf("the ledger's genesis key is %s, not %s (--key)", rep.GenesisKey, rep.ExpectedKey))
	}
	return strings.Join(why, "; ")
}

// printVerify prints audit verify's result as text.
func printVerify(w io.Writer, rep verifyReport, app string) error {
	if rep.Apps == 0 {
		if app != "" {
			fmt.Fprintf(w, "No events of %s to check.\n", app)
		} else {
			fmt.Fprintln(w, "No events to check: the ledger is empty.")
		}
		if rep.KeyChain == nil && rep.ExpectedKey == "" {
			return nil
		}
	} else {
		printChains(w, rep)
	}
	fmt.Fprintln(w)
	printKeys(w, rep, app)
	if rep.Apps == 0 {
		return nil
	}
	apps := "apps"
	if rep.Apps == 1 {
		apps = "app"
	}
	if !rep.Intact {
		var notIntact, broken int
		for _, ch := range rep.Chains {
			if !ch.Intact {
				notIntact++
			}
			if ch.Broken != nil {
				broken++
			}
		}
		var parts []string
		if rep.Rejected > 0 {
			parts = append(parts, plural(rep.Rejected, "message", "messages")+" refused")
		}
		if broken > 0 {
			parts = append(parts, plural(broken, "chain", "chains")+" broken")
		}
		_, err := fmt.Fprintf(w, "Checked %s of %d %s: %d not intact (%s).\n", plural(rep.Events, "event", "events"), rep.Apps, apps, notIntact, strings.Join(parts, ", "))
		return err
	}
	if rep.GenesisSeq == 0 {
		_, err := fmt.Fprintf(w, "Checked %s of %d %s: every hash chain is intact.\n", plural(rep.Events, "event", "events"), rep.Apps, apps)
		return err
	}
	before := ""
	if rep.Legacy > 0 {
		before = fmt.Sprintf(" (%s before it)", plural(rep.Legacy, "unsigned event", "unsigned events"))
	}
	_, err := fmt.Fprintf(w, "Checked %s of %d %s: every hash chain is intact and every event since seq %d is signed by the ledger's keys%s.\n",
		plural(rep.Events, "event", "events"), rep.Apps, apps, rep.GenesisSeq, before)
	return err
}

// printChains prints the table of the chains, then the first bad message
// of each chain that is not intact.
func printChains(w io.Writer, rep verifyReport) {
	t := newTable(w, "APP", "EVENTS", "UNSIGNED", "REFUSED", "LAST SEQ", "CHAIN", "HEAD")
	for _, ch := range rep.Chains {
		state, head := "intact", cmp.Or(ch.Head, "-")
		switch seq, _ := ch.firstBad(); {
		case seq == 0:
		case ch.Broken != nil && ch.Broken.Seq == seq:
			// Every event after a broken link is suspect, its head too.
			state, head = fmt.Sprintf("BROKEN at seq %d", seq), "-"
		default:
			state = fmt.Sprintf("REFUSED at seq %d", seq)
		}
		t.row(ch.App, strconv.Itoa(ch.Events), strconv.Itoa(ch.Legacy), strconv.Itoa(ch.Rejected),
			strconv.FormatUint(ch.LastSeq, 10), state, head)
	}
	t.flush()
	for _, ch := range rep.Chains {
		if b := ch.Broken; b != nil {
			fmt.Fprintf(w, "\n%s (%s): broken link at stream sequence %d", clean(ch.App), clean(ch.Subject), b.Seq)
			if b.Problem != "" {
				fmt.Fprintf(w, ": %s", clean(b.Problem))
			}
			of := "the first event of the app: empty"
			if b.ExpectedOf > 0 {
				of = fmt.Sprintf("SHA-256 of the event at sequence %d", b.ExpectedOf)
			}
			fmt.Fprintf(w, "\n  prev_hash expected: %q (%s)\n", b.Expected, of)
			if b.Problem == "" || b.Found != "" {
				fmt.Fprintf(w, "  prev_hash found:    %q\n", clean(b.Found))
			}
		}
		if len(ch.Refused) > 0 {
			printRefused(w, ch)
		}
	}
}

// printRefused prints the first message ch refused, and how many more.
func printRefused(w io.Writer, ch *chain) {
	r := ch.Refused[0]
	fmt.Fprintf(w, "\n%s (%s): refused message at stream sequence %d: %s\n  %s\n", clean(ch.App), clean(ch.Subject), r.Seq, r.Reason, clean(r.Detail))
	if r.Type != "" || r.Actor != "" {
		fmt.Fprintf(w, "  it claimed to be: %s by %s\n", clean(cmp.Or(r.Type, `""`)), clean(cmp.Or(r.Actor, `""`)))
	}
	if more := len(ch.Refused) - 1; more > 0 {
		word := "messages"
		if more == 1 {
			word = "message"
		}
		fmt.Fprintf(w, "  and %d more refused %s, from seq %d (--json lists every one)\n", more, word, ch.Refused[1].Seq)
	}
}

// printKeys prints the genesis and the keys, what --key says of them,
// and, with --app, that the keys were read.
func printKeys(w io.Writer, rep verifyReport, app string) {
	if seq := rep.otherGenesis(); rep.GenesisSeq == 0 && seq != 0 {
		fmt.Fprintf(w, "The ledger has no key.created of the key given with --key (%s): the one at seq %d announces another key: another ledger, or one started anew.\n", rep.ExpectedKey, seq)
	} else if rep.GenesisSeq == 0 {
		fmt.Fprintln(w, "The ledger is not signed yet (no key.created).")
		if rep.ExpectedKey != "" {
			fmt.Fprintf(w, "--key %s: there is no genesis key to compare it with.\n", rep.ExpectedKey)
		}
	} else {
		fmt.Fprintf(w, "Genesis: seq %d, key %s", rep.GenesisSeq, rep.GenesisKey)
		switch {
		case rep.KeyMatches == nil:
			fmt.Fprintln(w, ".")
		case *rep.KeyMatches:
			fmt.Fprintln(w, " (the key given with --key).")
		default:
			fmt.Fprintf(w, ", NOT the key given with --key (%s): another ledger, or one started anew.\n", rep.ExpectedKey)
		}
	}
	if kc := rep.KeyChain; kc != nil {
		fmt.Fprintf(w, "Read %s as well, for the keys: %s", kc.Subject, plural(kc.Events, "key event", "key events"))
		if kc.Rejected > 0 {
			fmt.Fprintf(w, ", %d refused (audit verify without --app shows them)", kc.Rejected)
		}
		fmt.Fprintln(w, ".")
	} else if app != "" && app != domain.KeysStream {
		fmt.Fprintf(w, "Read %s as well, for the keys: none.\n", ledgerjs.Subject(domain.KeysStream))
	}
	if len(rep.Keys) == 0 {
		return
	}
	t := newTable(w, "KEY", "FROM SEQ", "RETIRED AT SEQ")
	for _, k := range rep.Keys {
		retired := "-"
		if k.RetiredSeq != 0 {
			retired = strconv.FormatUint(k.RetiredSeq, 10)
		}
		t.row(k.ID, strconv.FormatUint(k.FromSeq, 10), retired)
	}
	t.flush()
}

// plural returns "1 thing" or "n things".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
