package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/term"
)

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1 // the server refused, or the command failed
	exitUsage  = 2 // unknown command or flag, missing argument, no token
)

// Defaults of the global flags, and where else they come from.
const (
	defaultURL     = "http://127.0.0.1:8080"
	defaultTimeout = 30 * time.Second
	envServer      = "BACKUPCTL_SERVER"
	envToken       = "BACKUPCTL_TOKEN"
	// tokenFile is where backupd keeps the admin token, relative to the
	// directory it runs in (--data-dir ./data).
	tokenFile = "data/admin.token"
)

// cli is one run of backupctl: its streams, its environment and its global
// flags.
type cli struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	env    func(string) string
	// isTerminal reports whether a stream (stdin, stderr) is a terminal.
	isTerminal func(stream any) bool
	// readPassword reads a line from a terminal without echo; nil means
	// readTerminalPassword.
	readPassword func(ctx context.Context, stream any) ([]byte, error)
	// configDir is the user's config dir, where the session of
	// backupctl login is kept; nil means os.UserConfigDir.
	configDir func() (string, error)
	// pollEvery is the first interval of create --wait; zero means 100ms.
	pollEvery time.Duration
	// restorePoll is how often restore looks at the restore it follows;
	// zero means defaultRestorePoll.
	restorePoll time.Duration
	// in reads lines from stdin; see readLine.
	in *bufio.Reader

	g globals
}

// globals are the flags every command takes, before or after its name.
type globals struct {
	server  string
	token   string
	json    bool
	timeout time.Duration
}

