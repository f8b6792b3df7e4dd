package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/backupledger/backupledger/domain"
)

// verifyCase is one hand-made ledger and what audit verify says of it.
type verifyCase struct {
	name  string
	build func(h *handChain)
	args  []string
	code  int
	// stdout holds what the output must contain; rows the cells of table
	// rows by app, head left out: "EVENTS UNSIGNED REFUSED LAST-SEQ CHAIN".
	stdout []string
	rows   map[string]string
	stderr string // what stderr must contain; "": empty
}

func runVerifyCases(t *testing.T, cases []verifyCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			login := plainLedger(t, tc.build)
			r := runAudit(t, append([]string{"audit", "verify", "--nats-login", login}, tc.args...)...)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d\n%s%s", r.code, tc.code, r.stdout, r.stderr)
			}
			for _, want := range tc.stdout {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
				}
			}
			for app, want := range tc.rows {
				if got := tableRow(r.stdout, app); got != want {
					t.Errorf("row of %s: %q, want %q\n%s", app, got, want, r.stdout)
				}
			}
			if !strings.Contains(r.stderr, tc.stderr) || (tc.stderr == "") != (r.stderr == "") {
				t.Errorf("stderr %q, want %q", r.stderr, tc.stderr)
			}
		})
	}
}

// tableRow returns the cells of app's row of audit verify's table, but
// the head, joined by spaces; "" if there is none.
func tableRow(out, app string) string {
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) > 2 && f[0] == app && !strings.HasPrefix(f[1], "(") {
			return strings.Join(f[1:len(f)-1], " ")
		}
		if line == "\n" {
			break // the end of the table
		}
	}
	return ""
}

func TestAuditVerifyChains(t *testing.T) {
	runVerifyCases(t, []verifyCase{
		{name: "intact", build: func(h *handChain) {
			h.add("a", "a", nil)
			h.add("b", "b", nil)
			h.add("a", "a", nil)
			h.add("_identity", "_identity", nil)
			h.add("a", "a", nil)
		}, stdout: []string{"The ledger is not signed yet (no key.created).\nChecked 5 events of 3 apps: every hash chain is intact.\n"},
			rows: map[string]string{"a": "3 3 0 5 intact", "b": "1 1 0 2 intact", "_identity": "1 1 0 4 intact"}},
		{name: "first event with a prev_hash", build: func(h *handChain) {
			h.add("b", "b", nil)
			h.add("a", "a", func(env map[string]any) { env["prev_hash"] = strings.Repeat("ab", 32) })
		}, code: 1, stdout: []string{
			"a (ledger.events.a): broken link at stream sequence 2\n" +
				`  prev_hash expected: "" (the first event of the app: empty)` + "\n" +
				`  prev_hash found:    "` + strings.Repeat("ab", 32) + `"`,
		}, rows: map[string]string{"a": "1 1 0 2 BROKEN at seq 2"}, stderr: "ledger not intact in 1 of 2 apps: a (seq 2: prev_hash)"},
		{name: "only the first broken link", build: func(h *handChain) {
			h.add("a", "a", nil)
			h.add("a", "a", nil)
			h.add("a", "a", func(env map[string]any) { env["prev_hash"] = "" })
			h.add("a", "a", func(env map[string]any) { env["prev_hash"] = "" })
		}, code: 1, stdout: []string{"broken link at stream sequence 3\n", `found:    ""`, "Checked 4 events of 1 app: 1 not intact (1 chain broken).\n"},
			rows: map[string]string{"a": "4 4 0 4 BROKEN at seq 3"}, stderr: "ledger not intact in 1 of 1 apps: a (seq 3: prev_hash)"},
		{name: "a body that is not an envelope", build: func(h *handChain) {
			h.add("a", "a", nil)
			h.addRaw("a", []byte("not json"))
			h.add("b", "b", nil)
		}, code: 1, stdout: []string{"broken link at stream sequence 2: the body is not a JSON event envelope: invalid character"},
			stderr: "a (seq 2: undecodable)"},
		{name: "no prev_hash", build: func(h *handChain) {
			h.add("a", "a", func(env map[string]any) { delete(env, "prev_hash") })
		}, code: 1, stdout: []string{"broken link at stream sequence 1: the event has no prev_hash"}, stderr: "in 1 of 1 apps: a (seq 1: no_prev_hash)"},
		{name: "an event of another app", build: func(h *handChain) {
			h.add("a", "a", nil)
			h.add("a", "b", nil)
		}, code: 1, stdout: []string{`broken link at stream sequence 2: the event is of app "b", not of its subject's "a"`}, stderr: "a (seq 2: wrong_app)"},
		{name: "two apps broken", build: func(h *handChain) {
			h.add("a", "a", nil)
			h.add("b", "b", func(env map[string]any) { env["prev_hash"] = "x" })
			h.add("c", "c", nil)
			h.add("a", "a", func(env map[string]any) { env["prev_hash"] = "y" })
		}, code: 1, stdout: []string{"a (ledger.events.a): broken link at stream sequence 4", "b (ledger.events.b): broken link at stream sequence 2",
			"Checked 4 events of 3 apps: 2 not intact (2 chains broken)."}, stderr: "ledger not intact in 2 of 3 apps: a (seq 4: prev_hash), b (seq 2: prev_hash)"},
		{name: "a broken link before the genesis", build: func(h *handChain) {
			h.add("a", "a", nil)
			h.add("a", "a", func(env map[string]any) { env["prev_hash"] = "x" })
			h.genesis(keyA)
			h.add("a", "a", nil)
		}, code: 1, stdout: []string{"a (ledger.events.a): broken link at stream sequence 2", "Genesis: seq 3, key " + idA + "."},
			rows: map[string]string{"a": "3 2 0 4 BROKEN at seq 2", "_keys": "1 0 0 3 intact"}, stderr: "ledger not intact in 1 of 2 apps: a (seq 2: prev_hash)"},
		{name: "empty", build: func(*handChain) {}, stdout: []string{"No events to check: the ledger is empty.\n"}},
	})
}

