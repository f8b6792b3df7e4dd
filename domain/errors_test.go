package domain_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/backupledger/backupledger/domain"
)

func TestErrorClassification(t *testing.T) {
	tooSoon := domain.Errorf(domain.CodeTooSoon, "wait %d s", 30)
	tooSoon.RetryAfter = 30 * time.Second
	cases := []struct {
		name   string
		err    error
		code   string
		public string
		retry  time.Duration
	}{
		{"nil", nil, "", "internal error", 0},
		{"rule error", domain.Errorf(domain.CodeNotFound, "backup %s not found", "b1"), domain.CodeNotFound, "backup b1 not found", 0},
		{"wrapped rule error", fmt.Errorf("rename: %w", domain.Errorf(domain.CodeInvalidArgument, "bad name")), domain.CodeInvalidArgument, "bad name", 0},
		{"too soon", tooSoon, domain.CodeTooSoon, "wait 30 s", 30 * time.Second},
		{"wrapped too soon", fmt.Errorf("x: %w", tooSoon), domain.CodeTooSoon, "wait 30 s", 30 * time.Second},
		{"conflict", domain.ErrConflict, domain.CodeConflict, "the app changed concurrently too often; try again", 0},
		{"wrapped conflict", fmt.Errorf("append: %w", domain.ErrConflict), domain.CodeConflict, "the app changed concurrently too often; try again", 0},
		{"unauthenticated", domain.ErrUnauthenticated, domain.CodeUnauthenticated, "missing or invalid bearer token", 0},
		{"internal", errors.New("dial tcp 10.0.0.7:4222: connection refused"), domain.CodeInternal, "internal error", 0},
		{"context", context.Canceled, domain.CodeInternal, "internal error", 0},
		{"joined keeps the rule", errors.Join(errors.New("x"), domain.Errorf(domain.CodeQuotaExceeded, "full")), domain.CodeQuotaExceeded, "full", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := domain.Code(tc.err); got != tc.code {
				t.Errorf("Code = %q, want %q", got, tc.code)
			}
			if got := domain.Public(tc.err); got != tc.public {
				t.Errorf("Public = %q, want %q", got, tc.public)
			}
			if got := domain.RetryAfter(tc.err); got != tc.retry {
				t.Errorf("RetryAfter = %v, want %v", got, tc.retry)
			}
		})
	}
}

func TestErrorString(t *testing.T) {
	err := domain.Errorf(domain.CodeQuotaExceeded, "app %s is full", "crm")
	if got := err.Error(); got != "backup_quota_exceeded: app crm is full" {
		t.Fatalf("Error() = %q", got)
	}
	if err.Code != domain.CodeQuotaExceeded || err.Message != "app crm is full" || err.RetryAfter != 0 {
		t.Fatalf("Errorf = %+v", err)
	}
}

func TestErrorCodesAreFrozen(t *testing.T) {
	codes := map[string]string{
		domain.CodeInvalidArgument: "invalid_argument", domain.CodeNotFound: "not_found",
		domain.CodeQuotaExceeded: "backup_quota_exceeded", domain.CodeTooSoon: "backup_too_soon",
		domain.CodeBackupStateConflict: "backup_state_conflict", domain.CodeConflict: "conflict",
		domain.CodeUnauthenticated: "unauthenticated", domain.CodeUnavailable: "unavailable", domain.CodeInternal: "internal",
		domain.CodeBackupNotReady: "backup_not_ready", domain.CodeBackupCorrupt: "backup_corrupt",
		domain.CodeArchiveInvalid: "archive_invalid", domain.CodeArchiveTooLarge: "archive_too_large",
		domain.CodeArchiveVersion: "unsupported_archive_version",
	}
	for got, want := range codes {
		if got != want {
			t.Errorf("code %q, want the frozen %q", got, want)
		}
	}
}

// TestCorruptArchiveErrorHasACode is a regression test for an oddity
// reported to the lead: Transfers returns the store's error wrapping
// ErrArchiveCorrupt when a download or a staging finds the archive corrupt
// (and marks the backup), but Code classifies it as internal, so a client
// gets "internal error" (HTTP 500, NATS internal) instead of the clear
// backup_corrupt that the next attempt gets.
func TestCorruptArchiveErrorHasACode(t *testing.T) {
	err := fmt.Errorf("verify archive b1: %w", fmt.Errorf("sha256 mismatch: %w", domain.ErrArchiveCorrupt))
	if domain.Code(err) == domain.CodeInternal {
		t.Fatal("fixed bug is back: domain/errors.go:69 (Code): an error wrapping ErrArchiveCorrupt is internal; map it to CodeBackupCorrupt (and Public to a fixed text) as ErrConflict is mapped")
	}
	if got := domain.Code(err); got != domain.CodeBackupCorrupt {
		t.Fatalf("Code = %q, want %q", got, domain.CodeBackupCorrupt)
	}
	if msg := domain.Public(err); msg == "internal error" || strings.Contains(msg, "b1") {
		t.Fatalf("Public = %q, want a fixed text that says the archive is corrupt", msg)
	}
}
