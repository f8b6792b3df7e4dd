package domain

// Quote estimates a backup of an app before it is made.
type Quote struct {
	App   string
	Items int
	// ContentBytes is the size of the app's items.
	ContentBytes int64
	// EstimatedArchiveBytes is an upper bound of the archive: the items
	// stored uncompressed, with the zip's and the manifest's overhead.
	// Compressible content makes the real archive smaller.
	EstimatedArchiveBytes int64
	// MonthlyCost is EstimatedArchiveBytes at PricePerGiBMonth; with the
	// app's other backups, StoredBytes.
	MonthlyCost      float64
	PricePerGiBMonth float64
	Currency         string
	// StoredBytes is what the app's backups hold now.
	StoredBytes int64
}
