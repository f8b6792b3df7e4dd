package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/backupledger/backupledger/projections"
)

const helpMaintenanceStart = `
Puts APP into maintenance: until it ends, the app's configuration cannot be
changed through the API (app_in_maintenance); it can still be read, and
backups can still be taken. A restore puts the app into maintenance by
itself; start it by hand to keep people out before and after one.

Flags:
  --reason R  why (required; shown in the app's state and in refusals)

An app already in maintenance is refused (already_in_maintenance, exit 1).
With --json, prints the server's JSON of the app's state.
`

const helpMaintenanceEnd = `
Ends APP's maintenance. While a restore is running into the app it is
refused (restore_in_progress); an app not in maintenance is refused
(not_in_maintenance). Both exit 1.

Flags:
  --reason R  why (optional)

With --json, prints the server's JSON of the app's state.
`

const helpRestore = `
Restores backup BACKUP of APP into APP, or into another app with --to,
then follows the restore live: each step is printed with its time (UTC) and
outcome as it happens, until the restore has completed or failed.

A restore replaces everything in the target app. The target goes into
maintenance first; with --pre-backup its current state is backed up before
anything changes; the archive is checked against the ledger, imported
(migrated when the backup's schema version is older; a newer one is
refused), and the result verified. A new target app is created, with you as
its admin.

Flags:
  --to APP      restore into APP instead (an app you administer, or a new
                one)
  --pre-backup  back up the target's current state first, to roll back with
  --auto-end    end the maintenance when the restore has completed (else end
                it with: backupctl maintenance end APP)

Your password is asked again, without echo on a terminal; when stdin is not
a terminal it is the first line of stdin. The server administrator (the
token of data/admin.token) has no password and is not asked.

Exit status 0 when the restore completed; 1 when it was refused or failed:
the step and the reason are printed, the target stays in maintenance, and
the pre-restore backup to roll back with is named. Interrupting backupctl
does not stop the restore: see backupctl restore status. With --json, the
steps go to stderr and the restore's final JSON to stdout.

An app named "status" is restored with: backupctl restore -- status BACKUP.
`

const helpRestoreStatus = `
Shows a restore: APP is the app restored into, ID the restore's id (as
backupctl restore prints it). Its status (running, completed, failed), the
backup it restores, the pre-restore backup, and its steps with their times
(UTC) and outcomes. With --json, prints the server's JSON.
`

// defaultRestorePoll is how often backupctl restore looks at the restore it
// follows.
const defaultRestorePoll = 500 * time.Millisecond

// maintenanceStart puts an app into maintenance.
func maintenanceStart(ctx context.Context, c *cli, cmd *command, args []string) error {
	return maintenance(ctx, c, cmd, args, true)
}

// maintenanceEnd ends an app's maintenance.
func maintenanceEnd(ctx context.Context, c *cli, cmd *command, args []string) error {
	return maintenance(ctx, c, cmd, args, false)
}

func maintenance(ctx context.Context, c *cli, cmd *command, args []string, start bool) error {
	fs := c.flagSet(cmd.name)
	reason := fs.String("reason", "", "")
	pos, err := c.parse(cmd, fs, args, 1, 1)
	if err != nil {
		return err
	}
	if start && strings.TrimSpace(*reason) == "" {
		return &usageError{msg: "--reason is required: say why the app goes into maintenance", cmd: cmd}
	}
	cl, err := c.newClient(cmd)
	if err != nil {
		return err
	}
	method := http.MethodDelete
	if start {
		method = http.MethodPost
	}
	var body any
	if *reason != "" {
		body = map[string]string{"reason": *reason}
	}
	a, err := cl.do(ctx, request{method: method, path: apiPath("v1/apps", pos[0], "maintenance"), json: body, command: true})
	if err != nil {
		return err
	}
	if c.g.json {
		return writeJSON(c.stdout, a.body)
	}
	var v projections.AppView
	if err := decode(a.body, &v); err != nil {
		return err
	}
	_, err = fmt.Fprintln(c.stdout, maintenanceText(v))
	return err
}

// maintenanceText says in one line whether an app is in maintenance.
func maintenanceText(v projections.AppView) string {
	if !v.Maintenance.On {
		return fmt.Sprintf("App %s is not in maintenance.", v.App)
	}
	return fmt.Sprintf("App %s is in maintenance, %s.", v.App, maintenanceCell(v.Maintenance))
}