// isTerminal reports whether stream is an *os.File (or anything with a file
// descriptor) connected to a terminal.
func isTerminal(stream any) bool {
	f, ok := stream.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

// usageError is a command line that is wrong or incomplete: exit code 2.
type usageError struct {
	msg string
	cmd *command // the command whose usage to show, if any
	all bool     // show the list of commands (the command is unknown)
}

func (e *usageError) Error() string { return e.msg }

// errHelpShown says a command's -h printed its usage: exit code 0.
var errHelpShown = errors.New("help shown")

// failure is an error that was already reported in full (e.g. a failed
// backup followed by --wait); it only sets the exit code.
type failure struct{ msg string }

func (e *failure) Error() string { return e.msg }

// command is one backupctl command.
type command struct {
	name    string // "backup create"
	args    string // "APP [--name N] [--description D] [--wait]"
	short   string // the arguments in the list of commands: "APP"
	summary string
	help    string // the details shown by "backupctl help backup create"
	run     func(ctx context.Context, c *cli, cmd *command, args []string) error
}

// commandTable lists every command in the order the usage shows them.
func commandTable() []*command {
	return []*command{
		{name: "backup create", args: "APP [--name N] [--description D] [--wait]", short: "APP",
			summary: "start a backup (--wait follows it to the end)", help: helpCreate, run: backupCreate},
		{name: "backup list", args: "[APP] [--as-of TIME]", short: "[APP]",
			summary: "list backups; without APP, of every app you administer", help: helpList, run: backupList},
		{name: "backup get", args: "APP ID", short: "APP ID",
			summary: "show one backup", help: helpGet, run: backupGet},
		{name: "backup rename", args: "APP ID NAME", short: "APP ID NAME",
			summary: "rename a backup", help: helpRename, run: backupRename},
		{name: "backup delete", args: "APP ID [--yes]", short: "APP ID",
			summary: "delete a backup and its archive (asks first)", help: helpDelete, run: backupDelete},
		{name: "backup download", args: "APP ID [-o FILE] [--component C]", short: "APP ID",
			summary: "download a backup's archive, verified by SHA-256", help: helpDownload, run: backupDownload},
		{name: "backup upload", args: "APP FILE [--name N]", short: "APP FILE",
			summary: "upload an archive as a new backup of APP", help: helpUpload, run: backupUpload},
		{name: "backup quote", args: "APP", short: "APP",
			summary: "estimate a backup's size and monthly cost before making it", help: helpQuote, run: backupQuote},
		{name: "backup verify", args: "APP ID", short: "APP ID",
			summary: "read a backup's stored archive and check it now", help: helpVerify, run: backupVerify},
		{name: "backup logs", args: "APP [ID]", short: "APP [ID]",
			summary: "show the log of an app, or of one backup", help: helpLogs, run: backupLogs},
		{name: "restore", args: "APP BACKUP [--to APP] [--pre-backup] [--auto-end]", short: "APP BACKUP",
			summary: "restore a backup (asks for your password) and follow it", help: helpRestore, run: restore},
		{name: "restore status", args: "APP ID", short: "APP ID",
			summary: "show a restore and its steps", help: helpRestoreStatus, run: restoreStatus},
		{name: "maintenance start", args: "APP --reason R", short: "APP --reason R",
			summary: "put an app into maintenance (no config changes)", help: helpMaintenanceStart, run: maintenanceStart},
		{name: "maintenance end", args: "APP [--reason R]", short: "APP",
			summary: "end an app's maintenance", help: helpMaintenanceEnd, run: maintenanceEnd},
		{name: "retention", args: "APP", short: "APP",
			summary: "explain when each backup expires and which rule would refuse the next", help: helpRetention, run: retention},
		{name: "schedule", args: "APP [--on | --off] [--time HH:MM] [--time-zone ZONE]", short: "APP [--on|--off]",
			summary: "show an app's nightly backup schedule, or set it", help: helpSchedule, run: schedule},
		{name: "app get", args: "APP", short: "APP",
			summary: "show an app's state", help: helpAppGet, run: appGet},
		{name: "app register", args: "APP --org ORG", short: "APP --org ORG",
			summary: "register an app in an organisation", help: helpAppRegister, run: appRegister},
		{name: "app admins", args: "APP", short: "APP",
			summary: "show an app's organisation and admins", help: helpAppAdmins, run: appAdmins},
		{name: "app grant", args: "APP USER", short: "APP USER",
			summary: "make a user an admin of an app", help: helpAppGrant, run: appGrant(true)},
		{name: "app revoke", args: "APP USER", short: "APP USER",
			summary: "take a user's admin rights on an app", help: helpAppRevoke, run: appGrant(false)},
		{name: "config put", args: "APP KEY (VALUE | - | --file F)", short: "APP KEY VALUE",
			summary: "store a configuration document (- for stdin, --file F)", help: helpConfigPut, run: configPut},
		{name: "config get", args: "APP KEY", short: "APP KEY",
			summary: "write a configuration document's bytes to stdout", help: helpConfigGet, run: configGet},
		{name: "config list", args: "APP", short: "APP",
			summary: "list an app's configuration documents", help: helpConfigList, run: configList},
		{name: "config delete", args: "APP KEY", short: "APP KEY",
			summary: "delete a configuration document", help: helpConfigDelete, run: configDelete},
		{name: "login", args: "[USER]", short: "[USER]",
			summary: "log in as a user and keep the session", help: helpLogin, run: login},
		{name: "logout", args: "", short: "",
			summary: "end the session of login", help: helpLogout, run: logout},
		{name: "whoami", args: "", short: "",
			summary: "show who the token belongs to", help: helpWhoami, run: whoami},
		{name: "user create", args: "ID --name N [--email E]", short: "ID --name N",
			summary: "create a user (asks for the password)", help: helpUserCreate, run: userCreate},
		{name: "user list", args: "", short: "",
			summary: "list the users", help: helpUserList, run: userList},
		{name: "user disable", args: "ID", short: "ID",
			summary: "disable a user (its tokens stop working)", help: helpUserDisable, run: userDisable(true)},
		{name: "user enable", args: "ID", short: "ID",
			summary: "enable a disabled user", help: helpUserEnable, run: userDisable(false)},
		{name: "user passwd", args: "[ID]", short: "[ID]",
			summary: "change a password (without ID: your own)", help: helpUserPasswd, run: userPasswd},
		{name: "org create", args: "ID [--name N]", short: "ID",
			summary: "create an organisation", help: helpOrgCreate, run: orgCreate},
		{name: "org list", args: "", short: "",
			summary: "list organisations and their members", help: helpOrgList, run: orgList},
		{name: "org add-member", args: "ORG USER", short: "ORG USER",
			summary: "add a user to an organisation", help: helpOrgAddMember, run: orgMember(true)},
		{name: "org remove-member", args: "ORG USER", short: "ORG USER",
			summary: "remove a user from an organisation", help: helpOrgRemoveMember, run: orgMember(false)},
		{name: "token create", args: "NAME [--expires DURATION|TIME]", short: "NAME",
			summary: "create an API token (shown once)", help: helpTokenCreate, run: tokenCreate},
		{name: "token list", args: "", short: "",
			summary: "list your API tokens", help: helpTokenList, run: tokenList},
		{name: "token revoke", args: "ID", short: "ID",
			summary: "revoke an API token", help: helpTokenRevoke, run: tokenRevoke},
		{name: "webhook add", args: "(--app APP | --org ORG) URL [--event TYPE]... [--secret S]", short: "(--app|--org) URL",
			summary: "register a webhook of an app or organisation (secret shown once)", help: helpWebhookAdd, run: webhookAdd},
		{name: "webhook list", args: "(--app APP | --org ORG)", short: "(--app|--org)",
			summary: "list the webhooks of an app or organisation", help: helpWebhookList, run: webhookList},
		{name: "webhook rm", args: "(--app APP | --org ORG) ID", short: "(--app|--org) ID",
			summary: "remove a webhook", help: helpWebhookRm, run: webhookRm},
		{name: "webhook deliveries", args: "(--app APP | --org ORG) ID [--limit N]", short: "(--app|--org) ID",
			summary: "show a webhook's latest delivery attempts", help: helpWebhookDeliveries, run: webhookDeliveries},
		{name: "ledger keys", args: "", short: "",
			summary: "list the public keys that sign the ledger", help: helpLedgerKeys, run: ledgerKeys},
		{name: "ledger rotate-key", args: "", short: "",
			summary: "make a new signing key (server administrator)", help: helpLedgerRotateKey, run: ledgerRotateKey},
		{name: "audit tail", args: "[--app APP] [--since TIME|SEQ] [--follow] [--nats-login FILE] [--nats-url URL]", short: "[--app APP] [--follow]",
			summary: "print the ledger's events as JSON lines, read over NATS as the audit role", help: helpAuditTail, run: auditTail},
		{name: "audit verify", args: "[--app APP] [--key KEYID] [--nats-login FILE] [--nats-url URL]", short: "[--app APP]",
			summary: "check the signatures and hash chains of the ledger (exit 1 if not intact)", help: helpAuditVerify, run: auditVerify},
	}
}

// main parses the global flags, finds the command and runs it.
func (c *cli) main(ctx context.Context, args []string) int {
	c.g = globals{server: c.env(envServer), timeout: defaultTimeout}
	if c.g.server == "" {
		c.g.server = defaultURL
	}
	fs := c.flagSet("backupctl")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.usage(c.stdout)
			return exitOK
		}
		return c.report(&usageError{msg: err.Error(), all: true})
	}
	args = fs.Args()
	if len(args) == 0 {
		c.usage(c.stderr)
		return exitUsage
	}
	if args[0] == "help" {
		return c.help(args[1:])
	}
	cmd, rest, err := findCommand(args)
	if err != nil {
		return c.report(err)
	}
	return c.report(cmd.run(ctx, c, cmd, rest))
}

