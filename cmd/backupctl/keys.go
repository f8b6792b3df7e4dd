package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/backupledger/backupledger/projections"
)

const helpLedgerKeys = `
Lists the Ed25519 public keys that sign the ledger's events
(GET /v1/ledger/keys, which needs no token): id, the stream sequence of
the key event that announced it, the one that retired it, and the public
key (base64). The genesis key comes first; record its id and check later
ledgers with backupctl audit verify --key KEYID. With --json, prints the
server's {"genesis_seq", "keys": [...]}. See docs/security.md.
`

const helpLedgerRotateKey = `
Makes a new signing key and records key.rotated, signed by the current
key (server administrator only; POST /v1/ledger/keys/rotate). From then
on the new key signs; events signed by the old one are still accepted for
60 seconds of the server's store time. Prints the keys, the new one last.
`

func ledgerKeys(ctx context.Context, c *cli, cmd *command, args []string) error {
	_, cl, err := c.plain(cmd, args, 0, 0)
	if err != nil {
		return err
	}
	var l projections.KeyList
	raw, err := cl.getJSON(ctx, apiPath("v1/ledger/keys"), &l)
	if err != nil {
		return err
	}
	if c.g.json {
		return writeJSON(c.stdout, raw)
	}
	return printKeyList(c.stdout, l)
}

func ledgerRotateKey(ctx context.Context, c *cli, cmd *command, args []string) error {
	_, cl, err := c.plain(cmd, args, 0, 0)
	if err != nil {
		return err
	}
	var l projections.KeyList
	a, err := cl.do(ctx, request{method: http.MethodPost, path: apiPath("v1/ledger/keys/rotate"), command: true})
	if err != nil {
		return err
	}
	if c.g.json {
		return writeJSON(c.stdout, a.body)
	}
	if err := json.Unmarshal(a.body, &l); err != nil {
		return fmt.Errorf("decode the answer: %w", err)
	}
	if n := len(l.Keys); n > 0 {
		fmt.Fprintf(c.stdout, "The ledger is signed with key %s from seq %d on.\n", l.Keys[n-1].ID, l.Keys[n-1].CreatedSeq)
	}
	return printKeyList(c.stdout, l)
}

// printKeyList prints the ledger's keys as a table.
func printKeyList(w io.Writer, l projections.KeyList) error {
	if l.GenesisSeq == 0 {
		_, err := fmt.Fprintln(w, "The ledger is not signed yet.")
		return err
	}
	fmt.Fprintf(w, "Genesis: seq %d.\n", l.GenesisSeq)
	t := newTable(w, "KEY", "FROM SEQ", "RETIRED AT SEQ", "PUBLIC KEY (ED25519, BASE64)")
	for _, k := range l.Keys {
		retired := "-"
		if k.RetiredSeq != 0 {
			retired = strconv.FormatUint(k.RetiredSeq, 10)
		}
		t.row(k.ID, strconv.FormatUint(k.CreatedSeq, 10), retired, k.PublicKey)
	}
	return t.flush()
}