// maintenanceCell is an app's maintenance in the app get lines: "off",
// or since when, by whom and why.
func maintenanceCell(m projections.MaintenanceView) string {
	if !m.On {
		return "off"
	}
	s := fmt.Sprintf("on since %s, by %s", second(m.Since), clean(m.By))
	if m.RestoreID != "" {
		s += " for restore " + m.RestoreID
	}
	if m.Reason != "" {
		s += ": " + clean(m.Reason)
	}
	return s
}

// restoreBody is the body of POST /v1/apps/{app}/restores.
type restoreBody struct {
	BackupID           string `json:"backup_id"`
	TargetApp          string `json:"target_app,omitempty"`
	PreRestoreBackup   bool   `json:"pre_restore_backup"`
	AutoEndMaintenance bool   `json:"auto_end_maintenance"`
	Password           string `json:"password,omitempty"`
}

// restore requests a restore and follows it to its end.
func restore(ctx context.Context, c *cli, cmd *command, args []string) error {
	fs := c.flagSet(cmd.name)
	to := fs.String("to", "", "")
	pre := fs.Bool("pre-backup", false, "")
	autoEnd := fs.Bool("auto-end", false, "")
	pos, err := c.parse(cmd, fs, args, 2, 2)
	if err != nil {
		return err
	}
	cl, err := c.newClient(cmd)
	if err != nil {
		return err
	}
	app, backupID := pos[0], pos[1]
	body := restoreBody{BackupID: backupID, PreRestoreBackup: *pre, AutoEndMaintenance: *autoEnd}
	if *to != "" && *to != app {
		body.TargetApp = *to
	}
	// The server administrator has no password; a user is asked for its
	// own again.
	var me projections.MeView
	if _, err := cl.getJSON(ctx, apiPath("v1/me"), &me); err != nil {
		return err
	}
	if !me.Admin {
		if body.Password, err = c.readSecret(ctx, cmd, fmt.Sprintf("Password for %s (to confirm the restore): ", clean(me.ID))); err != nil {
			return err
		}
	}
	a, err := cl.do(ctx, request{method: http.MethodPost, path: apiPath("v1/apps", app, "restores"), json: body, command: true})
	if err != nil {
		return err
	}
	var v projections.RestoreView
	if err := decode(a.body, &v); err != nil {
		return err
	}
	progress := c.stdout
	if c.g.json {
		progress = c.stderr
	}
	fmt.Fprintf(progress, "Restore %s of backup %s of %s into %s:\n", v.ID, v.BackupID, v.SourceApp, v.App)
	final, raw, err := c.followRestore(ctx, cl, v, a.body, progress)
	if err != nil {
		return err
	}
	if c.g.json {
		if err := writeJSON(c.stdout, raw); err != nil {
			return err
		}
	}
	// Whether the target is still in maintenance decides what to say.
	var target projections.AppView
	if _, err := cl.getJSON(ctx, apiPath("v1/apps", final.App), &target); err != nil {
		return err
	}
	summary, failed := restoreSummary(final, target.Maintenance.On)
	if failed {
		return &failure{msg: summary}
	}
	_, err = fmt.Fprintln(progress, summary)
	return err
}

// followRestore prints the restore's steps as they appear, from v and
// its JSON raw on, until it has completed (and ended the maintenance, if
// it was asked to and the app is still in maintenance for it) or failed.
// It returns the final restore and its JSON.
func (c *cli) followRestore(ctx context.Context, cl *client, v projections.RestoreView, raw []byte, w io.Writer) (projections.RestoreView, []byte, error) {
	path := apiPath("v1/apps", v.App, "restores", v.ID)
	every := c.restorePoll
	if every <= 0 {
		every = defaultRestorePoll
	}
	shown := 0
	for {
		for ; shown < len(v.Steps); shown++ {
			fmt.Fprintln(w, stepLine(v.Steps[shown]))
		}
		if v.Status != "running" {
			over, looked, err := c.restoreOver(ctx, cl, v)
			if err != nil {
				return v, nil, err
			}
			if over && looked {
				// The maintenance ended after v was read: read it again
				// for the step that ended it.
				var last projections.RestoreView
				b, err := cl.getJSON(ctx, path, &last)
				if err != nil {
					return v, nil, err
				}
				v, raw = last, b
				for ; shown < len(v.Steps); shown++ {
					fmt.Fprintln(w, stepLine(v.Steps[shown]))
				}
			}
			if over {
				return v, raw, nil
			}
		}
		select {
		case <-ctx.Done():
			return v, nil, fmt.Errorf("interrupted; restore %s goes on (see: backupctl restore status %s %s)", v.ID, v.App, v.ID)
		case <-time.After(every):
		}
		var next projections.RestoreView
		b, err := cl.getJSON(ctx, path, &next)
		if err != nil {
			return v, nil, err
		}
		v, raw = next, b
	}
}

