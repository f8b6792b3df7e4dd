// Command backupctl is the command-line client of backupd: it creates,
// lists, downloads, uploads and restores backups, puts apps into and out
// of maintenance, edits an app's configuration store, logs users in and
// manages users, organisations, app admins and API tokens through the
// HTTP API. Run "backupctl help" for the commands.
//
// Exit status: 0 when the command did what it was asked, 1 when the server
// refused it or it failed (network, verification), 2 for a usage error.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// run runs backupctl with args (without the program name) and returns the
// exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, env func(string) string) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr, env: env, isTerminal: isTerminal}
	return c.main(ctx, args)
}
