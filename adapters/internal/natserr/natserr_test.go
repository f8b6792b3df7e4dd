package natserr_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/internal/natserr"
	"github.com/backupledger/backupledger/domain"
)

func TestWriteAndRead(t *testing.T) {
	other := errors.New("disk full")
	for _, tc := range []struct {
		name           string
		err            error
		sent           bool
		code, recorded string
	}{
		{"no leader", fmt.Errorf("publish: %w", njs.ErrNoStreamResponse), true, domain.CodeUnavailable, domain.RecordedNo},
		{"no responders", nats.ErrNoResponders, true, domain.CodeUnavailable, domain.RecordedNo},
		{"server 503", &njs.APIError{Code: 503, Description: "JetStream system temporarily unavailable"}, true, domain.CodeUnavailable, domain.RecordedNo},
		{"server 503 to the legacy API (a listing of keys)", fmt.Errorf("list: %w", &nats.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}), true, domain.CodeUnavailable, domain.RecordedNo},
		{"not confirmed", context.DeadlineExceeded, true, domain.CodeUnavailable, domain.RecordedMaybe},
		{"async publish not confirmed", fmt.Errorf("chunk: %w", njs.ErrAsyncPublishTimeout), true, domain.CodeUnavailable, domain.RecordedMaybe},
		{"reconnecting", nats.ErrConnectionReconnecting, true, domain.CodeUnavailable, domain.RecordedMaybe},
		{"first copy in flight", &njs.APIError{Code: 409, ErrorCode: 10158, Description: "duplicate message id is in process"}, true, domain.CodeUnavailable, domain.RecordedMaybe},
		{"timeout before sending", nats.ErrTimeout, false, domain.CodeUnavailable, domain.RecordedNo},
		{"other api error", &njs.APIError{Code: 400, Description: "bad request"}, true, domain.CodeInternal, ""},
		{"other", other, true, domain.CodeInternal, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := natserr.Write(tc.err, tc.sent)
			if domain.Code(err) != tc.code || domain.RecordedOf(err) != tc.recorded {
				t.Errorf("Write = %v (code %s, recorded %q), want %s, %q", err, domain.Code(err), domain.RecordedOf(err), tc.code, tc.recorded)
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("Write lost its cause: %v", err)
			}
			read := natserr.Read(tc.err)
			wantRead := domain.CodeInternal
			if tc.code == domain.CodeUnavailable {
				wantRead = domain.CodeUnavailable
			}
			if domain.Code(read) != wantRead || domain.RecordedOf(read) != "" {
				t.Errorf("Read = %v, want code %s and no recorded", read, wantRead)
			}
		})
	}
}
