package domain_test

import (
	"testing"
	"time"
	"unicode/utf8"

	"github.com/backupledger/backupledger/domain"
)

func TestDownloadFileName(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatalf("load Europe/Berlin: %v", err)
	}
	ist := time.FixedZone("IST", 5*3600+1800)
	created := time.Date(2026, 8, 29, 12, 2, 0, 0, time.UTC)
	cases := []struct {
		name    string
		backup  string
		created time.Time
		loc     *time.Location
		want    string
	}{
		{"plain", "Nightly backup", created, time.UTC, "Nightly backup_2026-08-29_12-02.zip"},
		{"no location means UTC", "Nightly backup", created, nil, "Nightly backup_2026-08-29_12-02.zip"},
		{"creation time in the given location (CEST)", "Nightly backup", created, berlin, "Nightly backup_2026-08-29_14-02.zip"},
		{"creation time in the given location (CET)", "n", time.Date(2026, 11, 21, 10, 15, 0, 0, time.UTC), berlin, "n_2026-11-21_11-15.zip"},
		{"a half-hour zone crossing midnight", "n", time.Date(2026, 8, 29, 22, 2, 0, 0, time.UTC), ist, "n_2026-08-30_03-32.zip"},
		{"the zone of the time itself does not matter", "n", created.In(ist), time.UTC, "n_2026-08-29_12-02.zip"},
		{"minutes only", "n", created.Add(59*time.Second + 999*time.Millisecond), time.UTC, "n_2026-08-29_12-02.zip"},
		{"path separators", "a/b\\c", created, time.UTC, "a_b_c_2026-08-29_12-02.zip"},
		{"reserved characters", `a:b*c?d"e<f>g|h`, created, time.UTC, "a_b_c_d_e_f_g_h_2026-08-29_12-02.zip"},
		{"control characters", "a\x00b\tc\nd\re\x1ff\x7fg", created, time.UTC, "a_b_c_d_e_f_g_2026-08-29_12-02.zip"},
		{"path traversal", "../../etc/passwd", created, time.UTC, "_.._etc_passwd_2026-08-29_12-02.zip"},
		{"leading and trailing dots and spaces", " ..report. . ", created, time.UTC, "report_2026-08-29_12-02.zip"},
		{"leading and trailing white space", "\t\n report \r\n", created, time.UTC, "report_2026-08-29_12-02.zip"},
		{"inner dots and spaces kept", "v1.2  final", created, time.UTC, "v1.2  final_2026-08-29_12-02.zip"},
		{"empty", "", created, time.UTC, "backup_2026-08-29_12-02.zip"},
		{"only dots and spaces", " . .. ", created, time.UTC, "backup_2026-08-29_12-02.zip"},
		{"only a separator", "/", created, time.UTC, "__2026-08-29_12-02.zip"},
		{"non-ASCII kept", "Sicherung für Ärzte 日本 😀", created, time.UTC, "Sicherung für Ärzte 日本 😀_2026-08-29_12-02.zip"},
		{"the default name of a backup", "August 29 Saturday 12:02", created, time.UTC, "August 29 Saturday 12_02_2026-08-29_12-02.zip"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := domain.DownloadFileName(domain.Backup{Name: tc.backup, CreatedAt: tc.created}, tc.loc)
			if got != tc.want {
				t.Fatalf("DownloadFileName(%q) = %q, want %q", tc.backup, got, tc.want)
			}
		})
	}
}

func TestDownloadFileNameIsValidUTF8(t *testing.T) {
	got := domain.DownloadFileName(domain.Backup{Name: "caf\xe9 \xff", CreatedAt: t0}, time.UTC)
	if !utf8.ValidString(got) {
		t.Fatalf("DownloadFileName = %q, not valid UTF-8", got)
	}
	if want := "caf\uFFFD \uFFFD_2026-11-21_10-15.zip"; got != want {
		t.Fatalf("DownloadFileName = %q, want %q", got, want)
	}
}

// TestDownloadFileNameReplacesC1Controls is a regression test for an
// oddity reported to the lead: DownloadFileName says control characters
// become "_", but it checks only C0 and DEL; C1 controls (U+0080–U+009F,
// unicode.IsControl) stay in the name.
func TestDownloadFileNameReplacesC1Controls(t *testing.T) {
	got := domain.DownloadFileName(domain.Backup{Name: "a\u0085b\u009bc", CreatedAt: t0}, time.UTC)
	if want := "a_b_c_2026-11-21_10-15.zip"; got != want {
		if got == "a\u0085b\u009bc_2026-11-21_10-15.zip" {
			t.Fatal("fixed bug is back: domain/transfer.go:266 (DownloadFileName): C1 control characters are kept; test unicode.IsControl(r) instead of r < 0x20 || r == 0x7f")
		}
		t.Fatalf("DownloadFileName = %q, want %q", got, want)
	}
}

// TestDownloadFileNameFitsFileSystems is a regression test for a bug
// reported to the lead: a valid name of 100 four-byte runes gives a file
// name of 421 bytes, which no common file system takes (ext4, APFS, NTFS:
// 255 bytes or UTF-16 units); saving the download fails.
func TestDownloadFileNameFitsFileSystems(t *testing.T) {
	for _, name := range []string{runes("😀", 100), runes("日", 100), runes("é", 100), runes("a", 100)} {
		if _, err := domain.NormalizeName(name); err != nil {
			t.Fatalf("test data: %q is not a valid name: %v", name, err)
		}
		got := domain.DownloadFileName(domain.Backup{Name: name, CreatedAt: t0}, time.UTC)
		if len(got) > 255 {
			t.Fatal("fixed bug is back: domain/transfer.go:272 (DownloadFileName): a valid name gives a file name over 255 bytes; cut the name (at a rune boundary) to 255 - len(\"_2006-01-02_15-04.zip\") bytes")
		}
		if !utf8.ValidString(got) || len(got) < len("_2026-11-21_10-15.zip")+1 || got[len(got)-len("_2026-11-21_10-15.zip"):] != "_2026-11-21_10-15.zip" {
			t.Fatalf("DownloadFileName = %q: want valid UTF-8 ending in the creation time", got)
		}
	}
}
