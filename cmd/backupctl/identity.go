package main

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/backupledger/backupledger/projections"
)

const helpUserCreate = `
Creates a user (server administrator only). ID is 1 to 63 of a-z, 0-9, _
and - (starting with a letter or digit). The password (12 to 1024 bytes) is
asked twice on the terminal, without echo; when stdin is not a terminal it
is the first line of stdin.

Flags:
  --name N   the user's name, e.g. "Ada Lovelace" (required)
  --email E  the user's email address

A new user belongs to no organisation: see org add-member. With --json,
prints the server's JSON of the user.
`

const helpUserList = `
Lists the users (server administrator only) as a table: id, name, email,
organisations, status, creation time (UTC). With --json, prints the
server's {"users": [...]}.
`

const helpUserDisable = `
Disables a user (server administrator only): its sessions and API tokens
stop working at once, and it can no longer log in, until user enable. With
--json, prints the server's JSON of the user.
`

const helpUserEnable = `
Enables a user that user disable disabled (server administrator only). Its
tokens that have not expired or been revoked work again. With --json,
prints the server's JSON of the user.
`

const helpUserPasswd = `
Changes a password: with ID, that user's (the server administrator may
change anyone's, a user only its own); without ID, your own. A user gives
its current password first (a wrong one counts as a wrong password); the
server administrator sets one without it. The passwords are asked on the
terminal, without echo, the new one (12 to 1024 bytes) twice; when stdin
is not a terminal they are its lines: the current password (a user only),
then the new one.

The change ends every other session of the user (logins elsewhere); API
tokens keep working, and are listed so that you can revoke one that
leaked (backupctl token revoke). With --json, prints the server's JSON:
{"user", "changed": true, "revoked_sessions": [ids], "api_tokens": [...]}.
`

const helpOrgCreate = `
Creates an organisation (server administrator only). ID is 1 to 63 of
a-z, 0-9, _ and - (starting with a letter or digit).

Flags:
  --name N  its name (default: ID)

With --json, prints the server's JSON of the organisation.
`

const helpOrgList = `
Lists organisations as a table: id, name, members, creation time (UTC).
The server administrator sees all of them, a user those it belongs to. With
--json, prints the server's {"orgs": [...]}.
`

const helpOrgAddMember = `
Adds USER to the organisation ORG (server administrator only). Members may
register apps in it and be made admins of its apps. With --json, prints
{"org", "user", "member": true}.
`

const helpOrgRemoveMember = `
Removes USER from the organisation ORG (server administrator only): its
rights on the organisation's apps end with it. With --json, prints {"org",
"user", "member": false}.
`

const helpAppRegister = `
Registers APP in the organisation ORG, for good: an app exists only once
registered, and every other command on an unregistered app is not_found,
also for the server administrator. A member of ORG registers only an id
never used (not registered, no events, nothing in its configuration) and
becomes its first admin; any other id is not_found. The server
administrator registers any unregistered id: an app used before
registration existed (in the organisation "default") moves into ORG so.

Flags:
  --org ORG  the organisation (required)

With --json, prints the server's {"app", "org", "admins"}.
`

const helpAppAdmins = `
Shows the organisation APP belongs to and its admins. With --json, prints
the server's {"app", "org", "admins"}.
`

const helpAppGrant = `
Makes USER an admin of APP: the server administrator or an admin of APP
may, and USER must be a member of the app's organisation. With --json,
prints {"app", "user", "admin": true}.
`

const helpAppRevoke = `
Takes USER's admin rights on APP: the server administrator or an admin of
APP may. With --json, prints {"app", "user", "admin": false}.
`

const helpTokenCreate = `
Creates an API token of yours named NAME, for scripts and services (the
server administrator has admin.token and cannot make tokens). The token is
printed once, alone on stdout, so that

  TOKEN=$(backupctl token create ci --expires 720h)

keeps it; the server stores only its hash, so it is not shown again. Use
it as --token or $BACKUPCTL_TOKEN. A note with its id and expiry goes to
stderr.

Flags:
  --expires D  when it stops working: a duration from now (e.g. 720h, or
               90d for days) or an RFC 3339 time (2026-12-31T23:00:00Z);
               default never

With --json, prints the server's JSON, with the token.
`

const helpTokenList = `
Lists your API tokens, without their secrets, as a table: id, name,
creation and expiry time (UTC), status (active, expired or revoked). With
--json, prints the server's {"tokens": [...]}.
`

const helpTokenRevoke = `
Revokes one of your API tokens (the server administrator: anyone's); it
stops working at once. ID is the token's id as token list shows it. With
--json, prints {"id", "revoked": true}.
`

