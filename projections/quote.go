package projections

import "github.com/backupledger/backupledger/domain"

// QuoteView is the JSON of POST /v1/apps/{app}/backups/quote.
type QuoteView struct {
	App                   string  `json:"app"`
	Items                 int     `json:"items"`
	ContentBytes          int64   `json:"content_bytes"`
	EstimatedArchiveBytes int64   `json:"estimated_archive_bytes"`
	MonthlyCost           float64 `json:"monthly_cost"`
	PricePerGiBMonth      float64 `json:"price_per_gib_month"`
	Currency              string  `json:"currency"`
	StoredBytes           int64   `json:"stored_bytes"`
}

// QuoteViewOf is the view of q.
func QuoteViewOf(q domain.Quote) QuoteView {
	return QuoteView{App: q.App, Items: q.Items, ContentBytes: q.ContentBytes, EstimatedArchiveBytes: q.EstimatedArchiveBytes,
		MonthlyCost: q.MonthlyCost, PricePerGiBMonth: q.PricePerGiBMonth, Currency: q.Currency, StoredBytes: q.StoredBytes}
}
