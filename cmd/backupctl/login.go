package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/backupledger/backupledger/projections"
)

const helpLogin = `
Logs in to the server (--server) as USER and keeps the session, so that
later commands need no token. Without USER, it asks for the user name.

The password is read from the terminal without echo; when stdin is not a
terminal, it is the first line of stdin (after the user name's line if
USER is not given), so a script can pipe it:

  backupctl login ada < ada.password

The session token is kept, with the server's URL and its expiry (the
server's --session-ttl, 12h by default), in backupctl/session.json in your
config dir ($XDG_CONFIG_HOME or ~/.config on Linux), readable by you only.
A login replaces the session kept before, also of another server. Commands
use the session when neither --token nor $BACKUPCTL_TOKEN is given, it is
for the same --server, and it has not expired; then ./data/admin.token.

A wrong password or an unknown user is refused with unauthenticated
(exit 1); after a few wrong passwords the server asks to wait before the
next try (too_many_attempts, with how long: docs/security.md, "Wrong
passwords"), the same for every name. With --json, prints {"server", "user",
"token_id", "expires_at", "session_file"} (never the token).
`

const helpLogout = `
Ends the session of backupctl login: the server revokes its token, then the
session file is removed. If the server no longer accepts the token (it
expired, was revoked, or the user was disabled), the file is removed all
the same. If the server cannot be reached, the file is kept (exit 1), so
that you can try again. The session's own server is used, whatever
--server says. With --json, prints {"server", "user", "revoked"}.
`

const helpWhoami = `
Shows who the token (see --token below) belongs to: the user's id, name and
email, or the server administrator; its organisations and the apps it
administers; and where the token came from. With --json, prints the
server's JSON.
`

// login logs in and stores the session.
func login(ctx context.Context, c *cli, cmd *command, args []string) error {
	pos, err := c.parse(cmd, c.flagSet(cmd.name), args, 0, 1)
	if err != nil {
		return err
	}
	cl, err := c.anonClient(cmd)
	if err != nil {
		return err
	}
	// Find where the session goes before asking for anything.
	path, err := c.sessionPath()
	if err != nil {
		return err
	}
	var user string
	if len(pos) == 1 {
		user = pos[0]
	} else {
		if c.isTerminal(c.stdin) {
			fmt.Fprint(c.stderr, "User: ")
		}
		line, err := c.readLine(ctx)
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if user = strings.TrimSpace(line); user == "" {
			return &usageError{msg: "no user name: give USER, or type it when asked", cmd: cmd}
		}
	}
	pw, err := c.readSecret(ctx, cmd, fmt.Sprintf("Password for %s: ", user))
	if err != nil {
		return err
	}
	a, err := cl.do(ctx, request{method: http.MethodPost, path: apiPath("v1/sessions"),
		json: map[string]string{"user": user, "password": pw}})
	if err != nil {
		return err
	}
	var t projections.NewTokenView
	if err := decode(a.body, &t); err != nil {
		return err
	}
	if t.Token == "" {
		return errors.New("the server answered the login without a token")
	}
	s := &session{Version: sessionVersion, Server: cl.base, User: t.User, TokenID: t.ID, Token: t.Token, CreatedAt: t.CreatedAt}
	if s.User == "" {
		s.User = user
	}
	if t.ExpiresAt != nil {
		s.ExpiresAt = *t.ExpiresAt
	}
	if err := saveSession(path, s); err != nil {
		// A session nobody can use should not live on the server.
		cl.token, cl.tokenFrom = s.Token, fromSession
		if _, rerr := cl.do(ctx, request{method: http.MethodDelete, path: apiPath("v1/sessions/current"), command: true}); rerr != nil {
			return fmt.Errorf("%w (and the server still has the session: %v)", err, rerr)
		}
		return fmt.Errorf("%w; logged out again", err)
	}
	if c.g.json {
		var exp *time.Time
		if !s.ExpiresAt.IsZero() {
			exp = &s.ExpiresAt
		}
		return printJSON(c.stdout, map[string]any{"server": s.Server, "user": s.User, "token_id": s.TokenID,
			"expires_at": exp, "session_file": path})
	}
	if s.ExpiresAt.IsZero() {
		_, err = fmt.Fprintf(c.stdout, "Logged in to %s as %s; the session does not expire.\n", s.Server, clean(s.User))
	} else {
		_, err = fmt.Fprintf(c.stdout, "Logged in to %s as %s until %s.\n", s.Server, clean(s.User), second(&s.ExpiresAt))
	}
	return err
}

// logout revokes the stored session on its server and removes it.
func logout(ctx context.Context, c *cli, cmd *command, args []string) error {
	if _, err := c.parse(cmd, c.flagSet(cmd.name), args, 0, 0); err != nil {
		return err
	}
	path, err := c.sessionPath()
	if err != nil {
		return err
	}
	report := func(s *session, revoked bool, text string, a ...any) error {
		if c.g.json {
			out := map[string]any{"server": nil, "user": nil, "revoked": revoked}
			if s != nil {
				out["server"], out["user"] = s.Server, s.User
			}
			return printJSON(c.stdout, out)
		}
		_, err := fmt.Fprintf(c.stdout, text+"\n", a...)
		return err
	}
	s, err := loadSession(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return report(nil, false, "Not logged in.")
	case err != nil:
		if rerr := removeSession(path); rerr != nil {
			return rerr
		}
		return report(nil, false, "Removed the unusable session file: %v.", err)
	case s.expired(time.Now()):
		if err := removeSession(path); err != nil {
			return err
		}
		return report(s, false, "The session of %s at %s had expired at %s; removed it.", clean(s.User), s.Server, second(&s.ExpiresAt))
	}
	cl := c.clientFor(s.Server)
	cl.token, cl.tokenFrom = s.Token, fromSession
	_, err = cl.do(ctx, request{method: http.MethodDelete, path: apiPath("v1/sessions/current"), command: true})
	var pe *problemError
	switch {
	case err == nil:
		if err := removeSession(path); err != nil {
			return err
		}
		return report(s, true, "Logged out %s from %s.", clean(s.User), s.Server)
	case errors.As(err, &pe) && pe.Code == "unauthenticated":
		if err := removeSession(path); err != nil {
			return err
		}
		return report(s, false, "The server no longer accepted the session of %s (%s: %s); removed it anyway.",
			clean(s.User), pe.Code, clean(pe.Detail))
	default:
		return fmt.Errorf("log out: %w; the session is kept, try again", err)
	}
}

