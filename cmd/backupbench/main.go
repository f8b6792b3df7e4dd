// Command backupbench measures backups of a large app end to end against a
// real backupd process: creating a backup, downloading and uploading its
// archive, each compared with raw object-store put and get of the same bytes
// on the same NATS server in the same run, and the peak resident memory of
// the backupd process throughout.
//
//	go run ./cmd/backupbench -size 1GiB
//
// It builds backupd, starts it with its embedded NATS server on loopback
// ports and a temporary data dir, fills the files of one app (half JSON-like
// documents, half random bytes) through the dir source, and prints a table.
//
//	go run ./cmd/backupbench load -via nats -apps 64 -clients 32 -duration 10s
//
// sends commands to backupd the way its users do and checks the ledger
// afterwards (load.go, package loadgen): on one backupd, or on replicas on
// an in-process NATS cluster with a server taken down during the run.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/cmd/backupd/daemon"
)

func main() {
	var err error
	switch {
	case len(os.Args) > 1 && os.Args[1] == "load":
		err = runLoad(os.Args[2:])
	case len(os.Args) > 1 && os.Args[1] == "commands":
		err = runCommands(os.Args[2:])
	default:
		err = run()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "backupbench:", err)
		os.Exit(1)
	}
}

type config struct {
	size     int64
	sync     string
	keep     bool
	files    int
	timeout  time.Duration
	memLimit string
	profile  string
	repeat   int
}