// signedLedger is a ledger signed since seq 3, with an unsigned prefix:
// 1 a (unsigned), 2 _identity (unsigned), 3 key.created of keyA, 4 a, 5 b.
func signedLedger(h *handChain) {
	h.add("a", "a", nil)
	h.add("_identity", "_identity", nil)
	h.genesis(keyA)
	h.add("a", "a", nil)
	h.add("b", "b", nil)
}

func TestAuditVerifySignatures(t *testing.T) {
	pubMallory := keyMallory.Public().(ed25519.PublicKey)
	mac := bytes.Repeat([]byte{3}, 32)
	intactRows := map[string]string{"a": "3 1 0 6 intact", "_identity": "1 1 0 2 intact", "_keys": "1 0 0 3 intact", "b": "1 0 0 5 intact"}
	runVerifyCases(t, []verifyCase{
		{name: "unsigned prefix, genesis, signed events", build: func(h *handChain) {
			signedLedger(h)
			h.add("a", "a", nil)
		}, rows: intactRows, stdout: []string{
			"\nGenesis: seq 3, key " + idA + ".\nKEY               FROM SEQ  RETIRED AT SEQ\n" + idA + "  3         -\n",
			"Checked 6 events of 4 apps: every hash chain is intact and every event since seq 3 is signed by the ledger's keys (2 unsigned events before it).\n",
		}},
		{name: "signed from the start", build: func(h *handChain) {
			h.genesis(keyA)
			h.add("a", "a", nil)
		}, rows: map[string]string{"a": "1 0 0 2 intact"},
			stdout: []string{"Checked 2 events of 2 apps: every hash chain is intact and every event since seq 1 is signed by the ledger's keys.\n"}},
		{name: "an unsigned event after the genesis", build: func(h *handChain) {
			signedLedger(h)
			h.forge("a", h.body("a", "a", nil), nil)
			h.add("a", "a", nil)
		}, code: 1, rows: map[string]string{"a": "3 1 1 7 REFUSED at seq 6", "b": "1 0 0 5 intact"}, stdout: []string{
			"\na (ledger.events.a): refused message at stream sequence 6: unsigned\n" +
				"  the ledger is signed since seq 3 and the message lacks Ledger-Key-Id or Ledger-Signature\n" +
				"  it claimed to be: backup.renamed by alice\n",
			"Checked 6 events of 4 apps: 1 not intact (1 message refused).\n",
		}, stderr: "backupctl: ledger not intact in 1 of 4 apps: a (seq 6: unsigned)\n"},
		{name: "a signature by an unknown key", build: func(h *handChain) {
			signedLedger(h)
			h.forge("a", h.body("a", "a", nil), keyMallory)
		}, code: 1, stdout: []string{"a (ledger.events.a): refused message at stream sequence 6: unknown_key\n  key \"" + idMallory + "\" is not a key of the ledger\n"},
			stderr: "a (seq 6: unknown_key)"},
		{name: "an altered body", build: func(h *handChain) {
			signedLedger(h)
			body := h.body("a", "a", nil)
			keyID, sig := domain.SignBody(keyA, body)
			h.publish("a", bytes.Replace(body, []byte(`"alice"`), []byte(`"carol"`), 1), keyID, sig)
			h.add("a", "a", nil)
		}, code: 1, stdout: []string{"refused message at stream sequence 6: bad_signature\n  the signature does not verify with key " + idA + "\n  it claimed to be: backup.renamed by carol\n"},
			rows: map[string]string{"a": "3 1 1 7 REFUSED at seq 6"}, stderr: "a (seq 6: bad_signature)"},
		{name: "a backup.deleted with the right prev_hash and a foreign signature", build: func(h *handChain) {
			signedLedger(h)
			body := h.body("a", "a", func(env map[string]any) {
				env["type"], env["actor"], env["data"] = "backup.deleted", "mallory", map[string]any{"backup_id": "x"}
			})
			_, sig := domain.SignBody(keyMallory, body)
			h.publish("a", body, idA, sig)
		}, code: 1, stdout: []string{"refused message at stream sequence 6: bad_signature\n", "  it claimed to be: backup.deleted by mallory\n"},
			stderr: "a (seq 6: bad_signature)"},
		{name: "a replayed genuine event", build: func(h *handChain) {
			signedLedger(h)
			h.add("a", "a", nil) // 6
			h.replay(4)          // 7
			h.add("a", "a", nil) // 8
		}, code: 1, stdout: []string{"refused message at stream sequence 7: prev_hash\n  prev_hash \"", "is not the hash"},
			rows: map[string]string{"a": "4 1 1 8 REFUSED at seq 7"}, stderr: "a (seq 7: prev_hash)"},
		{name: "a second key.created", build: func(h *handChain) {
			signedLedger(h)
			h.forge("_keys", h.keyEvent(domain.NewKeyCreated(pubMallory, mac)), keyA)
			h.add("a", "a", nil)
		}, code: 1, stdout: []string{"_keys (ledger.events._keys): refused message at stream sequence 6: bad_key_event\n", "  it claimed to be: key.created by system:keys\n"},
			rows: map[string]string{"_keys": "1 0 1 3 REFUSED at seq 6", "a": "3 1 0 7 intact"}, stderr: "ledger not intact in 1 of 4 apps: _keys (seq 6: bad_key_event)"},
		{name: "a second key.created signed by the key it announces", build: func(h *handChain) {
			signedLedger(h)
			h.forge("_keys", h.keyEvent(domain.NewKeyCreated(pubMallory, mac)), keyMallory)
		}, code: 1, stdout: []string{"refused message at stream sequence 6: unknown_key"}, stderr: "_keys (seq 6: unknown_key)"},
		{name: "an event of another app", build: func(h *handChain) {
			signedLedger(h)
			h.forge("a", h.body("a", "b", nil), keyA)
		}, code: 1, stdout: []string{"refused message at stream sequence 6: wrong_app\n  the event is of app \"b\", not of its subject's \"a\"\n"},
			stderr: "a (seq 6: wrong_app)"},
		{name: "a subject that is no app", build: func(h *handChain) {
			signedLedger(h)
			h.forge("Bad", h.body("Bad", "Bad", nil), keyA)
		}, code: 1, rows: map[string]string{"Bad": "0 0 1 0 REFUSED at seq 6"}, stdout: []string{"refused message at stream sequence 6: bad_subject"},
			stderr: "ledger not intact in 1 of 5 apps: Bad (seq 6: bad_subject)"},
		{name: "an unsigned key.created before the genesis", build: func(h *handChain) {
			h.add("a", "a", nil)
			h.forge("_keys", h.keyEvent(domain.NewKeyCreated(keyA.Public().(ed25519.PublicKey), mac)), nil)
			h.genesis(keyA)
			h.add("a", "a", nil)
		}, code: 1, rows: map[string]string{"_keys": "1 0 1 3 REFUSED at seq 2", "a": "2 1 0 4 intact"},
			stdout: []string{"a key event must be signed", "Genesis: seq 3, key " + idA + "."}, stderr: "_keys (seq 2: unsigned)"},
		{name: "rotation: the previous key within the grace", build: func(h *handChain) {
			signedLedger(h)
			h.rotate(keyB)                                                        // 6
			h.put("a", h.body("a", "a", nil), keyA, true)                         // 7: signed by the previous key, stored at once
			h.add("a", "a", nil)                                                  // 8: by keyB
			h.put("b", h.body("b", "b", nil), keyA, true)                         // 9
			h.put("_identity", h.body("_identity", "_identity", nil), keyB, true) // 10
		}, rows: map[string]string{"a": "4 1 0 8 intact", "b": "2 0 0 9 intact", "_keys": "2 0 0 6 intact", "_identity": "2 1 0 10 intact"}, stdout: []string{
			"KEY               FROM SEQ  RETIRED AT SEQ\n" + idA + "  3         6\n" + idB + "  6         -\n",
			"Checked 10 events of 4 apps: every hash chain is intact and every event since seq 3 is signed by the ledger's keys (2 unsigned events before it).\n",
		}},
		{name: "rotation: a key.rotated by the retired key", build: func(h *handChain) {
			signedLedger(h)
			h.rotate(keyB) // 6
			h.forge("_keys", h.keyEvent(domain.NewKeyRotated(pubMallory, idA)), keyA)
		}, code: 1, stdout: []string{"refused message at stream sequence 7: retired_key\n  key.rotated must be signed by the current key, not by key " + idA + " retired at seq 6\n"},
			stderr: "_keys (seq 7: retired_key)"},
		{name: "several refused", build: func(h *handChain) {
			signedLedger(h)
			h.forge("a", h.body("a", "a", nil), nil)        // 6
			h.forge("a", h.body("a", "a", nil), keyMallory) // 7
			h.forge("a", h.body("a", "a", nil), nil)        // 8
		}, code: 1, stdout: []string{"refused message at stream sequence 6: unsigned\n", "  and 2 more refused messages, from seq 7 (--json lists every one)\n",
			"1 not intact (3 messages refused)"}, rows: map[string]string{"a": "2 1 3 4 REFUSED at seq 6"}, stderr: "a (seq 6: unsigned)"},
	})
}

