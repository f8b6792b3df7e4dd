package main

import (
	"archive/zip"
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/cmd/backupbench/loadgen"
	"github.com/backupledger/backupledger/cmd/backupd/daemon"
)

const archivesUsage = `usage: backupbench archives [flags]

Measures backups of a large app end to end against a real backupd process:
creating a backup, downloading and uploading its archive, each compared
with raw object-store put and get of the same bytes in the same run (on a
second backupd's embedded server, so that the raw client's load does not
count in the memory of the backupd under test), and the peak resident
memory of the backupd under test. It fills the files of one app (half
JSON-like documents, half random bytes) through the dir source and prints
the archive rows of the table of backupbench. It fails on errors and wrong
results, never on timing.

`

// archiveConfig is what the archive measurement is given: the flags of
// `backupbench archives` and the archive flags of the default run.
type archiveConfig struct {
	size     byteSize
	sync     string
	files    int
	memLimit string
	profile  string
	repeat   int
}

// register adds the archive flags to fs; the --sync of the backupd under
// test is the flag syncFlag.
func (cfg *archiveConfig) register(fs *flag.FlagSet, syncFlag string) {
	cfg.size = 1 << 30
	fs.Var(&cfg.size, "size", "total `size` of the app's files (e.g. 256MiB, 1GiB)")
	fs.StringVar(&cfg.sync, syncFlag, "interval", `backupd --sync of the archive measurement: "interval" or "always"`)
	fs.IntVar(&cfg.files, "files", 64, "number of files the app holds")
	fs.StringVar(&cfg.memLimit, "memory-limit", "96MiB", "backupd --memory-limit of the backupd under test (empty: none)")
	fs.StringVar(&cfg.profile, "profile-upload", "", "write a CPU profile of backupd during the upload to this file")
	fs.IntVar(&cfg.repeat, "repeat", 3, "how many times to time the upload and the raw put and get of the archive")
}

// validate returns the errors of cfg, joined.
func (cfg *archiveConfig) validate() error {
	var errs []error
	if cfg.sync != "interval" && cfg.sync != "always" {
		errs = append(errs, fmt.Errorf("--sync %q of the archives: interval or always", cfg.sync))
	}
	if cfg.files < 1 {
		errs = append(errs, errors.New("-files must be at least 1"))
	}
	if int64(cfg.size) < int64(cfg.files) {
		errs = append(errs, fmt.Errorf("-size %s: at least a byte a file", cfg.size))
	}
	if cfg.repeat < 1 {
		errs = append(errs, errors.New("-repeat must be at least 1"))
	}
	return errors.Join(errs...)
}

// quicken makes cfg the short form of CI: at most 32 MiB, timed once.
func (cfg *archiveConfig) quicken() {
	cfg.size, cfg.repeat, cfg.profile = min(cfg.size, 32<<20), 1, ""
}

func runArchives(args []string) error {
	var cfg archiveConfig
	fs := flag.NewFlagSet("backupbench archives", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), archivesUsage)
		fs.PrintDefaults()
	}
	cfg.register(fs, "sync")
	keep := fs.Bool("keep", false, "keep the temporary directory")
	timeout := fs.Duration("timeout", 20*time.Minute, "bound on the whole run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("archives: unexpected arguments %q", fs.Args())
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	tmp, bin, done, err := workDir(ctx, "backupbench-archives-", *keep)
	if err != nil {
		return err
	}
	defer done()
	rep := report{started: time.Now()}
	if rep.archives, err = measureArchives(ctx, bin, filepath.Join(tmp, "archives"), cfg); err != nil {
		return err
	}
	rep.natsVersion = rep.archives.natsVersion
	fmt.Print(rep.markdown())
	return nil
}

// archiveResult is what the archive measurement measured. The raw
// baselines ran on a backupd of their own, on the same machine in the same
// run.
type archiveResult struct {
	cfg          archiveConfig
	natsVersion  string
	appBytes     int64 // the app's files, all of them
	archiveBytes int64
	entries      int // the app's files found in the downloaded archive

	create   time.Duration // request to ready
	rawPut   time.Duration // of the app's bytes
	rawGet   time.Duration // of the app's bytes
	download time.Duration // verified by the server, dropped by the client
	uploads  []time.Duration
	rawPutsZ []time.Duration // of the archive's bytes, as many as uploads
	rawGetsZ []time.Duration
	peakRSS  int64 // VmHWM of the backupd under test, at the end
}

// upload, rawPutZ and rawGetZ are the medians of the timed runs: the
// disk's pace varies by a factor of two from one put to the next.
func (r *archiveResult) upload() time.Duration  { return median(r.uploads) }
func (r *archiveResult) rawPutZ() time.Duration { return median(r.rawPutsZ) }
func (r *archiveResult) rawGetZ() time.Duration { return median(r.rawGetsZ) }

