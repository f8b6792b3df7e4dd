package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/backupledger/backupledger/projections"
)

// humanSize formats n bytes with binary units: "512 B", "1.2 KiB", "3.0 GiB".
func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// minute formats t as "2006-01-02 15:04" in UTC, as the tables show times.
func minute(t time.Time) string { return t.UTC().Format("2006-01-02 15:04") }

// second formats t as "2006-01-02 15:04:05 UTC", or "-" for none.
func second(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// clean makes server-supplied text safe for one table cell or line: control
// characters (tabs, newlines, escape sequences) become spaces.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

// writeJSON prints a server's JSON answer indented, ending with a newline.
func writeJSON(w io.Writer, raw []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace(raw), "", "  "); err != nil {
		return fmt.Errorf("server answered invalid JSON: %w", err)
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// printJSON prints a document of backupctl's own (not the server's), in the
// same style as writeJSON.
func printJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeJSON(w, b)
}

// table is an aligned table of text cells.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, headers ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.row(headers...)
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		if i > 0 {
			fmt.Fprint(t.tw, "\t")
		}
		fmt.Fprint(t.tw, clean(c))
	}
	fmt.Fprint(t.tw, "\n")
}

func (t *table) flush() error { return t.tw.Flush() }

// statusText is a backup's status as people read it; a corrupt archive
// shows beside the status.
func statusText(b projections.BackupView) string {
	if b.CorruptAt != nil {
		return b.Status + " (corrupt)"
	}
	return b.Status
}

// sizeText is a backup's size, "-" before it is ready.
func sizeText(b projections.BackupView) string {
	if b.Status != "ready" && b.SizeBytes == 0 {
		return "-"
	}
	return humanSize(b.SizeBytes)
}

// printBackups prints backups as a table: ID, Name, App, Created (UTC),
// Status, Size.
func printBackups(w io.Writer, backups []projections.BackupView) error {
	t := newTable(w, "ID", "NAME", "APP", "CREATED (UTC)", "STATUS", "SIZE")
	for _, b := range backups {
		t.row(b.ID, b.Name, b.App, minute(b.CreatedAt), statusText(b), sizeText(b))
	}
	return t.flush()
}

// printBackup prints one backup as aligned "field: value" lines.
func printBackup(w io.Writer, b projections.BackupView) error {
	t := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	line := func(k, v string) { fmt.Fprintf(t, "%s:\t%s\n", k, clean(v)) }
	line("ID", b.ID)
	line("App", b.App)
	line("Name", b.Name)
	if b.Description != "" {
		line("Description", b.Description)
	}
	line("Status", statusText(b))
	line("Origin", b.Origin)
	line("Created by", b.CreatedBy)
	line("Created", second(&b.CreatedAt))
	line("Completed", second(b.CompletedAt))
	line("Expires", second(&b.ExpiresAt))
	if b.Status == "ready" {
		line("Size", fmt.Sprintf("%s (%d bytes)", humanSize(b.SizeBytes), b.SizeBytes))
		line("Items", fmt.Sprint(b.ItemCount))
		line("Schema version", fmt.Sprint(b.SchemaVersion))
	}
	if b.SHA256 != nil {
		line("SHA-256", *b.SHA256)
	}
	if b.Source != "" {
		line("Source", b.Source)
	}
	if b.Error != nil {
		line("Error", *b.Error)
	}
	if b.CorruptAt != nil {
		reason := ""
		if b.CorruptReason != nil {
			reason = ": " + *b.CorruptReason
		}
		line("Corrupt", second(b.CorruptAt)+reason)
	}
	if o := b.Original; o != nil {
		line("Uploaded from", fmt.Sprintf("backup %s (%q) of app %s, created %s", o.BackupID, o.Name, o.App, second(&o.CreatedAt)))
	}
	return t.Flush()
}
