package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
)

// backupd is a backupd process of the benchmark.
type backupd struct {
	cmd  *exec.Cmd
	base string
	nc   *nats.Conn
	js   njs.JetStream
}

// workDir makes a temporary directory named after prefix and builds
// backupd into it; done removes the directory unless keep.
func workDir(ctx context.Context, prefix string, keep bool) (dir, bin string, done func(), err error) {
	if dir, err = os.MkdirTemp("", prefix); err != nil {
		return "", "", nil, err
	}
	done = func() {
		if !keep {
			os.RemoveAll(dir)
		}
	}
	if bin, err = buildBackupd(ctx, dir); err != nil {
		done()
		return "", "", nil, err
	}
	return dir, bin, done, nil
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

// backup is a backup as the HTTP API shows it.
type backup struct {
	ID        string  `json:"id"`
	Status    string  `json:"status"`
	SizeBytes int64   `json:"size_bytes"`
	SHA256    string  `json:"sha256"`
	Error     *string `json:"error"`
}

// client calls the HTTP API of a backupd with a bearer token.
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

// download GETs path and returns the bytes read: dropped when file is
// empty, else written to file and checked against the sha256 sum.
func (c *client) download(ctx context.Context, path, file, sum string) (int64, error) {
	resp, err := c.do(ctx, "GET", path, nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return 0, fmt.Errorf("download: %d %s", resp.StatusCode, b)
	}
	if file == "" {
		return io.CopyBuffer(io.Discard, resp.Body, make([]byte, 1<<20))
	}
	f, err := os.Create(file)
	if err != nil {
		return 0, err
	}
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(f, h), resp.Body, make([]byte, 1<<20))
	if err != nil {
		f.Close()
		return n, err
	}
	if err := f.Close(); err != nil {
		return n, err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return n, fmt.Errorf("download sha256 %s, ledger has %s", got, sum)
	}
	return n, nil
}

// waitReady waits for base's /readyz to answer 200, for up to 60 s.
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

// freeAddr is a free loopback address.
func freeAddr() string { return fmt.Sprintf("127.0.0.1:%d", freePort()) }
