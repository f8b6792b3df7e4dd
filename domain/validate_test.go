package domain_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/backupledger/backupledger/domain"
)

func TestValidateAppID(t *testing.T) {
	valid := []string{"a", "0", "crm", "a-b_c", "9lives", "a--", "a__", runes("a", 63), "z" + runes("-", 62)}
	invalid := []string{
		"", "A", "Crm", "crM", "-a", "_a", runes("a", 64), "a.b", "a b", " a", "a ", "a/b", "a*", "a>", "a\x00",
		"é", "aé", "crm\n", "日本",
	}
	for _, id := range valid {
		if err := domain.ValidateAppID(id); err != nil {
			t.Errorf("ValidateAppID(%q) = %v, want nil", id, err)
		}
	}
	for _, id := range invalid {
		err := domain.ValidateAppID(id)
		if domain.Code(err) != domain.CodeInvalidArgument {
			t.Errorf("ValidateAppID(%q) = %v, want %s", id, err, domain.CodeInvalidArgument)
		}
	}
}

func TestValidateCommandKey(t *testing.T) {
	valid := []string{"a", "Z", "0", "-", "_", ".", "Idem-Key_1.2", runes("k", 64), "01JDAX3N3Z8Q1V0G5Y9F6K2M4T"}
	invalid := []string{"", runes("k", 65), "a b", "a/b", "a:b", "a|b", "a\x00b", "ü", "key\n", "a+b", "a=b"}
	for _, k := range valid {
		if err := domain.ValidateCommandKey(k); err != nil {
			t.Errorf("ValidateCommandKey(%q) = %v, want nil", k, err)
		}
	}
	for _, k := range invalid {
		if err := domain.ValidateCommandKey(k); domain.Code(err) != domain.CodeInvalidArgument {
			t.Errorf("ValidateCommandKey(%q) = %v, want %s", k, err, domain.CodeInvalidArgument)
		}
	}
}

func TestNormalizeName(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"x", "x", true},
		{"  Before upgrade  ", "Before upgrade", true},
		{"\t\n name \r\n", "name", true},
		{"\u00a0nbsp\u3000", "nbsp", true},
		{runes("a", 100), runes("a", 100), true},
		{runes("é", 100), runes("é", 100), true},
		{runes("日", 100), runes("日", 100), true},
		{runes("😀", 100), runes("😀", 100), true},
		{" " + runes("a", 100) + " ", runes("a", 100), true},
		{"Grüße, 世界", "Grüße, 世界", true},
		{"", "", false},
		{"   ", "", false},
		{runes("a", 101), "", false},
		{runes("é", 101), "", false},
		{runes("😀", 101), "", false},
		{"a\x00b", "", false},
		{"a\nb", "", false},
		{"a\tb", "", false},
		{"a\rb", "", false},
		{"a\x1bb", "", false},
		{"a\x7fb", "", false},
		{"a\u0085b", "", false},
		{"a\u009fb", "", false},
		{"\xff", "", false},
		{"a\xc3", "", false},
	}
	for _, tc := range cases {
		got, err := domain.NormalizeName(tc.in)
		if tc.ok {
			if err != nil || got != tc.want {
				t.Errorf("NormalizeName(%q) = %q, %v; want %q, nil", tc.in, got, err, tc.want)
			}
			continue
		}
		if domain.Code(err) != domain.CodeInvalidArgument || got != "" {
			t.Errorf("NormalizeName(%q) = %q, %v; want an %s error", tc.in, got, err, domain.CodeInvalidArgument)
		}
	}
}

func TestNormalizeDescription(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"", "", true},
		{"   ", "", true},
		{" one\ntwo\tthree ", "one\ntwo\tthree", true},
		{runes("ü", 1000), runes("ü", 1000), true},
		{"\n" + runes("a", 1000) + "\n", runes("a", 1000), true},
		{runes("ü", 1001), "", false},
		{"a\x00b", "", false},
		{"a\x01b", "", false},
		{"a\r\nb", "a\r\nb", true}, // CRLF from HTML forms
		{"a\x7fb", "", false},
		{"a\xffb", "", false},
	}
	for _, tc := range cases {
		got, err := domain.NormalizeDescription(tc.in)
		if tc.ok {
			if err != nil || got != tc.want {
				t.Errorf("NormalizeDescription(%q) = %q, %v; want %q, nil", tc.in, got, err, tc.want)
			}
			continue
		}
		if domain.Code(err) != domain.CodeInvalidArgument {
			t.Errorf("NormalizeDescription(%q) = %q, %v; want an %s error", tc.in, got, err, domain.CodeInvalidArgument)
		}
	}
}

func TestOriginValid(t *testing.T) {
	for _, o := range []domain.Origin{domain.OriginManual, domain.OriginNightly, domain.OriginPreRestore, domain.OriginUpload} {
		if !o.Valid() {
			t.Errorf("%q.Valid() = false", o)
		}
	}
	for _, o := range []domain.Origin{"", "Manual", "weekly", "pre-restore"} {
		if o.Valid() {
			t.Errorf("%q.Valid() = true", o)
		}
	}
}

func TestDefaultRules(t *testing.T) {
	r := domain.DefaultRules()
	if r.MaxBackups != 10 || r.MinInterval != 5*time.Minute || r.Retention != 60*day || r.Location != time.UTC || r.CommandMemory < 1 {
		t.Fatalf("DefaultRules() = %+v", r)
	}
	if err := r.Validate(); err != nil {
		t.Fatalf("DefaultRules().Validate() = %v", err)
	}
}

func TestRulesValidateJoinsErrors(t *testing.T) {
	err := domain.Rules{MaxBackups: 0, MinInterval: -time.Second, Retention: 0, CommandMemory: 0}.Validate()
	if err == nil {
		t.Fatal("Validate of zero rules = nil")
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		t.Fatalf("Validate error %T is not a joined error", err)
	}
	if n := len(joined.Unwrap()); n != 6 {
		t.Fatalf("Validate joined %d errors, want 6: %v", n, err)
	}
	for _, want := range []string{"max backups", "min interval", "retention", "time zone", "command memory", "default nightly schedule"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error %q does not mention %q", err, want)
		}
	}

	one := domain.DefaultRules()
	one.Retention = -time.Hour
	err = one.Validate()
	if err == nil || !strings.Contains(err.Error(), "retention") || strings.Contains(err.Error(), "max backups") {
		t.Fatalf("Validate with a bad retention = %v", err)
	}
	zero := domain.DefaultRules()
	zero.MinInterval = 0
	if err := zero.Validate(); err != nil {
		t.Fatalf("a zero interval is a valid setting, got %v", err)
	}
}

func TestDefaultName(t *testing.T) {
	r := domain.DefaultRules()
	// The example of DESIGN §8.
	if got := r.DefaultName(time.Date(2022, 8, 29, 12, 2, 0, 0, time.UTC)); got != "August 29 Monday 12:02" {
		t.Fatalf("DefaultName = %q, want %q", got, "August 29 Monday 12:02")
	}
	r.Location = time.FixedZone("minus1", -3600)
	if got := r.DefaultName(time.Date(2026, 1, 1, 0, 30, 0, 0, time.UTC)); got != "December 31 Wednesday 23:30" {
		t.Fatalf("DefaultName in -01:00 = %q", got)
	}
	r.Location = nil
	if got := r.DefaultName(t0.In(time.FixedZone("x", 7200))); got != "November 21 Saturday 10:15" {
		t.Fatalf("DefaultName without a zone = %q, want UTC", got)
	}
}
