package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/backupledger/backupledger/projections"
)

const helpCreate = `
Requests a backup of APP. The server queues it and a worker exports the app
(queued → running → ready or failed).

Flags:
  --name N         the backup's name (default: the creation time, e.g.
                   "August 31 Monday 12:02")
  --description D  a description
  --wait           follow the backup until it is ready or failed, printing
                   each change as it happens; exit 1 if it failed

With --json, the backup's JSON is printed (with --wait: once it is done;
the changes then go to stderr).
`

const helpList = `
Lists the live backups of APP, or without APP of every app you administer,
oldest first, as a table: ID, name, app, creation time (UTC), status, size.
With --json, prints the server's {"backups": [...]}.

Flags:
  --as-of TIME  the list of APP as it was at TIME (RFC 3339, e.g.
                2026-11-22T10:15:00Z, or a date 2026-11-22 for its end in
                UTC), folded from the ledger's events: deleted and expired
                backups come back, later ones are not there yet
`

const helpGet = `
Shows one backup. With --json, prints the server's JSON.
`

const helpRename = `
Renames a backup (1 to 100 characters). With --json, prints the renamed
backup's JSON.
`

const helpDelete = `
Deletes a backup and its archive. It asks "Delete backup NAME (ID) of APP?
[y/N]" on the terminal first, unless --yes is given.

Flags:
  -y, --yes  do not ask

With --json, prints {"app", "id", "deleted": true}. Without --yes, stdin must be a terminal: from a script or a pipe the command
refuses (exit 2) rather than read an answer that nobody typed.
`

const helpLogs = `
Shows who did what to APP, or to one backup of it, when and with what
result, oldest first. A backup's log stays after it is deleted. With --json,
prints the server's {"entries": [...]}.
`

func backupCreate(ctx context.Context, c *cli, cmd *command, args []string) error {
	fs := c.flagSet(cmd.name)
	name := fs.String("name", "", "")
	desc := fs.String("description", "", "")
	wait := fs.Bool("wait", false, "")
	pos, err := c.parse(cmd, fs, args, 1, 1)
	if err != nil {
		return err
	}
	nameSet := false
	fs.Visit(func(f *flag.Flag) { nameSet = nameSet || f.Name == "name" })
	cl, err := c.newClient(cmd)
	if err != nil {
		return err
	}
	app := pos[0]
	body := map[string]any{}
	if nameSet {
		body["name"] = *name
	}
	if *desc != "" {
		body["description"] = *desc
	}
	a, err := cl.do(ctx, request{method: http.MethodPost, path: apiPath("v1/apps", app, "backups"), json: body, command: true})
	if err != nil {
		return err
	}
	var b projections.BackupView
	if err := decode(a.body, &b); err != nil {
		return err
	}
	if !*wait {
		if c.g.json {
			return writeJSON(c.stdout, a.body)
		}
		_, err := fmt.Fprintf(c.stdout, "Backup %s (%q) of %s is %s.\n", b.ID, clean(b.Name), b.App, b.Status)
		return err
	}
	progress := c.stdout
	if c.g.json {
		progress = c.stderr
	}
	final, raw, err := c.follow(ctx, cl, b, progress)
	if err != nil {
		return err
	}
	if c.g.json {
		if err := writeJSON(c.stdout, raw); err != nil {
			return err
		}
	}
	if final.Status == "failed" {
		reason := "no reason given"
		if final.Error != nil {
			reason = *final.Error
		}
		return &failure{msg: fmt.Sprintf("backup %s of %s failed: %s", final.ID, final.App, clean(reason))}
	}
	return nil
}

// statusAfter is the status a backup has after an event of its log.
var statusAfter = map[string]string{
	"backup.requested": "queued",
	"backup.started":   "running",
	"backup.completed": "ready",
	"backup.failed":    "failed",
	"backup.uploaded":  "ready",
	"backup.deleted":   "deleted",
	"backup.corrupted": "corrupt",
}

// follow prints the backup's log as it grows, one line per event (so no
// status change is missed, however quick), until the backup is ready or
// failed. It returns the final backup and its JSON.
func (c *cli) follow(ctx context.Context, cl *client, b projections.BackupView, w io.Writer) (projections.BackupView, []byte, error) {
	path := apiPath("v1/apps", b.App, "backups", b.ID)
	first := c.pollEvery
	if first <= 0 {
		first = 100 * time.Millisecond
	}
	every := first
	var seen uint64
	for {
		var lg projections.LogList
		if _, err := cl.getJSON(ctx, path+"/logs", &lg); err != nil {
			return b, nil, err
		}
		done, changed := "", false
		for _, e := range lg.Entries {
			if e.Seq <= seen {
				continue
			}
			seen, changed = e.Seq, true
			status := statusAfter[e.Event]
			fmt.Fprintf(w, "%s  %-8s %s\n", e.Time.UTC().Format("15:04:05"), cmp.Or(status, "-"), clean(e.Message))
			switch status {
			case "ready", "failed", "deleted":
				done = status
			}
		}
		if done == "deleted" {
			return b, nil, &failure{msg: fmt.Sprintf("backup %s of %s was deleted", b.ID, b.App)}
		}
		if done != "" {
			var final projections.BackupView
			raw, err := cl.getJSON(ctx, path, &final)
			if err != nil {
				return b, nil, err
			}
			return final, raw, nil
		}
		if changed {
			every = first
		} else {
			every = min(every*2, 2*time.Second)
		}
		select {
		case <-ctx.Done():
			return b, nil, fmt.Errorf("interrupted; backup %s goes on (see: backupctl backup get %s %s)", b.ID, b.App, b.ID)
		case <-time.After(every):
		}
	}
}