func run() error {
	var cfg config
	size := flag.String("size", "1GiB", "total size of the app's files (e.g. 256MiB, 1GiB)")
	flag.StringVar(&cfg.sync, "sync", "interval", `backupd --sync: "interval" or "always"`)
	flag.IntVar(&cfg.files, "files", 64, "number of files the app holds")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the temporary directory")
	flag.DurationVar(&cfg.timeout, "timeout", 20*time.Minute, "bound on the whole run")
	flag.StringVar(&cfg.memLimit, "memory-limit", "96MiB", "backupd --memory-limit of the backupd under test (empty: none)")
	flag.StringVar(&cfg.profile, "profile-upload", "", "write a CPU profile of backupd during the upload to this file")
	flag.IntVar(&cfg.repeat, "repeat", 3, "how many times to time the upload and the raw put and get of the archive")
	flag.Parse()
	if cfg.repeat < 1 {
		return errors.New("-repeat must be at least 1")
	}
	n, err := parseSize(*size)
	if err != nil {
		return err
	}
	cfg.size = n
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()

	tmp, err := os.MkdirTemp("", "backupbench-")
	if err != nil {
		return err
	}
	if !cfg.keep {
		defer os.RemoveAll(tmp)
	}
	bin, err := buildBackupd(ctx, tmp)
	if err != nil {
		return err
	}
	root := filepath.Join(tmp, "files")
	fmt.Fprintf(os.Stderr, "writing %s of files for app big...\n", human(cfg.size))
	if err := fillApp(filepath.Join(root, "big"), cfg.size, cfg.files); err != nil {
		return err
	}
	// Each phase starts with the page cache written back, so that one
	// phase's dirty pages do not slow the next one down.
	syscall.Sync()

	// The raw baseline runs on a backupd of its own, so that its load (the
	// object store client keeps many chunks in flight) does not count in
	// the memory of the backupd under test.
	rawPprof := ""
	if cfg.profile != "" {
		rawPprof = freeAddr()
	}
	rawD, err := startBackupd(ctx, bin, filepath.Join(tmp, "raw"), root, cfg.sync, "", rawPprof)
	if err != nil {
		return err
	}
	defer rawD.stop()
	pprofAddr := ""
	if cfg.profile != "" {
		pprofAddr = freeAddr()
	}
	d, err := startBackupd(ctx, bin, filepath.Join(tmp, "data"), root, cfg.sync, cfg.memLimit, pprofAddr)
	if err != nil {
		return err
	}
	defer d.stop()
	base := d.base
	rawPut, rawGet, err := rawObjectStore(ctx, rawD.js, appReader(filepath.Join(root, "big")), cfg.size)
	if err != nil {
		return err
	}

	syscall.Sync()
	c := &client{base: base, token: "bench"}
	start := time.Now()
	var b backup
	if err := c.json(ctx, "POST", "/v1/apps/big/backups", strings.NewReader(`{"name":"bench"}`), http.StatusAccepted, &b); err != nil {
		return err
	}
	for b.Status != "ready" {
		if b.Status == "failed" {
			return fmt.Errorf("backup failed: %v", b.Error)
		}
		time.Sleep(20 * time.Millisecond)
		if err := c.json(ctx, "GET", "/v1/apps/big/backups/"+b.ID, nil, http.StatusOK, &b); err != nil {
			return err
		}
	}
	create := time.Since(start)

	syscall.Sync()
	// Timed like the raw get: the bytes are counted and dropped (the server
	// verifies them against the ledger before the last ones leave). The
	// copy for the upload is fetched untimed.
	start = time.Now()
	if err := c.download(ctx, "/v1/apps/big/backups/"+b.ID+"/archive", "", ""); err != nil {
		return err
	}
	download := time.Since(start)
	zipPath := filepath.Join(tmp, "archive.zip")
	if err := c.download(ctx, "/v1/apps/big/backups/"+b.ID+"/archive", zipPath, b.SHA256); err != nil {
		return err
	}

	// Upload, then raw put and get of the archive's own bytes (the
	// baselines of upload and download), repeate times in turn: the
	// disk's pace varies by a factor of two from one put to the next, so
	// the table gives the median of each.
	var uploads, rawPuts, rawGets []time.Duration
	for i := range cfg.repeat {
		syscall.Sync()
		profiled := make(chan error, 1)
		profile := cfg.profile != "" && i == 0
		if profile {
			go func() { profiled <- cpuProfile(ctx, pprofAddr, cfg.profile, 4) }()
		}
		f, err := os.Open(zipPath)
		if err != nil {
			return err
		}
		start := time.Now()
		var up backup
		err = c.json(ctx, "POST", fmt.Sprintf("/v1/apps/copy/backups/upload?name=bench-upload-%d", i), f, http.StatusCreated, &up)
		f.Close()
		if err != nil {
			return err
		}
		uploads = append(uploads, time.Since(start))
		if profile {
			if err := <-profiled; err != nil {
				return fmt.Errorf("profile: %w", err)
			}
		}
		if err := c.json(ctx, "DELETE", "/v1/apps/copy/backups/"+up.ID, nil, http.StatusNoContent, nil); err != nil {
			return err
		}

		syscall.Sync()
		if profile {
			go func() { profiled <- cpuProfile(ctx, rawPprof, cfg.profile+".raw", 2) }()
		}
		rawPutZ, rawGetZ, err := rawObjectStore(ctx, rawD.js, fileReader(zipPath), b.SizeBytes)
		if err != nil {
			return err
		}
		rawPuts, rawGets = append(rawPuts, rawPutZ), append(rawGets, rawGetZ)
		if profile {
			if err := <-profiled; err != nil {
				return fmt.Errorf("profile: %w", err)
			}
		}
	}
	peak, err := peakRSS(d.cmd.Process.Pid)
	if err != nil {
		return err
	}
	upload, rawPutZ, rawGetZ := median(uploads), median(rawPuts), median(rawGets)
	mib := func(bytes int64, d time.Duration) float64 { return float64(bytes) / (1 << 20) / d.Seconds() }
	row := func(what string, bytes int64, d, raw time.Duration) {
		ratio := ""
		if raw > 0 {
			ratio = fmt.Sprintf("%.2f", raw.Seconds()/d.Seconds())
		}
		fmt.Printf("%-34s %10s %8.2f %8.0f %8s\n", what, human(bytes), d.Seconds(), mib(bytes, d), ratio)
	}
	fmt.Printf("backupbench: app of %s in %d files, archive %s, --sync %s\n", human(cfg.size), cfg.files, human(b.SizeBytes), cfg.sync)
	fmt.Printf("%-34s %10s %8s %8s %8s\n", "what", "bytes", "seconds", "MiB/s", "ratio")
	row("raw object put (app bytes)", cfg.size, rawPut, 0)
	row("backup create (request to ready)", cfg.size, create, rawPut)
	row("raw object get (archive bytes)", b.SizeBytes, rawGetZ, 0)
	row("download (archive, verified)", b.SizeBytes, download, rawGetZ)
	row("raw object put (archive bytes)", b.SizeBytes, rawPutZ, 0)
	row("upload (archive, to ready)", b.SizeBytes, upload, rawPutZ)
	fmt.Printf("raw object get (app bytes): %.2f s\n", rawGet.Seconds())
	fmt.Printf("runs (s): upload %s; raw put %s; raw get %s\n", seconds(uploads), seconds(rawPuts), seconds(rawGets))
	fmt.Printf("backupd peak RSS (VmHWM) over create, download and upload: %s (--memory-limit %q)\n", human(peak), cfg.memLimit)
	return nil
}

