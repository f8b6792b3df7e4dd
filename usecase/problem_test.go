package usecase

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/backupledger/backupledger/domain"
)

// domainCodes returns the value of every Code* constant of package domain,
// by the file that declares it.
func domainCodes(t *testing.T) map[string][]string {
	t.Helper()
	files, err := filepath.Glob("../domain/*.go")
	if err != nil {
		t.Fatal(err)
	}
	byFile := map[string][]string{}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, spec := range g.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, id := range vs.Names {
					if !strings.HasPrefix(id.Name, "Code") || i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						t.Errorf("%s: %s is not a string literal", name, id.Name)
						continue
					}
					v, _ := strconv.Unquote(lit.Value)
					byFile[filepath.Base(name)] = append(byFile[filepath.Base(name)], v)
				}
			}
		}
	}
	return byFile
}

// Every error code is declared in domain/errors.go and has one status in
// the table; the table holds no code that nothing declares.
func TestEveryCodeHasOneStatus(t *testing.T) {
	byFile := domainCodes(t)
	for file, codes := range byFile {
		if file != "errors.go" {
			t.Errorf("domain/%s declares codes %v: they belong in domain/errors.go", file, codes)
		}
	}
	declared := map[string]bool{CodeMethodNotAllowed: true, CodePayloadTooLarge: true, CodeUnsupportedMediaType: true}
	for _, c := range byFile["errors.go"] {
		if declared[c] {
			t.Errorf("code %s declared twice", c)
		}
		declared[c] = true
	}
	if len(declared) < 25 {
		t.Fatalf("found only %d codes: %v", len(declared), declared)
	}
	for c := range declared {
		st, ok := statusByCode[c]
		if !ok {
			t.Errorf("code %s has no status", c)
			continue
		}
		if st < 400 || st > 599 || http.StatusText(st) == "" {
			t.Errorf("code %s: status %d is not an error status", c, st)
		}
	}
	for c := range statusByCode {
		if !declared[c] {
			t.Errorf("the table maps %s, which no one declares", c)
		}
	}
}

func TestProblemOf(t *testing.T) {
	for _, tc := range []struct {
		name         string
		err          error
		code         string
		status       int
		detail       string
		retryAfter   int64
		recorded     string
		internal     bool
		instance, tp string
	}{
		{name: "rule", err: domain.Errorf(domain.CodeQuotaExceeded, "ten backups"), code: domain.CodeQuotaExceeded, status: 409, detail: "ten backups"},
		{name: "too soon", err: &domain.Error{Code: domain.CodeTooSoon, Message: "wait", RetryAfter: 1500 * time.Millisecond},
			code: domain.CodeTooSoon, status: 409, detail: "wait", retryAfter: 2},
		{name: "throttled", err: fmt.Errorf("login: %w", &domain.Error{Code: domain.CodeTooManyAttempts, Message: "slow down"}),
			code: domain.CodeTooManyAttempts, status: 429, detail: "slow down", retryAfter: 1},
		{name: "internal", err: errors.New("disk on fire"), code: domain.CodeInternal, status: 500, detail: "internal error", internal: true},
		{name: "corrupt archive", err: fmt.Errorf("read: %w", domain.ErrArchiveCorrupt), code: domain.CodeBackupCorrupt, status: 409,
			detail: "the stored archive does not match the ledger; the backup is marked corrupt"},
		{name: "timeout", err: fmt.Errorf("append: %w", errTimeout), code: domain.CodeUnavailable, status: 503,
			detail: "the request timed out; retry it with the same idempotency key", retryAfter: 1, recorded: domain.RecordedMaybe},
		{name: "no leader", err: fmt.Errorf("append: %w", domain.StoreUnavailable(domain.RecordedNo, errors.New("no responders"))),
			code: domain.CodeUnavailable, status: 503, retryAfter: 2, recorded: domain.RecordedNo,
			detail: "the ledger cannot take writes right now: the command was not recorded; retry"},
		{name: "not confirmed", err: domain.StoreUnavailable(domain.RecordedMaybe, errTimeout),
			code: domain.CodeUnavailable, status: 503, retryAfter: 2, recorded: domain.RecordedMaybe,
			detail: "the ledger did not confirm the write in time: the command may have been recorded; retry with the same Idempotency-Key, which is safe"},
		{name: "fold behind", err: domain.StoreUnavailable(domain.RecordedYes, errTimeout),
			code: domain.CodeUnavailable, status: 503, retryAfter: 2, recorded: domain.RecordedYes,
			detail: "the command was recorded, but this server has not caught up with it yet; retry with the same Idempotency-Key for its result"},
		{name: "typed", err: domain.Errorf(domain.CodeNotFound, "gone"), code: domain.CodeNotFound, status: 404, detail: "gone",
			instance: "/v1/apps/crm", tp: "https://docs.example/errors"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := ProblemOf(tc.err, tc.instance, tc.tp)
			wantType := "about:blank"
			if tc.tp != "" {
				wantType = tc.tp + "#" + tc.code
			}
			if p.Code != tc.code || p.Status != tc.status || p.Detail != tc.detail || p.RetryAfterSeconds != tc.retryAfter || p.Recorded != tc.recorded ||
				p.Internal() != tc.internal || p.Instance != tc.instance || p.Type != wantType || p.Title != http.StatusText(tc.status) {
				t.Errorf("got %+v (internal %v)", p, p.Internal())
			}
		})
	}
}

// errTimeout is what a command that ran out of time returns.
var errTimeout = fmt.Errorf("wait: %w", context.DeadlineExceeded)