func backupList(ctx context.Context, c *cli, cmd *command, args []string) error {
	fs := c.flagSet(cmd.name)
	asOf := fs.String("as-of", "", "")
	pos, err := c.parse(cmd, fs, args, 0, 1)
	if err != nil {
		return err
	}
	cl, err := c.newClient(cmd)
	if err != nil {
		return err
	}
	req := request{method: http.MethodGet, path: apiPath("v1/backups")}
	if len(pos) == 1 {
		req.path = apiPath("v1/apps", pos[0], "backups")
	}
	if *asOf != "" {
		if len(pos) == 0 {
			return &usageError{cmd: cmd, msg: "--as-of needs an APP"}
		}
		t, err := parseAsOf(*asOf)
		if err != nil {
			return &usageError{cmd: cmd, msg: err.Error()}
		}
		req.query = url.Values{"as_of": {t.UTC().Format(time.RFC3339Nano)}}
	}
	a, err := cl.do(ctx, req)
	if err != nil {
		return err
	}
	raw := a.body
	var list projections.BackupList
	if err := json.Unmarshal(raw, &list); err != nil {
		return fmt.Errorf("decode answer of %s: %w", req.path, err)
	}
	if c.g.json {
		return writeJSON(c.stdout, raw)
	}
	if len(list.Backups) == 0 {
		if len(pos) == 1 {
			_, err = fmt.Fprintf(c.stdout, "No backups of %s.\n", pos[0])
		} else {
			_, err = fmt.Fprintln(c.stdout, "No backups.")
		}
		return err
	}
	return printBackups(c.stdout, list.Backups)
}

// parseAsOf reads an RFC 3339 time, or a date (its last moment in UTC).
func parseAsOf(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if d, err := time.Parse("2006-01-02", v); err == nil {
		return d.Add(24*time.Hour - time.Nanosecond), nil
	}
	return time.Time{}, fmt.Errorf("--as-of %q: want an RFC 3339 time (2026-11-22T10:15:00Z) or a date (2026-11-22)", v)
}

func backupGet(ctx context.Context, c *cli, cmd *command, args []string) error {
	pos, cl, err := c.plain(cmd, args, 2, 2)
	if err != nil {
		return err
	}
	var b projections.BackupView
	raw, err := cl.getJSON(ctx, apiPath("v1/apps", pos[0], "backups", pos[1]), &b)
	if err != nil {
		return err
	}
	if c.g.json {
		return writeJSON(c.stdout, raw)
	}
	return printBackup(c.stdout, b)
}

func backupRename(ctx context.Context, c *cli, cmd *command, args []string) error {
	pos, cl, err := c.plain(cmd, args, 3, 3)
	if err != nil {
		return err
	}
	a, err := cl.do(ctx, request{method: http.MethodPatch, path: apiPath("v1/apps", pos[0], "backups", pos[1]),
		json: map[string]string{"name": pos[2]}, command: true})
	if err != nil {
		return err
	}
	if c.g.json {
		return writeJSON(c.stdout, a.body)
	}
	var b projections.BackupView
	if err := decode(a.body, &b); err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "Renamed backup %s of %s to %q.\n", b.ID, b.App, clean(b.Name))
	return err
}

func backupDelete(ctx context.Context, c *cli, cmd *command, args []string) error {
	fs := c.flagSet(cmd.name)
	yes := fs.Bool("yes", false, "")
	fs.BoolVar(yes, "y", false, "")
	pos, err := c.parse(cmd, fs, args, 2, 2)
	if err != nil {
		return err
	}
	if !*yes && !c.isTerminal(c.stdin) {
		return &usageError{msg: "stdin is not a terminal, so nobody can confirm the delete: pass --yes", cmd: cmd}
	}
	cl, err := c.newClient(cmd)
	if err != nil {
		return err
	}
	app, id := pos[0], pos[1]
	path := apiPath("v1/apps", app, "backups", id)
	name := ""
	if !*yes {
		var b projections.BackupView
		if _, err := cl.getJSON(ctx, path, &b); err != nil {
			return err
		}
		name = b.Name
		fmt.Fprintf(c.stderr, "Delete backup %q (%s) of %s? [y/N] ", clean(b.Name), b.ID, b.App)
		answer, err := bufio.NewReader(c.stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read answer: %w", err)
		}
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			return &failure{msg: "not deleted"}
		}
	}
	if _, err := cl.do(ctx, request{method: http.MethodDelete, path: path, command: true}); err != nil {
		return err
	}
	if c.g.json {
		return printJSON(c.stdout, map[string]any{"app": app, "id": id, "deleted": true})
	}
	if name != "" {
		_, err = fmt.Fprintf(c.stdout, "Deleted backup %q (%s) of %s.\n", clean(name), id, app)
	} else {
		_, err = fmt.Fprintf(c.stdout, "Deleted backup %s of %s.\n", id, app)
	}
	return err
}