func TestAuditVerifyApp(t *testing.T) {
	login := plainLedger(t, func(h *handChain) {
		h.add("a", "a", nil)                                                                                       // 1, unsigned
		h.genesis(keyA)                                                                                            // 2
		h.add("a", "a", nil)                                                                                       // 3
		h.add("b", "b", nil)                                                                                       // 4
		h.forge("b", h.body("b", "b", nil), nil)                                                                   // 5
		h.forge("_keys", h.keyEvent(domain.NewKeyCreated(keyB.Public().(ed25519.PublicKey), []byte("mac"))), keyA) // 6
		h.add("a", "a", nil)                                                                                       // 7
	})
	unsigned := plainLedger(t, func(h *handChain) { h.add("a", "a", nil) })
	for _, tc := range []struct {
		name   string
		login  string
		app    string
		code   int
		stdout []string
		not    []string
		stderr string
	}{
		{"app", login, "a", 0, []string{
			"Read ledger.events._keys as well, for the keys: 1 key event, 1 refused (audit verify without --app shows them).\n",
			"Genesis: seq 2, key " + idA + ".\n",
			"Checked 3 events of 1 app: every hash chain is intact and every event since seq 2 is signed by the ledger's keys (1 unsigned event before it).\n",
		}, []string{"\nb ", "\n_keys "}, ""},
		{"an app with a refused message", login, "b", 1, []string{"b (ledger.events.b): refused message at stream sequence 5: unsigned"}, []string{"\na "},
			"ledger not intact in 1 of 1 apps: b (seq 5: unsigned)"},
		{"the keys", login, "_keys", 1, []string{"_keys (ledger.events._keys): refused message at stream sequence 6: bad_key_event"}, []string{"Read ledger.events._keys as well"},
			"_keys (seq 6: bad_key_event)"},
		{"an app without events", login, "nobody", 0, []string{"No events of nobody to check.\n\nGenesis: seq 2, key " + idA + ".\nRead ledger.events._keys as well"}, []string{"Checked"}, ""},
		{"an unsigned ledger", unsigned, "a", 0, []string{"The ledger is not signed yet (no key.created).\nRead ledger.events._keys as well, for the keys: none.\n",
			"Checked 1 event of 1 app: every hash chain is intact.\n"}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runAudit(t, "audit", "verify", "--nats-login", tc.login, "--app", tc.app)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.stderr) || (tc.stderr == "") != (r.stderr == "") {
				t.Errorf("exit %d, stderr %q; want %d, %q\n%s", r.code, r.stderr, tc.code, tc.stderr, r.stdout)
			}
			for _, want := range tc.stdout {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
				}
			}
			for _, bad := range tc.not {
				if strings.Contains(r.stdout, bad) {
					t.Errorf("stdout has %q:\n%s", bad, r.stdout)
				}
			}
		})
	}

	t.Run("json", func(t *testing.T) {
		r := runAudit(t, "--json", "audit", "verify", "--nats-login", login, "--app", "a")
		var rep verifyReport
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 0 {
			t.Fatalf("exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
		}
		if rep.Apps != 1 || len(rep.Chains) != 1 || rep.Chains[0].App != "a" || rep.Events != 3 || rep.Legacy != 1 || !rep.Verified || rep.GenesisSeq != 2 {
			t.Errorf("report %+v", rep)
		}
		if kc := rep.KeyChain; kc == nil || kc.Subject != "ledger.events._keys" || kc.Events != 1 || kc.Rejected != 1 || kc.LastSeq != 2 {
			t.Errorf("key_chain %+v", kc)
		}
	})
}