// restoreOver reports whether a restore that is no longer running has
// nothing more to do: it failed, or it completed and either was not asked
// to end the maintenance or the app is no longer in maintenance for it.
// looked is true when it had to look at the app for that.
func (c *cli) restoreOver(ctx context.Context, cl *client, v projections.RestoreView) (over, looked bool, err error) {
	if v.Status != "completed" || !v.AutoEndMaintenance {
		return true, false, nil
	}
	var a projections.AppView
	if _, err := cl.getJSON(ctx, apiPath("v1/apps", v.App), &a); err != nil {
		return false, true, err
	}
	return !a.Maintenance.On || a.Maintenance.RestoreID != v.ID, true, nil
}

// stepLine is one step of a restore as backupctl restore prints it:
// "12:02:03  verify_archive      archive matches sha256 …".
func stepLine(s projections.RestoreStepView) string {
	return fmt.Sprintf("%s  %-20s %s", s.At.UTC().Format("15:04:05"), clean(s.Step), clean(s.Outcome))
}

// restoreSummary says how a restore that is over ended, and whether it
// failed: the step and reason of a failure, whether the app is still in
// maintenance (inMaintenance), and the pre-restore backup to roll back
// with.
func restoreSummary(v projections.RestoreView, inMaintenance bool) (string, bool) {
	var b strings.Builder
	switch v.Status {
	case "completed":
		fmt.Fprintf(&b, "Restore %s completed: %s now holds backup %s of %s.", v.ID, v.App, v.BackupID, v.SourceApp)
		if inMaintenance {
			fmt.Fprintf(&b, "\n%s is still in maintenance; end it with: backupctl maintenance end %s", v.App, v.App)
		}
		return b.String(), false
	case "failed":
		step, reason := "?", "no reason given"
		if v.FailedStep != nil {
			step = *v.FailedStep
		}
		if v.Error != nil {
			reason = *v.Error
		}
		fmt.Fprintf(&b, "restore %s into %s failed at step %s: %s", v.ID, v.App, clean(step), clean(reason))
		if inMaintenance {
			fmt.Fprintf(&b, "\n%s stays in maintenance (end it with: backupctl maintenance end %s)", v.App, v.App)
		}
		if v.PreRestoreBackupID != nil {
			fmt.Fprintf(&b, "\nTo roll back to the state before the restore: backupctl restore %s %s", v.App, *v.PreRestoreBackupID)
		}
		return b.String(), true
	}
	return fmt.Sprintf("Restore %s is %s.", v.ID, clean(v.Status)), false
}

// restoreStatus shows one restore.
func restoreStatus(ctx context.Context, c *cli, cmd *command, args []string) error {
	pos, cl, err := c.plain(cmd, args, 2, 2)
	if err != nil {
		return err
	}
	var v projections.RestoreView
	raw, err := cl.getJSON(ctx, apiPath("v1/apps", pos[0], "restores", pos[1]), &v)
	if err != nil {
		return err
	}
	if c.g.json {
		return writeJSON(c.stdout, raw)
	}
	return printRestore(c.stdout, v)
}

// printRestore prints one restore as aligned "field: value" lines, then
// its steps.
func printRestore(w io.Writer, v projections.RestoreView) error {
	t := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	line := func(k, val string) { fmt.Fprintf(t, "%s:\t%s\n", k, clean(val)) }
	yesNo := map[bool]string{true: "yes", false: "no"}
	line("ID", v.ID)
	line("App", v.App)
	line("Backup", v.BackupID+" of "+v.SourceApp)
	line("Status", v.Status)
	line("Step", v.Step)
	line("Requested by", v.RequestedBy)
	line("Requested", second(&v.RequestedAt))
	line("Ended", second(v.EndedAt))
	line("Pre-restore backup", yesNo[v.PreRestoreBackup])
	if v.PreRestoreBackupID != nil {
		line("Pre-restore backup ID", *v.PreRestoreBackupID)
	}
	line("Auto end maintenance", yesNo[v.AutoEndMaintenance])
	if v.Digest != nil {
		line("Digest", *v.Digest)
	}
	if v.FailedStep != nil {
		line("Failed step", *v.FailedStep)
	}
	if v.Error != nil {
		line("Error", *v.Error)
	}
	if err := t.Flush(); err != nil {
		return err
	}
	if _, err := fmt.Fprintln(w, "\nSteps (UTC):"); err != nil {
		return err
	}
	for _, s := range v.Steps {
		if _, err := fmt.Fprintln(w, "  "+stepLine(s)); err != nil {
			return err
		}
	}
	return nil
}
