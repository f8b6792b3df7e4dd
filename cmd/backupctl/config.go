package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/backupledger/backupledger/projections"
)

const helpAppGet = `
Shows an app's state: its backups by status, its quota, when its last
backup became ready, and its place in the ledger. With --json, prints the
server's JSON.
`

const helpConfigPut = `
Stores a document under KEY in APP's configuration store (source kv), which
a backup archives. KEY may contain "/". The value is VALUE as given, or the
bytes of stdin when VALUE is "-", or of a file with --file. Put "--" before
a VALUE that starts with "-".

Flags:
  --file F  read the value from file F

Prints the key, its size and the store's new revision; with --json, the
server's document.
`

const helpConfigGet = `
Writes the document's bytes, exactly as stored, to stdout.
`

const helpConfigList = `
Lists APP's configuration documents (key, size, revision, last change)
without their values. With --json, prints the server's {"documents": [...]}.
`

const helpConfigDelete = `
Deletes a document from APP's configuration store. With --json, prints
{"app", "key", "deleted": true}.
`

// configDoc is the JSON of one configuration document.
type configDoc struct {
	Key       string    `json:"key"`
	SizeBytes int64     `json:"size_bytes"`
	Revision  uint64    `json:"revision"`
	UpdatedAt time.Time `json:"updated_at"`
}

func appGet(ctx context.Context, c *cli, cmd *command, args []string) error {
	pos, cl, err := c.plain(cmd, args, 1, 1)
	if err != nil {
		return err
	}
	var a projections.AppView
	raw, err := cl.getJSON(ctx, apiPath("v1/apps", pos[0]), &a)
	if err != nil {
		return err
	}
	if c.g.json {
		return writeJSON(c.stdout, raw)
	}
	// The statuses in the order a backup goes through them, then any
	// the server added since.
	order := []string{"queued", "running", "ready", "failed"}
	for _, s := range slices.Sorted(maps.Keys(a.ByStatus)) {
		if !slices.Contains(order, s) {
			order = append(order, s)
		}
	}
	var by []string
	for _, s := range order {
		if n, ok := a.ByStatus[s]; ok {
			by = append(by, fmt.Sprintf("%s %d", s, n))
		}
	}
	t := tabwriter.NewWriter(c.stdout, 0, 0, 1, ' ', 0)
	fmt.Fprintf(t, "App:\t%s\n", a.App)
	fmt.Fprintf(t, "Backups:\t%d (%s)\n", a.BackupCount, strings.Join(by, ", "))
	fmt.Fprintf(t, "Quota:\t%d of %d used\n", a.QuotaUsed, a.QuotaLimit)
	fmt.Fprintf(t, "Last backup:\t%s\n", second(a.LastBackupAt))
	fmt.Fprintf(t, "Events:\t%d (last seq %d)\n", a.Events, a.LastSeq)
	fmt.Fprintf(t, "Maintenance:\t%s\n", maintenanceCell(a.Maintenance))
	if a.ActiveRestore != "" {
		fmt.Fprintf(t, "Restore:\t%s running (see: backupctl restore status %s %s)\n", a.ActiveRestore, a.App, a.ActiveRestore)
	}
	return t.Flush()
}

func configPut(ctx context.Context, c *cli, cmd *command, args []string) error {
	fs := c.flagSet(cmd.name)
	file := fs.String("file", "", "")
	pos, err := c.parse(cmd, fs, args, 2, 3)
	if err != nil {
		return err
	}
	var value []byte
	switch {
	case *file != "" && len(pos) == 3:
		return &usageError{msg: "give the value or --file, not both", cmd: cmd}
	case *file != "":
		if value, err = os.ReadFile(*file); err != nil {
			return fmt.Errorf("read value: %w", err)
		}
	case len(pos) == 3 && pos[2] == "-":
		if value, err = io.ReadAll(c.stdin); err != nil {
			return fmt.Errorf("read value from stdin: %w", err)
		}
	case len(pos) == 3:
		value = []byte(pos[2])
	default:
		return &usageError{msg: "missing the value: give VALUE, - (stdin) or --file F", cmd: cmd}
	}
	cl, err := c.newClient(cmd)
	if err != nil {
		return err
	}
	a, err := cl.do(ctx, request{
		method: http.MethodPut, path: apiPath("v1/apps", pos[0], "config", pos[1]),
		header: http.Header{"Content-Type": {"application/octet-stream"}},
		body:   bytes.NewReader(value), size: int64(len(value)),
	})
	if err != nil {
		return err
	}
	if c.g.json {
		return writeJSON(c.stdout, a.body)
	}
	var d configDoc
	if err := decode(a.body, &d); err != nil {
		return err
	}
	verb := "Replaced"
	if a.status == http.StatusCreated {
		verb = "Stored"
	}
	_, err = fmt.Fprintf(c.stdout, "%s %s of %s (%s, revision %d).\n", verb, clean(d.Key), pos[0], humanSize(d.SizeBytes), d.Revision)
	return err
}

func configGet(ctx context.Context, c *cli, cmd *command, args []string) error {
	pos, cl, err := c.plain(cmd, args, 2, 2)
	if err != nil {
		return err
	}
	a, err := cl.do(ctx, request{method: http.MethodGet, path: apiPath("v1/apps", pos[0], "config", pos[1])})
	if err != nil {
		return err
	}
	_, err = c.stdout.Write(a.body)
	return err
}

func configList(ctx context.Context, c *cli, cmd *command, args []string) error {
	pos, cl, err := c.plain(cmd, args, 1, 1)
	if err != nil {
		return err
	}
	var list struct {
		Documents []configDoc `json:"documents"`
	}
	raw, err := cl.getJSON(ctx, apiPath("v1/apps", pos[0], "config"), &list)
	if err != nil {
		return err
	}
	if c.g.json {
		return writeJSON(c.stdout, raw)
	}
	if len(list.Documents) == 0 {
		_, err := fmt.Fprintf(c.stdout, "No configuration documents in %s.\n", pos[0])
		return err
	}
	t := newTable(c.stdout, "KEY", "SIZE", "REVISION", "UPDATED (UTC)")
	for _, d := range list.Documents {
		t.row(d.Key, humanSize(d.SizeBytes), fmt.Sprint(d.Revision), d.UpdatedAt.UTC().Format("2006-01-02 15:04:05"))
	}
	return t.flush()
}

func configDelete(ctx context.Context, c *cli, cmd *command, args []string) error {
	pos, cl, err := c.plain(cmd, args, 2, 2)
	if err != nil {
		return err
	}
	if _, err := cl.do(ctx, request{method: http.MethodDelete, path: apiPath("v1/apps", pos[0], "config", pos[1])}); err != nil {
		return err
	}
	if c.g.json {
		return printJSON(c.stdout, map[string]any{"app": pos[0], "key": pos[1], "deleted": true})
	}
	_, err = fmt.Fprintf(c.stdout, "Deleted %s of %s.\n", pos[1], pos[0])
	return err
}