func TestAuditVerifyKey(t *testing.T) {
	signed := plainLedger(t, signedLedger)
	unsigned := plainLedger(t, func(h *handChain) { h.add("a", "a", nil) })
	forged := plainLedger(t, func(h *handChain) {
		signedLedger(h)
		h.forge("a", h.body("a", "a", nil), nil)
	})
	empty := plainLedger(t, func(*handChain) {})
	// Someone planted a key.created of keyB on the unsigned ledger before
	// backupd wrote its genesis (keyA).
	planted := plainLedger(t, func(h *handChain) {
		h.add("a", "a", nil)
		h.add("_identity", "_identity", nil)
		h.genesis(keyB)
		delete(h.last, domain.KeysStream)
		h.genesis(keyA)
		h.add("a", "a", nil)
	})
	for _, tc := range []struct {
		name   string
		login  string
		key    string
		code   int
		stdout string
		stderr string
	}{
		{"match", signed, idA, 0, "Genesis: seq 3, key " + idA + " (the key given with --key).\n", ""},
		{"match in capitals", signed, strings.ToUpper(idA), 0, "(the key given with --key)", ""},
		{"another key", signed, idB, 1, "The ledger has no key.created of the key given with --key (" + idB + "): the one at seq 3 announces another key: another ledger, or one started anew.\n",
			"backupctl: ledger not intact in 1 of 4 apps: _keys (seq 3: not_genesis); the ledger has no key.created of " + idB + " (--key): the one at seq 3 announces another key\n"},
		// The planted key.created is refused, so verify fails, but the
		// genesis is backupd's and its events are accepted.
		{"a planted genesis", planted, idA, 1, "Genesis: seq 4, key " + idA + " (the key given with --key).\n",
			"backupctl: ledger not intact in 1 of 3 apps: _keys (seq 3: not_genesis)\n"},
		{"the planted key", planted, idB, 1, "Genesis: seq 3, key " + idB + " (the key given with --key).\n",
			"ledger not intact in 2 of 3 apps: _keys (seq 4: unknown_key), a (seq 5: unknown_key)\n"},
		{"a planted genesis without --key", planted, "", 1, "Genesis: seq 3, key " + idB + ".\n",
			"ledger not intact in 2 of 3 apps: _keys (seq 4: unknown_key), a (seq 5: unknown_key)\n"},
		{"no genesis", unsigned, idA, 1, "The ledger is not signed yet (no key.created).\n--key " + idA + ": there is no genesis key to compare it with.\n",
			"backupctl: the ledger is not signed (no key.created): no genesis key to match --key " + idA + "\n"},
		{"an empty ledger", empty, idA, 1, "No events to check: the ledger is empty.\n", "no genesis key to match --key"},
		{"forged and another key", forged, idB, 1, "REFUSED at seq 3",
			"backupctl: ledger not intact in 1 of 4 apps: _keys (seq 3: not_genesis); the ledger has no key.created of " + idB + " (--key): the one at seq 3 announces another key\n"},
		{"not a key id", signed, "abc", 2, "", `--key "abc" is not a key id: 16 hex digits`},
		{"not hex", signed, "0123456789abcdeg", 2, "", "is not a key id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"audit", "verify", "--nats-login", tc.login}
			if tc.key != "" {
				args = append(args, "--key", tc.key)
			}
			r := runAudit(t, args...)
			if r.code != tc.code || !strings.Contains(r.stdout, tc.stdout) || !strings.Contains(r.stderr, tc.stderr) || (tc.stderr == "") != (r.stderr == "") {
				t.Errorf("exit %d, want %d with %q and stderr %q\n%s%s", r.code, tc.code, tc.stdout, tc.stderr, r.stdout, r.stderr)
			}
		})
	}

	t.Run("json", func(t *testing.T) {
		for key, want := range map[string]bool{idA: true, idB: false} {
			r := runAudit(t, "--json", "audit", "verify", "--nats-login", signed, "--key", key)
			var rep verifyReport
			if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
				t.Fatalf("%v\n%s", err, r.stdout)
			}
			if rep.ExpectedKey != key || rep.KeyMatches == nil || *rep.KeyMatches != want || rep.Verified != want || rep.Intact != want || (r.code == 0) != want {
				t.Errorf("--key %s: exit %d, %+v", key, r.code, rep)
			}
		}
	})
}

