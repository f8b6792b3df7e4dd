// Command backupbench measures backupd from outside, as a separate process,
// against raw JetStream on the same machine in the same run, and prints one
// markdown table: one bench, one run, one table.
//
//	go run ./cmd/backupbench                            # writes nothing
//	go run ./cmd/backupbench -write docs/benchmarks.md  # between its backupbench commands markers
//	go run ./cmd/backupbench -quick                     # CI: short, writes nothing
//
// The default run builds backupd once and measures, each part on a backupd
// of its own (embedded NATS, temporary data dir):
//
//   - the command path (commands.go): for each -sync mode, renames over the
//     NATS API and over HTTP at peak and the p99 at half of that peak,
//     against an OCC publish to a raw stream on the same server with the
//     same clients; every acknowledged command is then looked up in LEDGER;
//   - the cold start (coldstart.go): a restart on a LEDGER of -events
//     events, timed to /readyz against an ordered consumer's replay, and
//     backupd's RSS after it and when idle;
//   - the archives (archives.go): a backup of an app of -size (dir source),
//     the download and -repeat uploads of its archive, against raw
//     object-store put and get of the same bytes, and backupd's peak RSS.
//
// It fails on errors and wrong results (a command lost or stored twice, a
// failed backup, a byte count or sha256 other than the ledger's), never on
// timing or on a target not met.
//
//	go run ./cmd/backupbench commands [-quick] [-write FILE]  # the command path and the cold start alone
//	go run ./cmd/backupbench archives -size 1GiB              # the archives alone
//
// print the same table with their own rows only.
//
//	go run ./cmd/backupbench load -via nats -apps 64 -clients 32 -duration 10s
//
// sends commands to backupd the way its users do and checks the ledger
// afterwards (load.go, package loadgen): on one backupd, or on replicas on
// an in-process NATS cluster with a server taken down during the run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

func main() {
	var err error
	args := os.Args[1:]
	switch {
	case len(args) > 0 && args[0] == "load":
		err = runLoad(args[1:])
	case len(args) > 0 && args[0] == "commands":
		err = runCommands(args[1:])
	case len(args) > 0 && args[0] == "archives":
		err = runArchives(args[1:])
	default:
		err = runBench(args)
	}
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "backupbench:", err)
		os.Exit(1)
	}
}

const benchUsage = `usage: backupbench [flags]
       backupbench commands|archives|load [flags]  (-h for theirs)

Builds backupd once and measures, each on a backupd of its own (a separate
process, embedded NATS, temp data dir), against raw JetStream in the same
run: the command path (renames over the NATS API and HTTP against an OCC
publish to a raw stream, for each -sync mode), the cold start on a LEDGER of
-events events, and a backup of an app of -size, the download and upload of
its archive (against raw object-store put and get of the same bytes) and
backupd's peak RSS meanwhile. Prints one markdown table. Every acknowledged
command is checked against LEDGER, every archive against the ledger's size
and sha256. It fails on errors and wrong results, never on timing.

`

// runBench is the default run: the command path, the cold start and the
// archives, in one table.
func runBench(args []string) error {
	var cmds commandsConfig
	var arch archiveConfig
	fs := flag.NewFlagSet("backupbench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), benchUsage)
		fs.PrintDefaults()
	}
	cmds.register(fs)
	arch.register(fs, "archive-sync")
	quick := fs.Bool("quick", false, "a short run for CI: the command part as commands -quick, archives of at most 32MiB timed once, nothing written")
	write := fs.String("write", "", "write the table into this markdown file (between its backupbench commands markers)")
	keep := fs.Bool("keep", false, "keep the temporary directory")
	timeout := fs.Duration("timeout", time.Hour, "bound on the whole run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unknown command %q: commands, archives or load, or flags only", fs.Arg(0))
	}
	if *quick {
		cmds.quicken()
		arch.quicken()
		*write = ""
	}
	if err := errors.Join(cmds.validate(), arch.validate()); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	tmp, bin, done, err := workDir(ctx, "backupbench-", *keep)
	if err != nil {
		return err
	}
	defer done()
	rep := report{commands: cmds, started: time.Now()}
	if err := rep.measureCommandPath(ctx, bin, tmp); err != nil {
		return err
	}
	// Last, so that its gigabyte of disk writes does not slow the command
	// path down.
	if rep.archives, err = measureArchives(ctx, bin, filepath.Join(tmp, "archives"), arch); err != nil {
		return fmt.Errorf("archives: %w", err)
	}
	if rep.natsVersion == "" {
		rep.natsVersion = rep.archives.natsVersion
	}
	out := rep.markdown()
	fmt.Print(out)
	if *write != "" {
		return writeBetweenMarkers(*write, "backupbench commands", out)
	}
	return nil
}

// byteSize is a size flag: 512MiB, 1GiB.
type byteSize int64

func (s byteSize) String() string {
	n := int64(s)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.mult && n%u.mult == 0 {
			return fmt.Sprintf("%d%s", n/u.mult, u.suffix)
		}
	}
	return fmt.Sprintf("%dB", n)
}

func (s *byteSize) Set(v string) error {
	n, err := parseSize(v)
	*s = byteSize(n)
	return err
}

// commaList is a flag of comma-separated values; empty is none.
type commaList []string

func (l commaList) String() string { return strings.Join(l, ",") }

func (l *commaList) Set(v string) error {
	*l = nil
	if v != "" {
		*l = strings.Split(v, ",")
	}
	return nil
}

// parseSize reads a size such as 512MiB or 1GiB.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseInt(num, 10, 64)
			if err != nil || n <= 0 {
				return 0, fmt.Errorf("size %q: want e.g. 512MiB or 1GiB", s)
			}
			return n * u.mult, nil
		}
	}
	return 0, fmt.Errorf("size %q: want e.g. 512MiB or 1GiB", s)
}

// human writes n bytes for people: 1.00 GiB, 601.3 MiB.
func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d B", n)
}
