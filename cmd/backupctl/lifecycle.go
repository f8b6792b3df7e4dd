package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/backupledger/backupledger/projections"
)

const helpSchedule = `
Without --on or --off, shows APP's nightly backup schedule: whether it is
on, the time and time zone it runs at (the server's default until the
schedule is set), when it runs next (UTC), and the latest night handled:
its backup, or why it was skipped.

With --on or --off, sets the schedule (an admin of APP or the server
administrator) and shows it. A nightly backup is made once a day at the
time given, in the time zone given; a failed one is tried again. Enabling
it after tonight's time has passed makes the first backup the next night.

Flags:
  --on              make nightly backups of APP
  --off             stop making them (the time and zone are kept)
  --time HH:MM      when, 00:00 to 23:59 (default: the current time)
  --time-zone ZONE  in which time zone, an IANA name such as Europe/Berlin
                    (default: the current zone)

With --json, prints the server's JSON of the schedule.
`

const helpWebhookAdd = `
Registers a webhook: URL (http or https, without credentials) is POSTed a
signed JSON document on each event of the types asked for, of the app, or
of any app of the organisation. --app needs an admin of APP or the server
administrator, --org the server administrator.

Flags:
  --app APP      a webhook of the app APP
  --org ORG      a webhook of the organisation ORG (every app in it)
  --event TYPE   an event type to send, repeated for more (default: all of
                 backup.completed, backup.failed, backup.expired,
                 backup.corrupted, restore.completed, restore.failed)
  --secret S     the signing secret, 16 to 256 bytes (default: one is
                 generated); - reads it from the terminal without echo, or
                 from the first line of stdin

Prints the webhook and its secret. The secret is not shown again: keep it
for the receiver, which checks each delivery's signature with it. With
--json, prints the server's JSON, with the secret.
`

const helpWebhookList = `
Lists the webhooks of --app APP or of --org ORG, without their secrets, as
a table: id, URL, event types, creation time (UTC), who made it. With
--json, prints the server's {"webhooks": [...]}.
`

const helpWebhookRm = `
Removes the webhook ID of --app APP or of --org ORG: nothing is sent to it
any more. ID is the webhook's id as webhook list shows it. With --json,
prints {"id", "app" or "org", "deleted": true}.
`

const helpWebhookDeliveries = `
Shows the latest delivery attempts of the webhook ID of --app APP or of
--org ORG, oldest first, as a table: time (UTC), event type, attempt,
result (delivered, failed and retried later, gave_up, dropped), the
receiver's HTTP status and the error.

Flags:
  --limit N  how many attempts, 1 to 1000 (default 100)

With --json, prints the server's {"deliveries": [...]}.
`

// maxDeliveryLimit is the most delivery attempts the server answers.
const maxDeliveryLimit = 1000

// schedule shows an app's nightly schedule, or sets it (--on, --off).
func schedule(ctx context.Context, c *cli, cmd *command, args []string) error {
	fs := c.flagSet(cmd.name)
	on := fs.Bool("on", false, "")
	off := fs.Bool("off", false, "")
	at := fs.String("time", "", "")
	zone := fs.String("time-zone", "", "")
	pos, err := c.parse(cmd, fs, args, 1, 1)
	if err != nil {
		return err
	}
	given := flagsGiven(fs)
	set := *on || *off
	switch {
	case *on && *off:
		return &usageError{msg: "--on and --off exclude each other", cmd: cmd}
	case !set && (given["time"] || given["time-zone"]):
		return &usageError{msg: "--time and --time-zone set the schedule: add --on or --off", cmd: cmd}
	}
	cl, err := c.newClient(cmd)
	if err != nil {
		return err
	}
	path := apiPath("v1/apps", pos[0], "schedule")
	var raw []byte
	if set {
		body := map[string]any{"enabled": *on}
		if given["time"] {
			body["time"] = *at
		}
		if given["time-zone"] {
			body["time_zone"] = *zone
		}
		a, err := cl.do(ctx, request{method: http.MethodPut, path: path, json: body, command: true})
		if err != nil {
			return err
		}
		raw = a.body
	} else if raw, err = cl.getJSON(ctx, path, nil); err != nil {
		return err
	}
	if c.g.json {
		return writeJSON(c.stdout, raw)
	}
	var v projections.ScheduleView
	if err := decode(raw, &v); err != nil {
		return err
	}
	_, err = fmt.Fprintln(c.stdout, scheduleText(v))
	return err
}

