// Command auditfeed copies the events of a backupledger installation to a
// JSON Lines file, one event per line, each the event's body exactly as
// stored, and keeps doing so as new events are stored. It reads the stream
// LEDGER as the NATS audit role through a durable consumer ("audit-feed"),
// fsyncs each batch before acknowledging it, and after a restart resumes
// where it stopped, writing each event once. See docs/audit.md.
//
//	go run ./docs/examples/auditfeed --login data/nats/audit.json --out events.jsonl
//
// It stops on SIGINT or SIGTERM (exit 0). Exit status 1: it failed (it can
// be started again and resumes); 2: wrong flags or login file.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/nats-io/nats.go"

	"github.com/backupledger/backupledger/docs/examples/auditfeed/feed"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

// run runs auditfeed with args and returns its exit code.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("auditfeed", flag.ContinueOnError)
	fs.SetOutput(stderr)
	loginPath := fs.String("login", "data/nats/audit.json", "the audit role's `file` of login (backupd writes it to <data-dir>/nats/audit.json)")
	url := fs.String("url", "", "the NATS server `URL` (default: the login's url)")
	var cfg feed.Config
	fs.StringVar(&cfg.Out, "out", "events.jsonl", "the JSON Lines `file` to append the events to")
	fs.StringVar(&cfg.Durable, "durable", feed.DefaultDurable, "the durable consumer's `name`: one per output file")
	fs.StringVar(&cfg.Filter, "filter", feed.SubjectAll, "the `subject`s to copy: ledger.events.APP for one app")
	fs.IntVar(&cfg.Batch, "batch", feed.DefaultBatch, "events per write, fsync and acknowledgement")
	verbose := fs.Bool("v", false, "log each batch")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "auditfeed: unexpected arguments: %q\n", fs.Args())
		return 2
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg.Logger = log
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "auditfeed: %v\n", err)
		return 2
	}
	login, err := feed.ReadLogin(*loginPath)
	if err != nil {
		fmt.Fprintf(stderr, "auditfeed: %v\n", err)
		return 2
	}
	server := login.URL
	if *url != "" {
		server = *url
	}
	opts := append(login.Options(),
		nats.Name("auditfeed"),
		nats.MaxReconnects(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("disconnected from nats", "err", err)
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { log.Info("reconnected to nats") }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { log.Error("nats", "err", err) }),
	)
	nc, err := nats.Connect(server, opts...)
	if err != nil {
		// The error names no URL, so it shows no password.
		fmt.Fprintf(stderr, "auditfeed: connect to nats: %v\n", err)
		return 1
	}
	defer nc.Close()
	if err := feed.Run(ctx, nc, cfg); err != nil {
		log.Error("audit feed stopped", "err", err)
		return 1
	}
	log.Info("audit feed stopped")
	return 0
}