func backupLogs(ctx context.Context, c *cli, cmd *command, args []string) error {
	pos, cl, err := c.plain(cmd, args, 1, 2)
	if err != nil {
		return err
	}
	path := apiPath("v1/apps", pos[0], "logs")
	if len(pos) == 2 {
		path = apiPath("v1/apps", pos[0], "backups", pos[1], "logs")
	}
	var lg projections.LogList
	raw, err := cl.getJSON(ctx, path, &lg)
	if err != nil {
		return err
	}
	if c.g.json {
		return writeJSON(c.stdout, raw)
	}
	if len(lg.Entries) == 0 {
		_, err := fmt.Fprintln(c.stdout, "No log entries.")
		return err
	}
	headers := []string{"SEQ", "TIME (UTC)", "ACTOR", "EVENT", "BACKUP", "RESULT", "MESSAGE"}
	if len(pos) == 2 {
		headers = slices.Delete(headers, 4, 5)
	}
	t := newTable(c.stdout, headers...)
	for _, e := range lg.Entries {
		cells := []string{fmt.Sprint(e.Seq), e.Time.UTC().Format("2006-01-02 15:04:05"), e.Actor, e.Event, cmp.Or(e.BackupID, "-"), e.Result, e.Message}
		if len(pos) == 2 {
			cells = slices.Delete(cells, 4, 5)
		}
		t.row(cells...)
	}
	return t.flush()
}

const helpVerify = `
Reads the stored archive of a ready backup and checks it: its size and
SHA-256 against the ledger, its manifest and every entry against the
manifest. A backup that passes gets verified_at; one that does not is
marked corrupt (it stays listed, cannot be downloaded or restored) and the
command exits 1. The service also checks every backup periodically.
`

// backupVerify checks a backup's stored archive now.
func backupVerify(ctx context.Context, c *cli, cmd *command, args []string) error {
	pos, cl, err := c.plain(cmd, args, 2, 2)
	if err != nil {
		return err
	}
	a, err := cl.do(ctx, request{method: http.MethodPost, path: apiPath("v1/apps", pos[0], "backups", pos[1], "verify"), command: true})
	if err != nil {
		return err
	}
	var b projections.BackupView
	if err := decode(a.body, &b); err != nil {
		return err
	}
	if c.g.json {
		if err := writeJSON(c.stdout, a.body); err != nil {
			return err
		}
	} else if b.CorruptAt == nil {
		fmt.Fprintf(c.stdout, "Backup %s of %s verified: its archive matches the ledger and its manifest (%s).\n", b.ID, b.App, second(b.VerifiedAt))
	}
	if b.CorruptAt != nil {
		reason := ""
		if b.CorruptReason != nil {
			reason = *b.CorruptReason
		}
		return &failure{msg: fmt.Sprintf("backup %s of %s is corrupt: %s", b.ID, b.App, reason)}
	}
	return nil
}

const helpQuote = `
Estimates, before a backup is made and changing nothing, how large APP's
archive would be (at most: the content stored uncompressed, with the zip's
overhead; compressible content makes it smaller) and what keeping it would
cost a month at the server's price (backupd --price-per-gib-month), beside
what APP's backups hold now.
`

// backupQuote prints the estimate of a backup of APP made now.
func backupQuote(ctx context.Context, c *cli, cmd *command, args []string) error {
	pos, cl, err := c.plain(cmd, args, 1, 1)
	if err != nil {
		return err
	}
	a, err := cl.do(ctx, request{method: http.MethodPost, path: apiPath("v1/apps", pos[0], "backups", "quote")})
	if err != nil {
		return err
	}
	if c.g.json {
		return writeJSON(c.stdout, a.body)
	}
	var q projections.QuoteView
	if err := decode(a.body, &q); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "A backup of %s now: %d items, %s of content, an archive of at most %s.\n",
		q.App, q.Items, humanSize(q.ContentBytes), humanSize(q.EstimatedArchiveBytes))
	if q.PricePerGiBMonth > 0 {
		fmt.Fprintf(c.stdout, "Keeping it costs at most %.4f %s a month (%.4f %s per GiB-month).\n",
			q.MonthlyCost, q.Currency, q.PricePerGiBMonth, q.Currency)
	} else {
		fmt.Fprintln(c.stdout, "No storage price is configured on the server.")
	}
	_, err = fmt.Fprintf(c.stdout, "The backups of %s hold %s now.\n", q.App, humanSize(q.StoredBytes))
	return err
}
