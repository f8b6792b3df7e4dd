package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/backupledger/backupledger/cmd/backupbench/loadgen"
)

// report is the table of backupbench: the command path's --sync modes, the
// cold start and the archives, whichever of them were measured.
type report struct {
	commands    commandsConfig
	started     time.Time
	natsVersion string
	modes       []*commandsMode
	cold        *coldStart
	archives    *archiveResult
}

// markdown is the table: a sentence on what was measured where, the rows
// in the columns measure, ours, raw, ratio, target and met, and what was
// checked.
func (r *report) markdown() string {
	var b strings.Builder
	r.header(&b)
	fmt.Fprintln(&b, "| measure | ours | raw, same run | ratio | target | met |")
	fmt.Fprintln(&b, "| --- | --- | --- | --- | --- | --- |")
	r.commandRows(&b)
	r.coldRows(&b)
	r.archiveRows(&b)
	fmt.Fprintln(&b)
	var notes []string
	if len(r.modes) > 0 {
		var checked []string
		for _, m := range r.modes {
			checked = append(checked, fmt.Sprintf("%d (`--sync %s`)", m.checkedCommands, m.sync))
		}
		notes = append(notes, fmt.Sprintf("Every acknowledged command was found in `LEDGER` exactly once: %s.", strings.Join(checked, ", ")))
	}
	if a := r.archives; a != nil {
		notes = append(notes, fmt.Sprintf("The archive (%s, the app's %d files) had the ledger's size and sha256 when downloaded and after every upload; runs (s): upload %s; raw put %s; raw get %s; raw get of the app's bytes %.2f.",
			human(a.archiveBytes), a.entries, seconds(a.uploads), seconds(a.rawPutsZ), seconds(a.rawGetsZ), a.rawGet.Seconds()))
	}
	if len(notes) > 0 {
		fmt.Fprintln(&b, strings.Join(notes, "\n\n"))
	}
	return b.String()
}

// header writes the sentence above the table.
func (r *report) header(b *strings.Builder) {
	fmt.Fprintf(b, "Measured %s on %s, %s, nats-server %s (embedded in backupd, R1 file store); backupd a separate process",
		r.started.UTC().Format("2006-01-02"), machine(), runtime.Version(), r.natsVersion)
	if len(r.modes) > 0 || r.cold != nil {
		fmt.Fprintf(b, ", the load from another on the same machine; %d apps, %d clients, %s per run; renames", r.commands.apps, r.commands.clients, r.commands.duration)
	}
	if a := r.archives; a != nil {
		limit := "no `--memory-limit`"
		if a.cfg.memLimit != "" {
			limit = "`--memory-limit " + a.cfg.memLimit + "`"
		}
		timed := "timed once"
		if a.cfg.repeat > 1 {
			timed = fmt.Sprintf("the median of %d runs", a.cfg.repeat)
		}
		fmt.Fprintf(b, "; archives of an app of %s in %d files (dir source; archive %s), `--sync %s`, %s, upload and the raw put and get of the archive %s, the raw baselines on a second backupd's server",
			human(a.appBytes), a.cfg.files, human(a.archiveBytes), a.cfg.sync, limit, timed)
	}
	fmt.Fprint(b, ".\n\n")
}

// commandRows writes the rows of every --sync mode of the command path.
func (r *report) commandRows(b *strings.Builder) {
	targets := map[string][2]float64{"interval": {0.5, 0.35}, "always": {0.85, 0.75}}
	for _, m := range r.modes {
		t := targets[m.sync]
		peak := func(what string, ours *loadgen.Result, target float64) {
			ratio := ours.Throughput() / m.rawPeak.Throughput()
			fmt.Fprintf(b, "| commands/s, %s, `--sync %s` | %.0f/s (p99 %s) | %.0f/s (p99 %s) | %.2f | ≥ %.2f | %s |\n",
				what, m.sync, ours.Throughput(), msStr(ours.Percentile(99)), m.rawPeak.Throughput(), msStr(m.rawPeak.Percentile(99)), ratio, target, yes(ratio >= target))
		}
		peak("NATS API", m.natsPeak, t[0])
		peak("HTTP", m.httpPeak, t[1])
		half := func(what string, ours, raw *loadgen.Result, rate float64) {
			p99, rp99 := ours.Percentile(99), raw.Percentile(99)
			fmt.Fprintf(b, "| p99 at half our peak (%.0f/s), %s, `--sync %s` | %s (p50 %s) | %s (p50 %s) | %.1f× | ≤ 10 ms and ≤ 3× raw | %s |\n",
				rate, what, m.sync, msStr(p99), msStr(ours.Percentile(50)), msStr(rp99), msStr(raw.Percentile(50)), float64(p99)/float64(rp99),
				yes(p99 <= 10*time.Millisecond && p99 <= 3*rp99))
		}
		half("NATS API", m.natsHalf, m.rawNatsHalf, m.natsRate)
		half("HTTP", m.httpHalf, m.rawHTTPHalf, m.httpRate)
	}
}