func TestAuditVerifyJSON(t *testing.T) {
	var bodies = map[uint64][]byte{}
	login := plainLedger(t, func(h *handChain) {
		bodies[1] = h.add("a", "a", nil) // unsigned
		h.genesis(keyA)                  // 2
		bodies[3] = h.add("a", "a", nil)
		h.forge("a", h.body("a", "a", func(env map[string]any) { env["type"], env["actor"] = "backup.deleted", "mallory" }), nil) // 4
		h.rotate(keyB)                                                                                                            // 5
		h.add("b", "b", nil)                                                                                                      // 6
		bodies[7] = h.add("a", "a", nil)                                                                                          // 7
	})
	r := runAudit(t, "--json", "audit", "verify", "--nats-login", login)
	if r.code != 1 || r.stderr != "backupctl: ledger not intact in 1 of 3 apps: a (seq 4: unsigned)\n" {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}

	// The field names are the contract.
	var raw map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &raw); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	for _, f := range []string{"apps", "events", "legacy", "rejected", "intact", "verified", "genesis_seq", "genesis_key", "keys", "chains"} {
		if _, ok := raw[f]; !ok {
			t.Errorf("no field %q in\n%s", f, r.stdout)
		}
	}
	a := raw["chains"].([]any)[1].(map[string]any)
	for _, f := range []string{"app", "subject", "events", "legacy", "rejected", "last_seq", "head", "intact", "refused"} {
		if _, ok := a[f]; !ok {
			t.Errorf("no field %q in chain %v", f, a)
		}
	}
	key := raw["keys"].([]any)[0].(map[string]any)
	for _, f := range []string{"id", "public_key", "from_seq", "retired_seq"} {
		if _, ok := key[f]; !ok {
			t.Errorf("no field %q in key %v", f, key)
		}
	}

	var rep verifyReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	pub := func(k ed25519.PrivateKey) string {
		return base64.StdEncoding.EncodeToString(k.Public().(ed25519.PublicKey))
	}
	top := verifyReport{Apps: 3, Events: 6, Legacy: 1, Rejected: 1, Intact: false, Verified: false, GenesisSeq: 2, GenesisKey: idA,
		Keys: []verifyKey{{ID: idA, PublicKey: pub(keyA), FromSeq: 2, RetiredSeq: 5}, {ID: idB, PublicKey: pub(keyB), FromSeq: 5}}}
	got := rep
	got.Chains = nil
	if !reflect.DeepEqual(got, top) {
		t.Errorf("report\n%+v\nwant\n%+v", got, top)
	}
	if len(rep.Chains) != 3 || rep.Chains[0].App != "_keys" || rep.Chains[1].App != "a" || rep.Chains[2].App != "b" {
		t.Fatalf("chains %+v", rep.Chains)
	}
	ch := rep.Chains[1]
	wantA := chain{App: "a", Subject: "ledger.events.a", Events: 3, Legacy: 1, Rejected: 1, LastSeq: 7, Head: domain.HashEvent(bodies[7]),
		Refused: []refusal{{Seq: 4, Reason: domain.ReasonUnsigned, Detail: "the ledger is signed since seq 2 and the message lacks Ledger-Key-Id or Ledger-Signature",
			Type: "backup.deleted", Actor: "mallory"}}}
	if !reflect.DeepEqual(*ch, wantA) {
		t.Errorf("chain of a\n%+v\nwant\n%+v", *ch, wantA)
	}
	if k := rep.Chains[0]; k.Events != 2 || k.LastSeq != 5 || !k.Intact {
		t.Errorf("chain of _keys %+v", k)
	}

	t.Run("broken link", func(t *testing.T) {
		var first []byte
		login := plainLedger(t, func(h *handChain) {
			first = h.add("a", "a", nil)
			h.add("a", "a", func(env map[string]any) { env["prev_hash"] = "x" })
			h.add("a", "a", func(env map[string]any) { delete(env, "prev_hash") })
		})
		r := runAudit(t, "--json", "audit", "verify", "--nats-login", login)
		var rep verifyReport
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 1 {
			t.Fatalf("exit %d, %v\n%s", r.code, err, r.stdout)
		}
		want := chainBreak{Seq: 2, Reason: domain.ReasonPrevHash, Expected: domain.HashEvent(first), ExpectedOf: 1, Found: "x"}
		if ch := rep.Chains[0]; ch.Intact || ch.Broken == nil || *ch.Broken != want || ch.Events != 3 || ch.Legacy != 3 || ch.Rejected != 0 {
			t.Errorf("chain %+v, broken %+v; want %+v", ch, ch.Broken, want)
		}
		if rep.GenesisSeq != 0 || rep.GenesisKey != "" || rep.Keys == nil || len(rep.Keys) != 0 || !strings.Contains(r.stdout, `"keys": []`) {
			t.Errorf("an unsigned ledger: genesis %d %q, keys %v\n%s", rep.GenesisSeq, rep.GenesisKey, rep.Keys, r.stdout)
		}
	})
}

