package usecase_test

import (
	"context"
	"errors"
	"testing"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/usecase"
)

func TestAdminToken(t *testing.T) {
	ctx := context.Background()
	auth := usecase.NewAdminToken("s3cret-token")
	p, err := auth.Authenticate(ctx, "s3cret-token")
	if err != nil || p != (domain.Principal{ID: "admin", Admin: true}) {
		t.Fatalf("right token = %+v, %v", p, err)
	}
	for _, tok := range []string{"", "wrong", "s3cret-token ", "s3cret-toke", "S3CRET-TOKEN", "s3cret-token\x00"} {
		p, err := auth.Authenticate(ctx, tok)
		if !errors.Is(err, domain.ErrUnauthenticated) || domain.Code(err) != domain.CodeUnauthenticated {
			t.Errorf("token %q: err = %v, want ErrUnauthenticated", tok, err)
		}
		if p != (domain.Principal{}) {
			t.Errorf("token %q: principal %+v, want none", tok, p)
		}
	}
	// An empty configured token accepts nothing, not even an empty token.
	empty := usecase.NewAdminToken("")
	if _, err := empty.Authenticate(ctx, ""); !errors.Is(err, domain.ErrUnauthenticated) {
		t.Fatalf("empty token with an empty admin token: err = %v", err)
	}
}
