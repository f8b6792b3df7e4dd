package main

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/backupledger/backupledger/adapters/password"
	"github.com/backupledger/backupledger/cmd/backupd/daemon"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/service"
)

// testToken is the admin token of the backupd every script talks to.
const testToken = "cli-test-admin-token"

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"backupctl": main})
}

// TestScripts runs testdata/script/*.txtar, each against its own backupd
// started in-process (BACKUPCTL_SERVER and BACKUPCTL_TOKEN point at it).
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		Setup:               startBackupd,
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exits":    cmdExits,
			"jsonvar":  cmdJSONVar,
			"zipcheck": cmdZipCheck,
			"sha256of": cmdSHA256Of,
			"perm":     cmdPerm,
			"apps":     cmdApps,
		},
	})
}

// startBackupd starts a backupd for one script: a temporary data dir, HTTP on
// a free port of 127.0.0.1, NATS in-process only, a fixed admin token, and the
// default rules (so a second backup within 5 minutes is backup_too_soon).
// Backups of the app "broken" fail.
func startBackupd(env *testscript.Env) error {
	dir, err := os.MkdirTemp("", "backupctl-backupd-*")
	if err != nil {
		return err
	}
	cfg := daemon.DefaultConfig()
	cfg.DataDir = dir
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.NATS.Listen = daemon.ListenNone
	cfg.Metrics.Addr = daemon.ListenNone // no fixed port: scripts run in parallel
	cfg.AdminToken = testToken
	cfg.NATS.Sync = daemon.SyncInterval
	cfg.ShutdownTimeout = 10 * time.Second
	cfg.Identity.PasswordParams = password.TestParams()
	cfg.Hooks.SourceWrapper = func(s service.Source) service.Source { return brokenApp{s} }
	d, err := daemon.New(cfg)
	if err != nil {
		os.RemoveAll(dir)
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env.Defer(func() {
		if err := d.Close(); err != nil {
			env.T().Log("close backupd:", err)
		}
		os.RemoveAll(dir)
	})
	if err := d.Start(ctx); err != nil {
		return fmt.Errorf("start backupd: %w", err)
	}
	if err := d.WaitReady(ctx); err != nil {
		return fmt.Errorf("backupd not ready: %w", err)
	}
	env.Setenv(envServer, "http://"+d.HTTPAddr())
	env.Setenv(envToken, testToken)
	env.Setenv("ADMIN_TOKEN", testToken)
	return nil
}

// brokenApp is the configuration source, except that the app "broken"
// cannot be exported.
type brokenApp struct{ service.Source }

func (s brokenApp) Export(ctx context.Context, app string, emit func(domain.Item) error) error {
	if app == "broken" {
		return errors.New("app broken cannot be exported")
	}
	return s.Source.Export(ctx, app, emit)
}

// cmdApps registers apps as the server administrator, in the organisation
// "test" (made if need be): an app exists only once registered.
//
//	apps crm billing
func cmdApps(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) == 0 {
		ts.Fatalf("usage: apps APP...")
	}
	do := func(method, path, body string, ok ...int) {
		req, err := http.NewRequest(method, ts.Getenv(envServer)+path, strings.NewReader(body))
		ts.Check(err)
		req.Header.Set("Authorization", "Bearer "+ts.Getenv("ADMIN_TOKEN"))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		ts.Check(err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !slices.Contains(ok, resp.StatusCode) {
			ts.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
	}
	do("POST", "/v1/orgs", `{"id":"test"}`, http.StatusCreated, http.StatusConflict)
	for _, app := range args {
		do("PUT", "/v1/apps/"+app, `{"org":"test"}`, http.StatusOK)
	}
}

// cmdExits runs a program and checks its exit code:
//
//	exits 2 backupctl backup bogus
//
// Its stdout and stderr can be checked afterwards, as after exec.
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits CODE PROGRAM [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		got = ee.ExitCode()
	case err != nil:
		ts.Fatalf("run %s: %v", args[1], err)
	}
	if got != want {
		ts.Fatalf("%s exited with %d, want %d", args[1], got, want)
	}
}

// cmdJSONVar sets an environment variable to a value of the last command's
// JSON stdout, found by a dotted path of keys and indexes:
//
//	jsonvar ID backups.0.id
func cmdJSONVar(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: jsonvar VAR PATH")
	}
	var v any
	if err := json.Unmarshal([]byte(ts.ReadFile("stdout")), &v); err != nil {
		ts.Fatalf("stdout is not JSON: %v", err)
	}
	for key := range strings.SplitSeq(args[1], ".") {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[key]; !ok {
				ts.Fatalf("no %q in %s", key, args[1])
			}
		case []any:
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || i >= len(x) {
				ts.Fatalf("no element %q in %s", key, args[1])
			}
			v = x[i]
		default:
			ts.Fatalf("%s: %q is below a %T", args[1], key, v)
		}
	}
	s, ok := v.(string)
	if !ok {
		s = fmt.Sprint(v)
	}
	ts.Setenv(args[0], s)
}

// cmdZipCheck opens a zip, reads every entry (which checks its CRC-32, as
// "unzip -t" does) and checks that manifest.json and the named entries are
// there:
//
//	zipcheck FILE [ENTRY...]
func cmdZipCheck(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 {
		ts.Fatalf("usage: zipcheck FILE [ENTRY...]")
	}
	zr, err := zip.OpenReader(ts.MkAbs(args[0]))
	ts.Check(err)
	defer zr.Close()
	have := map[string]bool{}
	for _, f := range zr.File {
		rc, err := f.Open()
		ts.Check(err)
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			ts.Fatalf("entry %s: %v", f.Name, err)
		}
		have[f.Name] = true
	}
	for _, want := range append([]string{"manifest.json"}, args[1:]...) {
		if !have[want] {
			ts.Fatalf("%s has no entry %s", args[0], want)
		}
	}
}

// cmdSHA256Of sets an environment variable to the hex SHA-256 of a file:
//
//	sha256of FILE VAR
func cmdSHA256Of(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: sha256of FILE VAR")
	}
	sum := sha256.Sum256([]byte(ts.ReadFile(args[0])))
	ts.Setenv(args[1], hex.EncodeToString(sum[:]))
}

// cmdPerm checks a file's permission bits, in octal:
//
//	perm FILE 0600
func cmdPerm(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: perm FILE MODE")
	}
	want, err := strconv.ParseUint(args[1], 8, 32)
	ts.Check(err)
	st, err := os.Stat(ts.MkAbs(args[0]))
	ts.Check(err)
	if got := st.Mode().Perm(); got != fs.FileMode(want) {
		ts.Fatalf("%s has mode %#o, want %#o", args[0], got, want)
	}
}