// TestAuditVerifyRotationGrace checks the grace of a retired key in store
// time, which a test against a server cannot set: the messages are fed to
// the verifier directly.
func TestAuditVerifyRotationGrace(t *testing.T) {
	h := newHandChain(t, nil)
	h.add("a", "a", nil) // 1, unsigned
	h.genesis(keyA)      // 2
	h.add("a", "a", nil) // 3
	h.rotate(keyB)       // 4
	h.now = h.now.Add(domain.RotationGrace)
	h.put("a", h.body("a", "a", nil), keyA, true) // 5: the grace's last moment
	h.now = h.now.Add(time.Millisecond)
	h.forge("a", h.body("a", "a", nil), keyA) // 6: too late
	h.add("a", "a", nil)                      // 7: by keyB

	v := newVerifier("", "")
	for _, m := range h.mem {
		v.add(m)
	}
	rep := v.report("")
	if rep.Apps != 2 || rep.Events != 6 || rep.Rejected != 1 || rep.Intact || rep.Verified {
		t.Errorf("report %+v", rep)
	}
	a := rep.Chains[1]
	if a.App != "a" || a.Events != 4 || a.LastSeq != 7 || len(a.Refused) != 1 || a.Refused[0].Seq != 6 || a.Refused[0].Reason != domain.ReasonRetiredKey {
		t.Fatalf("chain of a %+v", a)
	}
	var out bytes.Buffer
	if err := printVerify(&out, rep, ""); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"a (ledger.events.a): refused message at stream sequence 6: retired_key\n  key " + idA + " was retired at seq 4 (2026-11-21T10:15:00Z), more than 1m0s before the message was stored (2026-11-21T10:16:00.001Z)\n",
		"REFUSED at seq 6",
		idA + "  2         4\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if got, want := verifyFailure(rep), "ledger not intact in 1 of 2 apps: a (seq 6: retired_key)"; got != want {
		t.Errorf("failure %q, want %q", got, want)
	}
}