// fillApp writes size bytes in n files under dir: even files JSON-like
// documents, odd files random bytes.
func fillApp(dir string, size int64, n int) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	per := size / int64(n)
	for i := 0; i < n; i++ {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("part-%03d.%s", i, map[bool]string{true: "json", false: "bin"}[i%2 == 0])))
		if err != nil {
			return err
		}
		w := bufio.NewWriterSize(f, 1<<20)
		var src io.Reader = rand.Reader
		if i%2 == 0 {
			src = &jsonish{r: mrand.New(mrand.NewPCG(uint64(i), 7))}
		}
		if _, err := io.CopyN(w, src, per); err != nil {
			f.Close()
			return err
		}
		if err := w.Flush(); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}

// jsonish yields an endless stream of JSON-like records.
type jsonish struct {
	r   *mrand.Rand
	buf []byte
}

func (j *jsonish) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(j.buf) == 0 {
			j.buf = fmt.Appendf(nil, `{"id":%d,"name":"field-%d","type":"text","required":%t,"order":%d,"label":"Label %x"},`+"\n",
				j.r.IntN(1e6), j.r.IntN(1000), j.r.IntN(2) == 0, j.r.IntN(100), j.r.Uint32())
		}
		c := copy(p[n:], j.buf)
		j.buf = j.buf[c:]
		n += c
	}
	return n, nil
}

// appReader streams the files of an app folder one after another.
func appReader(dir string) func() io.Reader {
	return func() io.Reader {
		pr, pw := io.Pipe()
		go func() {
			entries, err := os.ReadDir(dir)
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			for _, e := range entries {
				f, err := os.Open(filepath.Join(dir, e.Name()))
				if err != nil {
					pw.CloseWithError(err)
					return
				}
				_, err = io.Copy(pw, f)
				f.Close()
				if err != nil {
					pw.CloseWithError(err)
					return
				}
			}
			pw.Close()
		}()
		return pr
	}
}

// fileReader streams one file.
func fileReader(path string) func() io.Reader {
	return func() io.Reader {
		f, err := os.Open(path)
		if err != nil {
			pr, pw := io.Pipe()
			pw.CloseWithError(err)
			return pr
		}
		return f
	}
}

// rawObjectStore puts size bytes from open() as one object into a scratch
// bucket and reads it back, timing both.
func rawObjectStore(ctx context.Context, js njs.JetStream, open func() io.Reader, size int64) (time.Duration, time.Duration, error) {
	store, err := js.CreateOrUpdateObjectStore(ctx, njs.ObjectStoreConfig{Bucket: "bench_raw", Storage: njs.FileStorage})
	if err != nil {
		return 0, 0, err
	}
	defer js.DeleteObjectStore(context.WithoutCancel(ctx), "bench_raw")
	// nats.go's Put keeps up to 4000 chunks in flight and gives up when the
	// server acknowledges none for 200 ms ("stalled"), which a busy disk
	// can cause: time the first put that goes through.
	var put time.Duration
	for attempt := 1; ; attempt++ {
		r := open()
		start := time.Now()
		_, err := store.Put(ctx, njs.ObjectMeta{Name: "raw"}, r)
		put = time.Since(start)
		if c, ok := r.(io.Closer); ok {
			c.Close()
		}
		if err == nil {
			break
		}
		if attempt == 3 {
			return 0, 0, fmt.Errorf("raw put: %w", err)
		}
		fmt.Fprintf(os.Stderr, "raw put attempt %d: %v; again\n", attempt, err)
	}
	start := time.Now()
	got, err := store.Get(ctx, "raw")
	if err != nil {
		return 0, 0, err
	}
	n, err := io.Copy(io.Discard, got)
	got.Close()
	if err != nil {
		return 0, 0, fmt.Errorf("raw get: %w", err)
	}
	if n != size {
		return 0, 0, fmt.Errorf("raw get read %d bytes, want %d", n, size)
	}
	return put, time.Since(start), nil
}

// backupd is a backupd process of the benchmark.
type backupd struct {
	cmd  *exec.Cmd
	base string
	nc   *nats.Conn
	js   njs.JetStream
}