func userCreate(ctx context.Context, c *cli, cmd *command, args []string) error {
	fs := c.flagSet(cmd.name)
	name := fs.String("name", "", "")
	email := fs.String("email", "", "")
	pos, err := c.parse(cmd, fs, args, 1, 1)
	if err != nil {
		return err
	}
	if *name == "" {
		return &usageError{msg: "--name is required", cmd: cmd}
	}
	cl, err := c.newClient(cmd)
	if err != nil {
		return err
	}
	pw, err := c.newPassword(ctx, cmd, pos[0])
	if err != nil {
		return err
	}
	a, err := cl.do(ctx, request{method: http.MethodPost, path: apiPath("v1/users"), command: true,
		json: map[string]string{"id": pos[0], "name": *name, "email": *email, "password": pw}})
	if err != nil {
		return err
	}
	if c.g.json {
		return writeJSON(c.stdout, a.body)
	}
	var u projections.UserView
	if err := decode(a.body, &u); err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "Created user %s (%s).\n", u.ID, clean(u.Name))
	return err
}

func userList(ctx context.Context, c *cli, cmd *command, args []string) error {
	_, cl, err := c.plain(cmd, args, 0, 0)
	if err != nil {
		return err
	}
	var l struct {
		Users []projections.UserView `json:"users"`
	}
	raw, err := cl.getJSON(ctx, apiPath("v1/users"), &l)
	if err != nil {
		return err
	}
	if c.g.json {
		return writeJSON(c.stdout, raw)
	}
	if len(l.Users) == 0 {
		_, err := fmt.Fprintln(c.stdout, "No users.")
		return err
	}
	t := newTable(c.stdout, "ID", "NAME", "EMAIL", "ORGS", "STATUS", "CREATED (UTC)")
	for _, u := range l.Users {
		status := "active"
		if u.Disabled {
			status = "disabled"
		}
		t.row(u.ID, u.Name, cmp.Or(u.Email, "-"), list(u.Orgs), status, minute(u.CreatedAt))
	}
	return t.flush()
}

// userDisable returns the command that disables (or enables) a user.
func userDisable(disabled bool) func(context.Context, *cli, *command, []string) error {
	return func(ctx context.Context, c *cli, cmd *command, args []string) error {
		pos, cl, err := c.plain(cmd, args, 1, 1)
		if err != nil {
			return err
		}
		a, err := cl.do(ctx, request{method: http.MethodPatch, path: apiPath("v1/users", pos[0]), command: true,
			json: map[string]bool{"disabled": disabled}})
		if err != nil {
			return err
		}
		if c.g.json {
			return writeJSON(c.stdout, a.body)
		}
		verb := "Enabled"
		if disabled {
			verb = "Disabled"
		}
		_, err = fmt.Fprintf(c.stdout, "%s user %s.\n", verb, pos[0])
		return err
	}
}

func userPasswd(ctx context.Context, c *cli, cmd *command, args []string) error {
	pos, cl, err := c.plain(cmd, args, 0, 1)
	if err != nil {
		return err
	}
	var me projections.MeView
	if _, err := cl.getJSON(ctx, apiPath("v1/me"), &me); err != nil {
		return err
	}
	user := me.ID
	if len(pos) == 1 {
		user = pos[0]
	} else if me.Admin {
		return &usageError{msg: "the server administrator has no password (its token is admin.token): name the user", cmd: cmd}
	}
	body := map[string]string{}
	if !me.Admin {
		if body["current_password"], err = c.readSecret(ctx, cmd, fmt.Sprintf("Current password of %s: ", user)); err != nil {
			return err
		}
	}
	if body["password"], err = c.newPassword(ctx, cmd, user); err != nil {
		return err
	}
	a, err := cl.do(ctx, request{method: http.MethodPut, path: apiPath("v1/users", user, "password"), command: true, json: body})
	if err != nil {
		return err
	}
	if c.g.json {
		return writeJSON(c.stdout, a.body)
	}
	var v projections.PasswordChangeView
	if err := decode(a.body, &v); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "Changed the password of %s.\n", user)
	if n := len(v.RevokedSessions); n > 0 {
		fmt.Fprintf(c.stdout, "Ended %s of %s elsewhere.\n", plural(n, "other session", "other sessions"), user)
	}
	if len(v.APITokens) > 0 {
		fmt.Fprintf(c.stdout, "API tokens of %s still work (revoke one that leaked with backupctl token revoke ID):\n", user)
		for _, t := range v.APITokens {
			fmt.Fprintf(c.stdout, "  %s  %s\n", t.ID, clean(t.Name))
		}
	}
	return nil
}