// scheduleText says an app's schedule in one line: "Nightly backups of
// crm: on, every day at 02:00 Europe/Berlin; next run 2026-11-23 01:00:00
// UTC; last night 2026-11-22 (backup 01J...)."
func scheduleText(v projections.ScheduleView) string {
	state := "off"
	if v.Enabled {
		state = "on"
	}
	s := fmt.Sprintf("Nightly backups of %s: %s, every day at %s %s", clean(v.App), state, clean(v.Time), clean(v.TimeZone))
	if v.Default {
		s += " (the server's default)"
	}
	if v.NextRunAt != nil {
		s += "; next run " + second(v.NextRunAt)
	}
	if v.LastNight != "" {
		var what string
		switch {
		case v.LastBackupID != "":
			what = "backup " + v.LastBackupID
		case v.LastSkipped != "":
			what = "skipped: " + v.LastSkipped
		default:
			what = "skipped"
		}
		if v.LastTry > 1 {
			what += fmt.Sprintf(", try %d", v.LastTry)
		}
		s += fmt.Sprintf("; last night %s (%s)", clean(v.LastNight), clean(what))
	}
	return s + "."
}

// flagsGiven returns the names of the flags given on the command line.
func flagsGiven(fs *flag.FlagSet) map[string]bool {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	return given
}

// stringList is a flag that may be repeated: --event a --event b.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// webhookScope is the app or organisation (--app, --org) whose webhooks a
// command names.
type webhookScope struct{ app, org string }

// scopeFlags adds --app and --org to fs.
func scopeFlags(fs *flag.FlagSet) *webhookScope {
	var s webhookScope
	fs.StringVar(&s.app, "app", "", "")
	fs.StringVar(&s.org, "org", "", "")
	return &s
}

// path returns the route of the scope's webhooks, with the segments
// after it; exactly one of --app and --org is a usage error otherwise.
func (s *webhookScope) path(cmd *command, rest ...string) (string, error) {
	switch {
	case s.app != "" && s.org != "":
		return "", &usageError{msg: "--app and --org exclude each other", cmd: cmd}
	case s.app != "":
		return apiPath(append([]string{"v1/apps", s.app, "webhooks"}, rest...)...), nil
	case s.org != "":
		return apiPath(append([]string{"v1/orgs", s.org, "webhooks"}, rest...)...), nil
	}
	return "", &usageError{msg: "name the webhooks' owner: --app APP or --org ORG", cmd: cmd}
}

// String names the scope: "app crm", "organisation acme".
func (s *webhookScope) String() string {
	if s.app != "" {
		return "app " + s.app
	}
	return "organisation " + s.org
}