// median returns the median of ds (of the middle two, the slower).
func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func seconds(ds []time.Duration) string {
	var parts []string
	for _, d := range ds {
		parts = append(parts, fmt.Sprintf("%.2f", d.Seconds()))
	}
	return strings.Join(parts, " ")
}

// cpuProfile writes a CPU profile of seconds seconds of the backupd whose
// pprof endpoint listens on addr to path.
func cpuProfile(ctx context.Context, addr, path string, seconds int) error {
	req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, seconds), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func startBackupd(ctx context.Context, bin, dataDir, root, sync, memLimit, pprofAddr string) (*backupd, error) {
	args := []string{"--nats-listen", freeAddr(), "--sync", sync, "--admin-token", "bench", "--dir-root", root,
		"--app-source", "big=dir", "--log-level", "warn", "--min-interval", "0s"}
	if memLimit != "" {
		args = append(args, "--memory-limit", memLimit)
	}
	if pprofAddr != "" {
		args = append(args, "--pprof-addr", pprofAddr)
	}
	d, err := startProcess(ctx, bin, dataDir, args)
	if err != nil {
		return nil, err
	}
	// The embedded server asks for a login: the benchmark creates a scratch
	// bucket, so it logs in as backupd itself, with the credentials that
	// backupd wrote into its data dir before it listened.
	if d.nc, d.js, err = connectAs(dataDir, daemon.RoleBackupd); err != nil {
		d.stop()
		return nil, err
	}
	return d, nil
}

// buildBackupd builds backupd into dir and returns the binary's path.
func buildBackupd(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "backupd")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/backupd")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("build backupd: %w", err)
	}
	return bin, nil
}

// startProcess starts bin as backupd with data dir dataDir, an HTTP
// address of its own and args, and returns once it is ready.
func startProcess(ctx context.Context, bin, dataDir string, args []string) (*backupd, error) {
	httpAddr := freeAddr()
	args = append([]string{"--data-dir", dataDir, "--http-addr", httpAddr, "--metrics-addr", freeAddr()}, args...)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start backupd: %w", err)
	}
	d := &backupd{cmd: cmd, base: "http://" + httpAddr}
	if err := waitReady(ctx, d.base); err != nil {
		d.stop()
		return nil, err
	}
	return d, nil
}

func (d *backupd) stop() {
	if d.nc != nil {
		d.nc.Close()
	}
	d.cmd.Process.Signal(os.Interrupt)
	d.cmd.Wait()
}

type backup struct {
	ID        string  `json:"id"`
	Status    string  `json:"status"`
	SizeBytes int64   `json:"size_bytes"`
	SHA256    string  `json:"sha256"`
	Error     *string `json:"error"`
}

type client struct {
	base, token string
}

func (c *client) do(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if f, ok := body.(*os.File); ok {
		// As curl and backupctl do: a file goes with its length, not chunked.
		fi, err := f.Stat()
		if err != nil {
			return nil, err
		}
		req.ContentLength = fi.Size()
	}
	if body != nil {
		if strings.Contains(path, "upload") {
			req.Header.Set("Content-Type", "application/zip")
		} else {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	return http.DefaultClient.Do(req)
}

func (c *client) json(ctx context.Context, method, path string, body io.Reader, want int, v any) error {
	resp, err := c.do(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if v == nil {
		return nil
	}
	return json.Unmarshal(b, v)
}

func (c *client) download(ctx context.Context, path, file, sum string) error {
	resp, err := c.do(ctx, "GET", path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("download: %d %s", resp.StatusCode, b)
	}
	if file == "" {
		_, err := io.CopyBuffer(io.Discard, resp.Body, make([]byte, 1<<20))
		return err
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.CopyBuffer(io.MultiWriter(f, h), resp.Body, make([]byte, 1<<20)); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return fmt.Errorf("download sha256 %s, ledger has %s", got, sum)
	}
	return nil
}

func waitReady(ctx context.Context, base string) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/readyz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("backupd not ready after 60s")
}

// peakRSS reads the peak resident set size of a process from /proc.
func peakRSS(pid int) (int64, error) { return procStatus(pid, "VmHWM") }

// procStatus reads a size field of /proc/<pid>/status (VmRSS, VmHWM) in
// bytes.
func procStatus(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

func freeAddr() string { return fmt.Sprintf("127.0.0.1:%d", freePort()) }

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

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d B", n)
}