func orgCreate(ctx context.Context, c *cli, cmd *command, args []string) error {
	fs := c.flagSet(cmd.name)
	name := fs.String("name", "", "")
	pos, err := c.parse(cmd, fs, args, 1, 1)
	if err != nil {
		return err
	}
	cl, err := c.newClient(cmd)
	if err != nil {
		return err
	}
	a, err := cl.do(ctx, request{method: http.MethodPost, path: apiPath("v1/orgs"), command: true,
		json: map[string]string{"id": pos[0], "name": *name}})
	if err != nil {
		return err
	}
	if c.g.json {
		return writeJSON(c.stdout, a.body)
	}
	var o projections.OrgView
	if err := decode(a.body, &o); err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "Created organisation %s (%s).\n", o.ID, clean(o.Name))
	return err
}

func orgList(ctx context.Context, c *cli, cmd *command, args []string) error {
	_, cl, err := c.plain(cmd, args, 0, 0)
	if err != nil {
		return err
	}
	var l struct {
		Orgs []projections.OrgView `json:"orgs"`
	}
	raw, err := cl.getJSON(ctx, apiPath("v1/orgs"), &l)
	if err != nil {
		return err
	}
	if c.g.json {
		return writeJSON(c.stdout, raw)
	}
	if len(l.Orgs) == 0 {
		_, err := fmt.Fprintln(c.stdout, "No organisations.")
		return err
	}
	t := newTable(c.stdout, "ID", "NAME", "MEMBERS", "CREATED (UTC)")
	for _, o := range l.Orgs {
		t.row(o.ID, o.Name, list(o.Members), minute(o.CreatedAt))
	}
	return t.flush()
}

// orgMember returns the command that adds a user to (or removes it from)
// an organisation.
func orgMember(member bool) func(context.Context, *cli, *command, []string) error {
	return func(ctx context.Context, c *cli, cmd *command, args []string) error {
		pos, cl, err := c.plain(cmd, args, 2, 2)
		if err != nil {
			return err
		}
		org, user := pos[0], pos[1]
		method := http.MethodPut
		if !member {
			method = http.MethodDelete
		}
		if _, err := cl.do(ctx, request{method: method, path: apiPath("v1/orgs", org, "members", user), command: true}); err != nil {
			return err
		}
		if c.g.json {
			return printJSON(c.stdout, map[string]any{"org": org, "user": user, "member": member})
		}
		if member {
			_, err = fmt.Fprintf(c.stdout, "Added %s to %s.\n", user, org)
		} else {
			_, err = fmt.Fprintf(c.stdout, "Removed %s from %s.\n", user, org)
		}
		return err
	}
}

func appRegister(ctx context.Context, c *cli, cmd *command, args []string) error {
	fs := c.flagSet(cmd.name)
	org := fs.String("org", "", "")
	pos, err := c.parse(cmd, fs, args, 1, 1)
	if err != nil {
		return err
	}
	if *org == "" {
		return &usageError{msg: "--org is required", cmd: cmd}
	}
	cl, err := c.newClient(cmd)
	if err != nil {
		return err
	}
	a, err := cl.do(ctx, request{method: http.MethodPut, path: apiPath("v1/apps", pos[0]), command: true,
		json: map[string]string{"org": *org}})
	if err != nil {
		return err
	}
	if c.g.json {
		return writeJSON(c.stdout, a.body)
	}
	var v projections.AppAccessView
	if err := decode(a.body, &v); err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "Registered app %s in organisation %s; admins: %s.\n", v.App, v.Org, list(v.Admins))
	return err
}

func appAdmins(ctx context.Context, c *cli, cmd *command, args []string) error {
	pos, cl, err := c.plain(cmd, args, 1, 1)
	if err != nil {
		return err
	}
	var v projections.AppAccessView
	raw, err := cl.getJSON(ctx, apiPath("v1/apps", pos[0], "admins"), &v)
	if err != nil {
		return err
	}
	if c.g.json {
		return writeJSON(c.stdout, raw)
	}
	t := tabwriter.NewWriter(c.stdout, 0, 0, 1, ' ', 0)
	fmt.Fprintf(t, "App:\t%s\n", clean(v.App))
	fmt.Fprintf(t, "Organisation:\t%s\n", clean(v.Org))
	fmt.Fprintf(t, "Admins:\t%s\n", clean(list(v.Admins)))
	return t.Flush()
}