// webhookAdd registers a webhook and prints it with its secret.
func webhookAdd(ctx context.Context, c *cli, cmd *command, args []string) error {
	fs := c.flagSet(cmd.name)
	scope := scopeFlags(fs)
	var events stringList
	fs.Var(&events, "event", "")
	secret := fs.String("secret", "", "")
	pos, err := c.parse(cmd, fs, args, 1, 1)
	if err != nil {
		return err
	}
	path, err := scope.path(cmd)
	if err != nil {
		return err
	}
	cl, err := c.newClient(cmd)
	if err != nil {
		return err
	}
	body := map[string]any{"url": pos[0]}
	if len(events) > 0 {
		body["events"] = []string(events)
	}
	if *secret == "-" {
		if *secret, err = c.readWebhookSecret(ctx, cmd); err != nil {
			return err
		}
	}
	if *secret != "" {
		body["secret"] = *secret
	}
	a, err := cl.do(ctx, request{method: http.MethodPost, path: path, json: body, command: true})
	if err != nil {
		return err
	}
	var w projections.NewWebhookView
	if err := decode(a.body, &w); err != nil {
		return err
	}
	if c.g.json {
		if err := writeJSON(c.stdout, a.body); err != nil {
			return err
		}
	} else {
		t := tabwriter.NewWriter(c.stdout, 0, 0, 1, ' ', 0)
		line := func(k, v string) { fmt.Fprintf(t, "%s:\t%s\n", k, clean(v)) }
		line("ID", w.ID)
		if w.App != "" {
			line("App", w.App)
		} else {
			line("Organisation", w.Org)
		}
		line("URL", w.URL)
		line("Events", list(w.Events))
		line("Secret", w.Secret)
		if err := t.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintf(c.stderr, "Registered webhook %s of %s.\n"+
		"Its secret is not shown again: keep it now for the receiver, which checks each delivery's signature with it.\n", w.ID, scope)
	return nil
}

// readWebhookSecret reads the secret of --secret -: from the terminal
// without echo, else the first line of stdin.
func (c *cli) readWebhookSecret(ctx context.Context, cmd *command) (string, error) {
	if c.isTerminal(c.stdin) {
		return c.readSecret(ctx, cmd, "Webhook secret (16 to 256 bytes): ")
	}
	s, err := c.readLine(ctx)
	switch {
	case errors.Is(err, io.EOF) || err == nil && s == "":
		return "", &usageError{msg: "--secret -: no secret on stdin; pipe it as one line", cmd: cmd}
	case err != nil:
		return "", err
	}
	return s, nil
}

// webhookList lists the webhooks of an app or an organisation.
func webhookList(ctx context.Context, c *cli, cmd *command, args []string) error {
	fs := c.flagSet(cmd.name)
	scope := scopeFlags(fs)
	if _, err := c.parse(cmd, fs, args, 0, 0); err != nil {
		return err
	}
	path, err := scope.path(cmd)
	if err != nil {
		return err
	}
	cl, err := c.newClient(cmd)
	if err != nil {
		return err
	}
	var l projections.WebhookList
	raw, err := cl.getJSON(ctx, path, &l)
	if err != nil {
		return err
	}
	if c.g.json {
		return writeJSON(c.stdout, raw)
	}
	if len(l.Webhooks) == 0 {
		_, err := fmt.Fprintf(c.stdout, "No webhooks of %s.\n", scope)
		return err
	}
	t := newTable(c.stdout, "ID", "URL", "EVENTS", "CREATED (UTC)", "BY")
	for _, w := range l.Webhooks {
		t.row(w.ID, w.URL, list(w.Events), minute(w.CreatedAt), w.CreatedBy)
	}
	return t.flush()
}

// webhookRm removes a webhook of an app or an organisation.
func webhookRm(ctx context.Context, c *cli, cmd *command, args []string) error {
	fs := c.flagSet(cmd.name)
	scope := scopeFlags(fs)
	pos, err := c.parse(cmd, fs, args, 1, 1)
	if err != nil {
		return err
	}
	path, err := scope.path(cmd, pos[0])
	if err != nil {
		return err
	}
	cl, err := c.newClient(cmd)
	if err != nil {
		return err
	}
	if _, err := cl.do(ctx, request{method: http.MethodDelete, path: path, command: true}); err != nil {
		return err
	}
	if c.g.json {
		v := map[string]any{"id": pos[0], "deleted": true}
		if scope.app != "" {
			v["app"] = scope.app
		} else {
			v["org"] = scope.org
		}
		return printJSON(c.stdout, v)
	}
	_, err = fmt.Fprintf(c.stdout, "Removed webhook %s of %s.\n", pos[0], scope)
	return err
}

// webhookDeliveries prints the latest delivery attempts of a webhook.
func webhookDeliveries(ctx context.Context, c *cli, cmd *command, args []string) error {
	fs := c.flagSet(cmd.name)
	scope := scopeFlags(fs)
	limit := fs.Int("limit", 0, "")
	pos, err := c.parse(cmd, fs, args, 1, 1)
	if err != nil {
		return err
	}
	path, err := scope.path(cmd, pos[0], "deliveries")
	if err != nil {
		return err
	}
	var query url.Values
	if flagsGiven(fs)["limit"] {
		if *limit < 1 || *limit > maxDeliveryLimit {
			return &usageError{msg: fmt.Sprintf("--limit must be 1 to %d", maxDeliveryLimit), cmd: cmd}
		}
		query = url.Values{"limit": {strconv.Itoa(*limit)}}
	}
	cl, err := c.newClient(cmd)
	if err != nil {
		return err
	}
	a, err := cl.do(ctx, request{method: http.MethodGet, path: path, query: query})
	if err != nil {
		return err
	}
	if c.g.json {
		return writeJSON(c.stdout, a.body)
	}
	var l projections.DeliveryList
	if err := decode(a.body, &l); err != nil {
		return err
	}
	if len(l.Deliveries) == 0 {
		_, err := fmt.Fprintf(c.stdout, "No deliveries of webhook %s yet.\n", pos[0])
		return err
	}
	t := newTable(c.stdout, "TIME (UTC)", "EVENT", "ATTEMPT", "RESULT", "STATUS", "ERROR")
	for _, d := range l.Deliveries {
		status := "-"
		if d.StatusCode != 0 {
			status = strconv.Itoa(d.StatusCode)
		}
		t.row(d.Time.UTC().Format("2006-01-02 15:04:05"), d.EventType, strconv.Itoa(d.Attempt), d.Result, status, cmp.Or(d.Error, "-"))
	}
	return t.flush()
}