// measureArchives fills an app of cfg.size under dir, starts backupd from
// bin twice (the one under test, and one for the raw baselines), and
// times a backup's creation, the download of its archive and cfg.repeat
// uploads of it against raw object-store put and get of the same bytes.
// It returns an error when a step fails or gives a wrong result: a failed
// backup, a byte count or sha256 other than the ledger's, an archive
// without the app's files.
func measureArchives(ctx context.Context, bin, dir string, cfg archiveConfig) (*archiveResult, error) {
	root := filepath.Join(dir, "files")
	fmt.Fprintf(os.Stderr, "archives: writing %s of files for app big...\n", human(int64(cfg.size)))
	appBytes, err := fillApp(filepath.Join(root, "big"), int64(cfg.size), cfg.files)
	if err != nil {
		return nil, err
	}
	r := &archiveResult{cfg: cfg, appBytes: appBytes}
	// Each phase starts with the page cache written back, so that one
	// phase's dirty pages do not slow the next one down.
	syscall.Sync()

	// The raw baseline runs on a backupd of its own, so that its load (the
	// object store client keeps many chunks in flight) does not count in
	// the memory of the backupd under test.
	rawPprof, pprofAddr := "", ""
	if cfg.profile != "" {
		rawPprof, pprofAddr = freeAddr(), freeAddr()
	}
	rawD, err := startBackupd(ctx, bin, filepath.Join(dir, "raw"), root, cfg.sync, "", rawPprof)
	if err != nil {
		return nil, err
	}
	defer rawD.stop()
	d, err := startBackupd(ctx, bin, filepath.Join(dir, "data"), root, cfg.sync, cfg.memLimit, pprofAddr)
	if err != nil {
		return nil, err
	}
	defer d.stop()
	r.natsVersion = d.nc.ConnectedServerVersion()
	// Every route of an app answers 404 until the app is registered in an
	// organisation: big is backed up, copy takes the uploads.
	c := &client{base: d.base, token: "bench"}
	if err := c.json(ctx, "POST", "/v1/orgs", strings.NewReader(`{"id":"bench"}`), http.StatusCreated, nil); err != nil {
		return nil, err
	}
	for _, app := range []string{"big", "copy"} {
		if err := c.json(ctx, "PUT", "/v1/apps/"+app, strings.NewReader(`{"org":"bench"}`), http.StatusOK, nil); err != nil {
			return nil, err
		}
	}
	fmt.Fprintln(os.Stderr, "archives: raw put and get of the app's bytes...")
	if r.rawPut, r.rawGet, err = rawObjectStore(ctx, rawD.js, appReader(filepath.Join(root, "big")), appBytes); err != nil {
		return nil, err
	}

	syscall.Sync()
	fmt.Fprintln(os.Stderr, "archives: backup create...")
	start := time.Now()
	var b backup
	if err := c.json(ctx, "POST", "/v1/apps/big/backups", strings.NewReader(`{"name":"bench"}`), http.StatusAccepted, &b); err != nil {
		return nil, err
	}
	for b.Status != "ready" {
		if b.Status == "failed" {
			return nil, fmt.Errorf("backup failed: %v", b.Error)
		}
		time.Sleep(20 * time.Millisecond)
		if err := c.json(ctx, "GET", "/v1/apps/big/backups/"+b.ID, nil, http.StatusOK, &b); err != nil {
			return nil, err
		}
	}
	r.create = time.Since(start)
	if b.SizeBytes <= 0 || b.SHA256 == "" {
		return nil, fmt.Errorf("backup %s is ready with size %d and sha256 %q", b.ID, b.SizeBytes, b.SHA256)
	}
	r.archiveBytes = b.SizeBytes

	syscall.Sync()
	fmt.Fprintln(os.Stderr, "archives: download...")
	// Timed like the raw get: the bytes are counted and dropped (the server
	// verifies them against the ledger before the last ones leave). The
	// copy for the upload is fetched untimed, and checked here too.
	archivePath := "/v1/apps/big/backups/" + b.ID + "/archive"
	start = time.Now()
	n, err := c.download(ctx, archivePath, "", "")
	if err != nil {
		return nil, err
	}
	r.download = time.Since(start)
	if n != b.SizeBytes {
		return nil, fmt.Errorf("download read %d bytes, the ledger has %d", n, b.SizeBytes)
	}
	zipPath := filepath.Join(dir, "archive.zip")
	if n, err = c.download(ctx, archivePath, zipPath, b.SHA256); err != nil {
		return nil, err
	}
	if n != b.SizeBytes {
		return nil, fmt.Errorf("download read %d bytes, the ledger has %d", n, b.SizeBytes)
	}
	if r.entries, err = checkArchive(zipPath, cfg.files, appBytes); err != nil {
		return nil, err
	}

	// Upload, then raw put and get of the archive's own bytes (the
	// baselines of upload and download), cfg.repeat times in turn.
	for i := range cfg.repeat {
		fmt.Fprintf(os.Stderr, "archives: upload and raw put and get of the archive, %d of %d...\n", i+1, cfg.repeat)
		syscall.Sync()
		profiled := make(chan error, 1)
		profile := cfg.profile != "" && i == 0
		if profile {
			go func() { profiled <- cpuProfile(ctx, pprofAddr, cfg.profile, 4) }()
		}
		f, err := os.Open(zipPath)
		if err != nil {
			return nil, err
		}
		start := time.Now()
		var up backup
		err = c.json(ctx, "POST", fmt.Sprintf("/v1/apps/copy/backups/upload?name=bench-upload-%d", i), f, http.StatusCreated, &up)
		f.Close()
		if err != nil {
			return nil, err
		}
		r.uploads = append(r.uploads, time.Since(start))
		if up.Status != "ready" || up.SizeBytes != b.SizeBytes || up.SHA256 != b.SHA256 {
			return nil, fmt.Errorf("upload %d: %s with size %d and sha256 %s, want ready with %d and %s",
				i, up.Status, up.SizeBytes, up.SHA256, b.SizeBytes, b.SHA256)
		}
		if profile {
			if err := <-profiled; err != nil {
				return nil, fmt.Errorf("profile: %w", err)
			}
		}
		if err := c.json(ctx, "DELETE", "/v1/apps/copy/backups/"+up.ID, nil, http.StatusNoContent, nil); err != nil {
			return nil, err
		}

		syscall.Sync()
		if profile {
			go func() { profiled <- cpuProfile(ctx, rawPprof, cfg.profile+".raw", 2) }()
		}
		rawPutZ, rawGetZ, err := rawObjectStore(ctx, rawD.js, fileReader(zipPath), b.SizeBytes)
		if err != nil {
			return nil, err
		}
		r.rawPutsZ, r.rawGetsZ = append(r.rawPutsZ, rawPutZ), append(r.rawGetsZ, rawGetZ)
		if profile {
			if err := <-profiled; err != nil {
				return nil, fmt.Errorf("profile: %w", err)
			}
		}
	}
	if r.peakRSS, err = peakRSS(d.cmd.Process.Pid); err != nil {
		return nil, err
	}
	return r, nil
}