// coldRows writes the rows of the cold start, if it was measured.
func (r *report) coldRows(b *strings.Builder) {
	if c := r.cold; c != nil {
		ratio, full := c.rate()/c.rawRate(), c.fullRate()/c.rawRate()
		fmt.Fprintf(b, "| cold start: rebuild rate over %d events (%d apps), to `/readyz`, from the snapshot of the stop (after seq %d) | %.0f events/s | ordered-consumer replay %.0f events/s | %.2f | ≥ 0.5 | %s |\n",
			c.events, c.apps, c.snapshotSeq, c.rate(), c.rawRate(), ratio, yes(ratio >= 0.5))
		fmt.Fprintf(b, "| the same without a snapshot, folding the ledger from the start | %.0f events/s | ordered-consumer replay %.0f events/s | %.2f | ≥ 0.5 | %s |\n",
			c.fullRate(), c.rawRate(), full, yes(full >= 0.5))
		fmt.Fprintf(b, "| start to `/readyz` with %d events, from the snapshot / from the start | %.1f s / %.1f s | %.1f s | | ≤ 10 s | %s |\n",
			c.events, c.ready.Seconds(), c.fullReady.Seconds(), c.rawTime.Seconds(), yes(c.ready <= 10*time.Second))
		fmt.Fprintf(b, "| RSS after start with %d events, from the snapshot / from the start; idle with none | %.0f / %.0f MiB; %.0f MiB | | | ≤ 256 / ≤ 64 MiB | %s |\n",
			c.events, mib(c.rss), mib(c.fullRSS), mib(c.idleRSS), yes(c.rss <= 256<<20 && c.fullRSS <= 256<<20 && c.idleRSS <= 64<<20))
	}
}

// archiveRows writes the rows of the archives, if they were measured:
// ratios are raw time over ours, MiB/s and seconds in the cells.
func (r *report) archiveRows(b *strings.Builder) {
	a := r.archives
	if a == nil {
		return
	}
	row := func(what string, bytes int64, ours time.Duration, rawOp string, raw time.Duration) {
		ratio := raw.Seconds() / ours.Seconds()
		fmt.Fprintf(b, "| %s | %s | %s %s | %.2f | ≥ 0.5 | %s |\n", what, mibPerSec(bytes, ours), rawOp, mibPerSec(bytes, raw), ratio, yes(ratio >= 0.5))
	}
	row(fmt.Sprintf("backup create of %s (request to ready)", human(a.appBytes)), a.appBytes, a.create, "object put", a.rawPut)
	row("download of the archive (verified)", a.archiveBytes, a.download, "object get", a.rawGetZ())
	row("upload of the archive (to ready)", a.archiveBytes, a.upload(), "object put", a.rawPutZ())
	fmt.Fprintf(b, "| backupd peak RSS over create, download and upload | %.0f MiB | | | ≤ 128 MiB | %s |\n", mib(a.peakRSS), yes(a.peakRSS <= 128<<20))
}

// mibPerSec writes n bytes in d as MiB/s and seconds.
func mibPerSec(n int64, d time.Duration) string {
	return fmt.Sprintf("%.0f MiB/s (%.2f s)", float64(n)/(1<<20)/d.Seconds(), d.Seconds())
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func msStr(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

// machine describes the CPU and memory of this machine.
func machine() string {
	cpu := runtime.GOARCH
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf(", %.0f GiB", float64(kb)/(1<<20))
		}
	}
	return fmt.Sprintf("%d cores (%s)%s, %s", runtime.NumCPU(), cpu, mem, runtime.GOOS)
}

// writeBetweenMarkers replaces the text between the lines
// "<!-- name: begin -->" and "<!-- name: end -->" of the file at path.
func writeBetweenMarkers(path, name, text string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	begin, end := []byte("<!-- "+name+": begin -->\n"), []byte("<!-- "+name+": end -->")
	i, j := bytes.Index(b, begin), bytes.Index(b, end)
	if i < 0 || j < i {
		return errors.New(path + ": no " + string(bytes.TrimSpace(begin)) + " … " + string(end) + " markers")
	}
	out := append(append(append([]byte{}, b[:i+len(begin)]...), text...), b[j:]...)
	return os.WriteFile(path, out, 0o644)
}