// findCommand finds the command named by the first words of args and returns
// it with the remaining arguments.
func findCommand(args []string) (*command, []string, error) {
	cmds := commandTable()
	if len(args) >= 2 {
		for _, cmd := range cmds {
			if cmd.name == args[0]+" "+args[1] {
				return cmd, args[2:], nil
			}
		}
	}
	for _, cmd := range cmds {
		if cmd.name == args[0] {
			return cmd, args[1:], nil
		}
	}
	for _, cmd := range cmds {
		if group, _, _ := strings.Cut(cmd.name, " "); group == args[0] {
			if len(args) == 1 {
				return nil, nil, &usageError{msg: fmt.Sprintf("%s needs a subcommand", args[0]), all: true}
			}
			return nil, nil, &usageError{msg: fmt.Sprintf("unknown command %q", args[0]+" "+args[1]), all: true}
		}
	}
	return nil, nil, &usageError{msg: fmt.Sprintf("unknown command %q", args[0]), all: true}
}

// help prints the usage, or one command's details.
func (c *cli) help(args []string) int {
	if len(args) == 0 {
		c.usage(c.stdout)
		return exitOK
	}
	cmd, rest, err := findCommand(args)
	if err != nil {
		return c.report(err)
	}
	if len(rest) > 0 {
		return c.report(&usageError{msg: fmt.Sprintf("help takes a command, got extra %q", strings.Join(rest, " "))})
	}
	commandUsage(c.stdout, cmd)
	return exitOK
}