// checkArchive opens the zip file and checks that it holds the files of
// the app as fillApp wrote them: files entries named part-NNN, of
// appBytes bytes in all. It returns how many it found.
func checkArchive(file string, files int, appBytes int64) (int, error) {
	z, err := zip.OpenReader(file)
	if err != nil {
		return 0, fmt.Errorf("archive: %w", err)
	}
	defer z.Close()
	n, total := 0, int64(0)
	for _, f := range z.File {
		if strings.HasPrefix(path.Base(f.Name), "part-") && !f.FileInfo().IsDir() {
			n++
			total += int64(f.UncompressedSize64)
		}
	}
	if n != files || total != appBytes {
		return 0, fmt.Errorf("archive holds %d of the app's files with %d bytes, want %d with %d", n, total, files, appBytes)
	}
	return n, nil
}

// fillApp writes about size bytes in n files under dir: even files
// JSON-like documents, odd files random bytes. It returns the bytes
// written (size rounded down to a multiple of n).
func fillApp(dir string, size int64, n int) (int64, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return 0, err
	}
	per := size / int64(n)
	for i := 0; i < n; i++ {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("part-%03d.%s", i, map[bool]string{true: "json", false: "bin"}[i%2 == 0])))
		if err != nil {
			return 0, err
		}
		w := bufio.NewWriterSize(f, 1<<20)
		var src io.Reader = rand.Reader
		if i%2 == 0 {
			src = &jsonish{r: mrand.New(mrand.NewPCG(uint64(i), 7))}
		}
		if _, err := io.CopyN(w, src, per); err != nil {
			f.Close()
			return 0, err
		}
		if err := w.Flush(); err != nil {
			f.Close()
			return 0, err
		}
		if err := f.Close(); err != nil {
			return 0, err
		}
	}
	return per * int64(n), nil
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
	// can cause (three tries in a row stalled right after the cold start's
	// million events): time the first put that goes through.
	var put time.Duration
	for attempt := 1; ; attempt++ {
		r := open()
		start := time.Now()
		info, err := store.Put(ctx, njs.ObjectMeta{Name: "raw"}, r)
		put = time.Since(start)
		if c, ok := r.(io.Closer); ok {
			c.Close()
		}
		if err == nil && info.Size != uint64(size) {
			return 0, 0, fmt.Errorf("raw put stored %d bytes, want %d", info.Size, size)
		}
		if err == nil {
			break
		}
		if attempt == 6 {
			return 0, 0, fmt.Errorf("raw put: %w", err)
		}
		// Let the disk catch up (the dirty pages written back) before the
		// next try.
		fmt.Fprintf(os.Stderr, "raw put attempt %d: %v; again\n", attempt, err)
		syscall.Sync()
		if !loadgen.Sleep(ctx, 2*time.Second) {
			return 0, 0, ctx.Err()
		}
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

// startBackupd starts the backupd of the archive measurement: its
// embedded server, the dir source over root with the app big, and a login
// as backupd itself for the raw baseline's scratch bucket.
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

// median returns the median of ds (of the middle two, the slower).
func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// seconds lists ds in seconds.
func seconds(ds []time.Duration) string {
	var parts []string
	for _, d := range ds {
		parts = append(parts, fmt.Sprintf("%.2f", d.Seconds()))
	}
	return strings.Join(parts, " ")
}
