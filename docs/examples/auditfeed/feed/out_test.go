package feed

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestOpenOutRecovers(t *testing.T) {
	long := strings.Repeat("x", 100<<10) // longer than one read of the tail
	for _, tc := range []struct {
		name, content string
		last          int // lines asked of lastLines
		wantFile      string
		wantLast      []string
	}{
		{"new file", "", 2, "", nil},
		{"complete lines", "a\nb\nc\n", 2, "a\nb\nc\n", []string{"b", "c"}},
		{"fewer lines than asked", "a\n", 4, "a\n", []string{"a"}},
		{"an incomplete last line", "a\nb\n{\"id\":", 4, "a\nb\n", []string{"a", "b"}},
		{"only an incomplete line", "{\"id\":", 4, "", nil},
		{"none asked", "a\nb\n", 0, "a\nb\n", nil},
		{"long lines", "a\n" + long + "\n" + long + "b\n" + "c", 2, "a\n" + long + "\n" + long + "b\n", []string{long, long + "b"}},
		{"long lines, one asked", "a\n" + long + "\n" + long + "b\n", 1, "a\n" + long + "\n" + long + "b\n", []string{long + "b"}},
		{"an incomplete long line", "a\n" + long, 3, "a\n", []string{"a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.jsonl")
			if tc.content != "" {
				if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			o, err := openOut(path)
			if err != nil {
				t.Fatal(err)
			}
			lines, err := o.lastLines(tc.last)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, l := range lines {
				got = append(got, string(l))
			}
			if !slices.Equal(got, tc.wantLast) {
				t.Errorf("last lines %.40q, want %.40q", got, tc.wantLast)
			}
			if want := int64(len(tc.content) - len(tc.wantFile)); o.truncated != want {
				t.Errorf("truncated %d bytes, want %d", o.truncated, want)
			}
			if err := o.write([]byte("new")); err != nil {
				t.Fatal(err)
			}
			if err := o.sync(); err != nil {
				t.Fatal(err)
			}
			o.close()
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := string(b), tc.wantFile+"new\n"; got != want {
				t.Errorf("file holds %.40q…, want %.40q…", got, want)
			}
		})
	}
}
