package service

import (
	"context"
	"fmt"
	"io"

	"github.com/backupledger/backupledger/domain"
)

// QuoteConfig prices stored archives.
type QuoteConfig struct {
	// PricePerGiBMonth is what one GiB of archive costs to keep for a
	// month; 0 means no price is configured.
	PricePerGiBMonth float64
	// Currency names the price's currency, e.g. "EUR".
	Currency string
}

// zip and manifest overhead per entry: a local header and a central
// directory record (about 46+30 bytes plus the name twice), and a
// manifest line (path, size, SHA-256).
const perEntryOverhead = 200

// Quoter estimates backups.
type Quoter struct {
	sources Sources
	states  States
	cfg     QuoteConfig
}

// NewQuoter returns a quoter.
func NewQuoter(sources Sources, states States, cfg QuoteConfig) *Quoter {
	return &Quoter{sources: sources, states: states, cfg: cfg}
}

// Quote reads the app's current content (its sizes; bodies are not kept)
// and estimates a backup of it now, changing nothing.
func (q *Quoter) Quote(ctx context.Context, app string) (domain.Quote, error) {
	if err := domain.ValidateAppID(app); err != nil {
		return domain.Quote{}, err
	}
	r := domain.Quote{App: app, PricePerGiBMonth: q.cfg.PricePerGiBMonth, Currency: q.cfg.Currency}
	err := q.sources.For(app).Export(ctx, app, func(it domain.Item) error {
		n := it.Size
		if n < 0 {
			var err error
			if n, err = io.Copy(io.Discard, it.Body); err != nil {
				return err
			}
		}
		r.Items++
		r.ContentBytes += n
		r.EstimatedArchiveBytes += n + perEntryOverhead + 2*int64(len(domain.ItemPath(it)))
		return nil
	})
	if err != nil {
		return domain.Quote{}, fmt.Errorf("quote app %s: %w", app, err)
	}
	r.EstimatedArchiveBytes += 22 + 1024 // end of directory, manifest header
	r.MonthlyCost = float64(r.EstimatedArchiveBytes) / (1 << 30) * q.cfg.PricePerGiBMonth
	q.states.ReadApp(app, func(a *domain.App) { r.StoredBytes = a.StoredBytes() })
	return r, nil
}