// report prints err, if any, and returns the exit code it stands for.
func (c *cli) report(err error) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, errHelpShown) {
		return exitOK
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(c.stderr, "backupctl: %s\n", ue.msg)
		switch {
		case ue.cmd != nil:
			fmt.Fprintf(c.stderr, "usage: backupctl %s\nRun 'backupctl help %s' for details.\n", ue.cmd.synopsis(), ue.cmd.name)
		case ue.all:
			fmt.Fprintln(c.stderr)
			c.usage(c.stderr)
		}
		return exitUsage
	}
	var f *failure
	if errors.As(err, &f) {
		if f.msg != "" {
			fmt.Fprintf(c.stderr, "backupctl: %s\n", f.msg)
		}
		return exitFailed
	}
	fmt.Fprintf(c.stderr, "backupctl: %s\n", err)
	return exitFailed
}

// flagSet returns a flag set with the global flags, whose defaults are their
// current values, so they may be given before or after the command name.
func (c *cli) flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.g.server, "server", c.g.server, "")
	fs.StringVar(&c.g.token, "token", c.g.token, "")
	fs.BoolVar(&c.g.json, "json", c.g.json, "")
	fs.DurationVar(&c.g.timeout, "timeout", c.g.timeout, "")
	return fs
}

// parse parses a command's flags, which may come before, between and after
// its arguments ("--" ends the flags), and checks the number of arguments.
// -h and --help print the command's usage.
func (c *cli) parse(cmd *command, fs *flag.FlagSet, args []string, minArgs, maxArgs int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				commandUsage(c.stdout, cmd)
				return nil, errHelpShown
			}
			return nil, &usageError{msg: err.Error(), cmd: cmd}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	switch {
	case len(pos) < minArgs:
		return nil, &usageError{msg: "missing arguments", cmd: cmd}
	case len(pos) > maxArgs:
		return nil, &usageError{msg: fmt.Sprintf("too many arguments: %s", strings.Join(pos[maxArgs:], " ")), cmd: cmd}
	}
	if c.g.timeout <= 0 {
		return nil, &usageError{msg: "--timeout must be positive", cmd: cmd}
	}
	return pos, nil
}

// usage prints the list of commands.
func (c *cli) usage(w io.Writer) {
	fmt.Fprint(w, `backupctl talks to backupd over its HTTP API (audit commands read the
event stream over NATS with the audit login).

Usage:
  backupctl [global flags] COMMAND [flags] [arguments]

Commands:
`)
	cmds := commandTable()
	width := 0
	short := func(cmd *command) string { return strings.TrimSpace(cmd.name + " " + cmd.short) }
	for _, cmd := range cmds {
		width = max(width, len(short(cmd)))
	}
	for _, cmd := range cmds {
		fmt.Fprintf(w, "  %-*s  %s\n", width, short(cmd), cmd.summary)
	}
	fmt.Fprint(w, globalHelp+`
Run 'backupctl help COMMAND' (e.g. 'backupctl help backup download') for
a command's details.
`)
}

// commandUsage prints one command's details.
func commandUsage(w io.Writer, cmd *command) {
	fmt.Fprintf(w, "usage: backupctl %s\n\n%s\n%s", cmd.synopsis(), strings.TrimSpace(cmd.help), globalHelp)
}

// synopsis is the command's name and arguments: "backup get APP ID".
func (cmd *command) synopsis() string {
	return strings.TrimSpace(cmd.name + " " + cmd.args)
}

const globalHelp = `
Global flags (before or after the command):
  --server URL   backupd's address (default $BACKUPCTL_SERVER, else
                 http://127.0.0.1:8080)
  --token TOKEN  bearer token (default $BACKUPCTL_TOKEN, else the session
                 of 'backupctl login' if it is for this --server and has
                 not expired, else the contents of ./data/admin.token,
                 which backupd creates in its data directory: run
                 backupctl beside a local backupd and it needs no token)
  --json         print the server's JSON (for scripts) instead of text
  --timeout D    how long to wait for the server's answer (default 30s);
                 archive transfers may take longer once they have started

Exit status: 0 done; 1 the server refused (its code and detail are printed)
or the command failed (network, verification, declined); 2 usage error
(unknown command or flag, missing argument, no token or password).
`
