package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/backupledger/backupledger/projections"
)

// ledger keys lists the key of the genesis; ledger rotate-key makes the
// next one, and audit verify --key pins the genesis key.
func TestLedgerKeys(t *testing.T) {
	e := startAuditBackupd(t)
	var before projections.KeyList
	if err := json.Unmarshal([]byte(e.must("--json", "ledger", "keys").stdout), &before); err != nil {
		t.Fatal(err)
	}
	if before.GenesisSeq == 0 || len(before.Keys) != 1 || !before.Keys[0].Current {
		t.Fatalf("keys of a new ledger = %+v, want the genesis key", before)
	}
	genesis := before.Keys[0].ID
	if out := e.must("ledger", "keys").stdout; !strings.Contains(out, genesis) || !strings.Contains(out, before.Keys[0].PublicKey) {
		t.Errorf("ledger keys printed\n%s", out)
	}

	r := e.must("ledger", "rotate-key")
	var after projections.KeyList
	if err := json.Unmarshal([]byte(e.must("--json", "ledger", "keys").stdout), &after); err != nil {
		t.Fatal(err)
	}
	if len(after.Keys) != 2 || after.Keys[0].ID != genesis || after.Keys[0].Current || !after.Keys[1].Current ||
		after.Keys[0].RetiredSeq != after.Keys[1].CreatedSeq {
		t.Fatalf("keys after a rotation = %+v", after)
	}
	if !strings.Contains(r.stdout, "signed with key "+after.Keys[1].ID) {
		t.Errorf("rotate-key printed\n%s", r.stdout)
	}

	e.must("maintenance", "start", "crm", "--reason", "after the rotation")
	e.waitMirror()
	if r := e.ctl(context.Background(), nil, "audit", "verify", "--nats-login", e.login, "--key", genesis); r.code != 0 {
		t.Errorf("verify --key of the genesis: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := e.ctl(context.Background(), nil, "audit", "verify", "--nats-login", e.login, "--key", after.Keys[1].ID); r.code != 1 {
		t.Errorf("verify --key of a later key: exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
}