// whoami shows who the token belongs to.
func whoami(ctx context.Context, c *cli, cmd *command, args []string) error {
	_, cl, err := c.plain(cmd, args, 0, 0)
	if err != nil {
		return err
	}
	var me projections.MeView
	raw, err := cl.getJSON(ctx, apiPath("v1/me"), &me)
	if err != nil {
		return err
	}
	if c.g.json {
		return writeJSON(c.stdout, raw)
	}
	t := tabwriter.NewWriter(c.stdout, 0, 0, 1, ' ', 0)
	line := func(k, v string) { fmt.Fprintf(t, "%s:\t%s\n", k, clean(v)) }
	line("ID", me.ID)
	if me.Admin {
		line("Role", "server administrator")
	} else {
		line("Role", "user")
	}
	if me.Name != "" {
		line("Name", me.Name)
	}
	if me.Email != "" {
		line("Email", me.Email)
	}
	line("Organisations", list(me.Orgs))
	line("Apps", list(me.Apps))
	line("Server", cl.base)
	from := "from " + cl.tokenFrom
	if s := cl.session; s != nil && !s.ExpiresAt.IsZero() {
		from += ", expires " + second(&s.ExpiresAt)
	}
	line("Token", from)
	return t.Flush()
}

// list joins names with commas, or is "-" for none.
func list(names []string) string {
	if len(names) == 0 {
		return "-"
	}
	return strings.Join(names, ", ")
}

// readLine reads one line of stdin, without its line ending. It returns
// io.EOF if stdin ended before any character.
func (c *cli) readLine(ctx context.Context) (string, error) {
	if c.in == nil {
		c.in = bufio.NewReader(c.stdin)
	}
	type result struct {
		line string
		err  error
	}
	// Read aside, so that an interrupt ends the command even while
	// nobody types.
	done := make(chan result, 1)
	go func() {
		line, err := c.in.ReadString('\n')
		done <- result{line, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		return "", errors.New("interrupted")
	}
	switch {
	case errors.Is(r.err, io.EOF) && r.line == "":
		return "", io.EOF
	case r.err != nil && !errors.Is(r.err, io.EOF):
		return "", fmt.Errorf("read stdin: %w", r.err)
	}
	return strings.TrimSuffix(strings.TrimSuffix(r.line, "\n"), "\r"), nil
}

// readSecret asks for a password with prompt and reads it: from the
// terminal without echo, else as one line of stdin (no prompt then). An
// empty password is a usageError.
func (c *cli) readSecret(ctx context.Context, cmd *command, prompt string) (string, error) {
	if c.isTerminal(c.stdin) {
		read := c.readPassword
		if read == nil {
			read = readTerminalPassword
		}
		fmt.Fprint(c.stderr, prompt)
		b, err := read(ctx, c.stdin)
		fmt.Fprintln(c.stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if len(b) == 0 {
			return "", &usageError{msg: "no password given", cmd: cmd}
		}
		return string(b), nil
	}
	pw, err := c.readLine(ctx)
	switch {
	case errors.Is(err, io.EOF):
		return "", &usageError{msg: "no password: stdin is not a terminal and ended; pipe the password as one line", cmd: cmd}
	case err != nil:
		return "", err
	case pw == "":
		return "", &usageError{msg: "no password given: the line on stdin is empty", cmd: cmd}
	}
	return pw, nil
}

// newPassword asks for a new password of user: twice on a terminal, to
// catch a typo (a mismatch is a failure, and nothing is changed); once from
// stdin otherwise.
func (c *cli) newPassword(ctx context.Context, cmd *command, user string) (string, error) {
	pw, err := c.readSecret(ctx, cmd, fmt.Sprintf("New password for %s (12 to 1024 bytes): ", user))
	if err != nil {
		return "", err
	}
	if !c.isTerminal(c.stdin) {
		return pw, nil
	}
	again, err := c.readSecret(ctx, cmd, "Repeat it: ")
	if err != nil {
		return "", err
	}
	if again != pw {
		return "", &failure{msg: "the passwords do not match; nothing changed"}
	}
	return pw, nil
}

// readTerminalPassword reads a line from the terminal stream without echo.
// An interrupt (ctx) restores the terminal and ends the read.
func readTerminalPassword(ctx context.Context, stream any) ([]byte, error) {
	f, ok := stream.(interface{ Fd() uintptr })
	if !ok {
		return nil, errors.New("not a terminal")
	}
	fd := int(f.Fd())
	state, err := term.GetState(fd)
	if err != nil {
		return nil, fmt.Errorf("terminal state: %w", err)
	}
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := term.ReadPassword(fd)
		done <- result{b, err}
	}()
	select {
	case r := <-done:
		return r.b, r.err
	case <-ctx.Done():
		if err := term.Restore(fd, state); err != nil {
			return nil, fmt.Errorf("interrupted; restore the terminal: %w", err)
		}
		return nil, errors.New("interrupted")
	}
}
