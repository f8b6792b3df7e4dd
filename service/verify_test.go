package service_test

import (
	"strings"
	"testing"
	"time"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/service"
)

func TestVerifier(t *testing.T) {
	r := newRestoreRig(t, nil)
	ctx := t.Context()
	good := r.readyBackup(t, "crm", map[string]string{"a": "1"})
	bad := r.readyBackup(t, "crm", map[string]string{"b": "2"})
	r.archives.corrupt[bad] = true
	clock := r.clock // the ledger's: a check's time is the event's
	v := service.NewVerifier(r.ledger, r.fold, appList{"crm"}, r.archives, clock, 24*time.Hour, nil)

	b, err := v.Verify(ctx, "crm", good, domain.Meta{Actor: "alice"})
	if err != nil || b.VerifiedAt.IsZero() || !b.CorruptAt.IsZero() {
		t.Fatalf("verify good: %+v, %v", b, err)
	}
	b, err = v.Verify(ctx, "crm", bad, domain.Meta{Actor: "alice"})
	if err != nil || b.CorruptAt.IsZero() || !strings.Contains(b.CorruptReason, "does not match") {
		t.Fatalf("verify bad: %+v, %v", b, err)
	}
	if _, err := v.Verify(ctx, "crm", "nope", domain.Meta{Actor: "alice"}); domain.Code(err) != domain.CodeNotFound {
		t.Errorf("unknown backup: %v", err)
	}

	// The sweep checks what is due once per period, whoever sweeps.
	before := strings.Count(strings.Join(r.stream.types("crm"), " "), domain.TypeBackupVerified)
	clock.Advance(25 * time.Hour)
	n, err := v.Sweep(ctx)
	if err != nil || n != 1 {
		t.Fatalf("sweep: %d, %v (the corrupt backup is not checked again)", n, err)
	}
	other := service.NewVerifier(r.ledger, r.fold, appList{"crm"}, r.archives, clock, 24*time.Hour, nil)
	if n, err := other.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("the other replica's sweep checked %d archives again (%v)", n, err)
	}
	after := strings.Count(strings.Join(r.stream.types("crm"), " "), domain.TypeBackupVerified)
	if after != before+1 {
		t.Errorf("%d checks recorded by two sweeps of one period, want 1", after-before)
	}
}

func TestQuote(t *testing.T) {
	r := newRestoreRig(t, nil)
	r.src.set("crm", map[string]string{"a": "12345", "b/c": "1234567890"})
	q := service.NewQuoter(service.SourceSet{Default: r.src}, r.fold, service.QuoteConfig{PricePerGiBMonth: 1 << 30, Currency: "EUR"})
	got, err := q.Quote(t.Context(), "crm")
	if err != nil {
		t.Fatal(err)
	}
	if got.Items != 2 || got.ContentBytes != 15 || got.EstimatedArchiveBytes <= 15 || got.Currency != "EUR" ||
		got.MonthlyCost != float64(got.EstimatedArchiveBytes) {
		t.Errorf("quote = %+v", got)
	}
	r.readyBackup(t, "crm", map[string]string{"a": "1"})
	if got, _ := q.Quote(t.Context(), "crm"); got.StoredBytes != 10 {
		t.Errorf("stored bytes = %d, want the ready backup's 10", got.StoredBytes)
	}
	if _, err := q.Quote(t.Context(), "Bad!"); domain.Code(err) != domain.CodeInvalidArgument {
		t.Errorf("bad app: %v", err)
	}
}