// appGrant returns the command that grants (or revokes) admin rights on
// an app.
func appGrant(admin bool) func(context.Context, *cli, *command, []string) error {
	return func(ctx context.Context, c *cli, cmd *command, args []string) error {
		pos, cl, err := c.plain(cmd, args, 2, 2)
		if err != nil {
			return err
		}
		app, user := pos[0], pos[1]
		method := http.MethodPut
		if !admin {
			method = http.MethodDelete
		}
		if _, err := cl.do(ctx, request{method: method, path: apiPath("v1/apps", app, "admins", user), command: true}); err != nil {
			return err
		}
		if c.g.json {
			return printJSON(c.stdout, map[string]any{"app": app, "user": user, "admin": admin})
		}
		if admin {
			_, err = fmt.Fprintf(c.stdout, "%s now administers %s.\n", user, app)
		} else {
			_, err = fmt.Fprintf(c.stdout, "%s no longer administers %s.\n", user, app)
		}
		return err
	}
}

func tokenCreate(ctx context.Context, c *cli, cmd *command, args []string) error {
	fs := c.flagSet(cmd.name)
	expires := fs.String("expires", "", "")
	pos, err := c.parse(cmd, fs, args, 1, 1)
	if err != nil {
		return err
	}
	body := map[string]any{"name": pos[0]}
	if *expires != "" {
		at, err := parseExpiry(*expires, time.Now())
		if err != nil {
			return &usageError{msg: err.Error(), cmd: cmd}
		}
		body["expires_at"] = at.UTC().Format(time.RFC3339)
	}
	cl, err := c.newClient(cmd)
	if err != nil {
		return err
	}
	a, err := cl.do(ctx, request{method: http.MethodPost, path: apiPath("v1/tokens"), command: true, json: body})
	if err != nil {
		return err
	}
	var t projections.NewTokenView
	if err := decode(a.body, &t); err != nil {
		return err
	}
	if c.g.json {
		if err := writeJSON(c.stdout, a.body); err != nil {
			return err
		}
	} else if _, err := fmt.Fprintln(c.stdout, t.Token); err != nil {
		return err
	}
	until := "never expires"
	if t.ExpiresAt != nil {
		until = "expires " + second(t.ExpiresAt)
	}
	fmt.Fprintf(c.stderr, "Created API token %q (id %s), %s.\n"+
		"It is not shown again: keep it now (use it as --token or $%s).\n", clean(t.Name), t.ID, until, envToken)
	return nil
}

// parseExpiry reads --expires: a positive duration from now ("720h",
// "90d" for days) or an RFC 3339 time in the future.
func parseExpiry(s string, now time.Time) (time.Time, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil {
			if n <= 0 {
				return time.Time{}, fmt.Errorf("--expires %q must be in the future", s)
			}
			return now.AddDate(0, 0, n), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("--expires %q must be in the future", s)
		}
		return now.Add(d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--expires %q is neither a duration (720h, 90d) nor an RFC 3339 time (2026-12-31T23:00:00Z)", s)
	}
	if !t.After(now) {
		return time.Time{}, fmt.Errorf("--expires %q is not in the future", s)
	}
	return t, nil
}

func tokenList(ctx context.Context, c *cli, cmd *command, args []string) error {
	_, cl, err := c.plain(cmd, args, 0, 0)
	if err != nil {
		return err
	}
	var l struct {
		Tokens []projections.TokenView `json:"tokens"`
	}
	raw, err := cl.getJSON(ctx, apiPath("v1/tokens"), &l)
	if err != nil {
		return err
	}
	if c.g.json {
		return writeJSON(c.stdout, raw)
	}
	if len(l.Tokens) == 0 {
		_, err := fmt.Fprintln(c.stdout, "No API tokens.")
		return err
	}
	now := time.Now()
	t := newTable(c.stdout, "ID", "NAME", "CREATED (UTC)", "EXPIRES (UTC)", "STATUS")
	for _, tk := range l.Tokens {
		expires, status := "never", "active"
		if tk.ExpiresAt != nil {
			expires = minute(*tk.ExpiresAt)
			if !now.Before(*tk.ExpiresAt) {
				status = "expired"
			}
		}
		if tk.Revoked {
			status = "revoked"
		}
		t.row(tk.ID, tk.Name, minute(tk.CreatedAt), expires, status)
	}
	return t.flush()
}

func tokenRevoke(ctx context.Context, c *cli, cmd *command, args []string) error {
	pos, cl, err := c.plain(cmd, args, 1, 1)
	if err != nil {
		return err
	}
	if _, err := cl.do(ctx, request{method: http.MethodDelete, path: apiPath("v1/tokens", pos[0]), command: true}); err != nil {
		return err
	}
	if c.g.json {
		return printJSON(c.stdout, map[string]any{"id": pos[0], "revoked": true})
	}
	_, err = fmt.Fprintf(c.stdout, "Revoked token %s.\n", pos[0])
	return err
}
