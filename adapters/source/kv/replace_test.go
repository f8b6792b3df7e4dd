package kv_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/backupledger/backupledger/adapters/source/kv"
	"github.com/backupledger/backupledger/domain"
)

// doc is a document key and its value.
type doc struct{ key, value string }

// configItems returns an items function that emits docs in order.
func configItems(docs ...doc) func(func(domain.Item) error) error {
	return func(emit func(domain.Item) error) error {
		for _, d := range docs {
			it := domain.Item{Component: domain.ComponentConfig, Path: d.key, Size: int64(len(d.value)), Body: strings.NewReader(d.value)}
			if err := emit(it); err != nil {
				return err
			}
		}
		return nil
	}
}

// emitted returns an items function that emits its in order, each time
// from the start of bodies that are *strings.Reader.
func emitted(its ...domain.Item) func(func(domain.Item) error) error {
	return func(emit func(domain.Item) error) error {
		for _, it := range its {
			if r, ok := it.Body.(*strings.Reader); ok {
				if _, err := r.Seek(0, io.SeekStart); err != nil {
					return err
				}
			}
			if err := emit(it); err != nil {
				return err
			}
		}
		return nil
	}
}

// exportedOf is what Export gives for docs, sorted by key.
func exportedOf(docs ...doc) []exported {
	var want []exported
	for _, d := range docs {
		want = append(want, exported{d.key, int64(len(d.value)), d.value})
	}
	slices.SortFunc(want, func(a, b exported) int { return strings.Compare(a.path, b.path) })
	return want
}

// put writes docs of app directly.
func put(t *testing.T, s *kv.Source, app string, docs ...doc) {
	t.Helper()
	for _, d := range docs {
		if _, err := s.PutDoc(context.Background(), app, d.key, []byte(d.value)); err != nil {
			t.Fatalf("PutDoc %s %s: %v", app, d.key, err)
		}
	}
}

var (
	oldDocs = []doc{{"keep", "old"}, {"same", "unchanged"}, {"gone", "not in the backup"}, {"settings/theme", `{"dark":false}`}}
	newDocs = []doc{{"settings/theme", `{"dark":true}`}, {"keep", "new"}, {"same", "unchanged"}, {"added/deep/x", "1"}, {"empty", ""}}
	others  = []doc{{"keep", "of crm-2"}, {"gone", "of crm-2"}}
)

func TestReplace(t *testing.T) {
	tests := []struct {
		name  string
		items func(func(domain.Item) error) error
		want  []doc
	}{
		{name: "removes extra keys, keeps and overwrites others", items: configItems(newDocs...), want: newDocs},
		{name: "no items empties the app", items: configItems(), want: nil},
		{name: "empty component means config", items: emitted(domain.Item{Path: "a", Size: 1, Body: strings.NewReader("x")}), want: []doc{{"a", "x"}}},
		{name: "unknown size is not checked", items: emitted(domain.Item{Path: "a", Size: -1, Body: strings.NewReader("xyz")}), want: []doc{{"a", "xyz"}}},
		{name: "no body is an empty document", items: emitted(domain.Item{Path: "a", Size: 0}), want: []doc{{"a", ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s, js := setup(t, kv.Config{})
			put(t, s, "crm", oldDocs...)
			put(t, s, "crm-2", others...)

			if err := s.Replace(ctx, "crm", tt.items); err != nil {
				t.Fatalf("Replace: %v", err)
			}
			if got, want := export(t, s, "crm"), exportedOf(tt.want...); !slices.Equal(got, want) {
				t.Errorf("Export after Replace:\n got %+v\nwant %+v", got, want)
			}
			if got, want := export(t, s, "crm-2"), exportedOf(others...); !slices.Equal(got, want) {
				t.Errorf("other app changed:\n got %+v\nwant %+v", got, want)
			}
			// Twice gives the same result.
			if err := s.Replace(ctx, "crm", tt.items); err != nil {
				t.Fatalf("second Replace: %v", err)
			}
			if got, want := export(t, s, "crm"), exportedOf(tt.want...); !slices.Equal(got, want) {
				t.Errorf("Export after a second Replace:\n got %+v\nwant %+v", got, want)
			}
			var wantKeys []string
			for _, d := range tt.want {
				wantKeys = append(wantKeys, "crm."+d.key)
			}
			for _, d := range others {
				wantKeys = append(wantKeys, "crm-2."+d.key)
			}
			got := bucketKeys(t, js, kv.DefaultBucket)
			slices.Sort(got)
			slices.Sort(wantKeys)
			if !slices.Equal(got, wantKeys) {
				t.Errorf("bucket keys = %q, want %q", got, wantKeys)
			}
		})
	}
}

func TestReplaceDeletesKeysWrittenDirectly(t *testing.T) {
	ctx := context.Background()
	s, js := setup(t, kv.Config{})
	b, err := js.KeyValue(ctx, kv.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	// A key that breaks the document key scheme, written past the package.
	if _, err := b.Put(ctx, "crm.a.", []byte("x")); err == nil {
		t.Fatal("the bucket accepted an invalid key")
	}
	if _, err := b.Put(ctx, "crm.UPPER.and.dots", []byte("direct")); err != nil {
		t.Fatal(err)
	}
	if err := s.Replace(ctx, "crm", configItems(doc{"a", "1"})); err != nil {
		t.Fatalf("Replace: %v", err)
	}
	if got, want := bucketKeys(t, js, kv.DefaultBucket), []string{"crm.a"}; !slices.Equal(got, want) {
		t.Errorf("bucket keys = %q, want %q", got, want)
	}
}

func TestReplaceBadItemChangesNothing(t *testing.T) {
	boom := errors.New("boom")
	item := func(component, path string, size int64, body string) domain.Item {
		return domain.Item{Component: component, Path: path, Size: size, Body: strings.NewReader(body)}
	}
	ok := item(domain.ComponentConfig, "ok", 2, "ok")
	tests := []struct {
		name  string
		cfg   kv.Config
		app   string
		items func(func(domain.Item) error) error
		code  string // "" with err
		err   error
	}{
		{name: "bad app id", app: "CRM", items: configItems(), code: domain.CodeInvalidArgument},
		{name: "other component", items: emitted(ok, item(domain.ComponentFiles, "x", 1, "x")), code: domain.CodeInvalidArgument},
		{name: "bad key", items: emitted(ok, item("", "a//b", 1, "x")), code: domain.CodeInvalidArgument},
		{name: "empty key", items: emitted(ok, item("", "", 1, "x")), code: domain.CodeInvalidArgument},
		{name: "key too long", items: emitted(ok, item("", strings.Repeat("k", kv.MaxKeyLen+1), 1, "x")), code: domain.CodeInvalidArgument},
		{name: "key twice", items: emitted(item("", "ok", 1, "x"), item("", "ok", 1, "y")), code: domain.CodeInvalidArgument},
		{name: "body shorter than size", items: emitted(ok, item("", "x", 5, "abc")), code: domain.CodeInvalidArgument},
		{name: "body longer than size", items: emitted(ok, item("", "x", 2, "abc")), code: domain.CodeInvalidArgument},
		{name: "size over the value limit", cfg: kv.Config{MaxValueBytes: 4}, items: emitted(ok, item("", "x", 5, "abcde")), code: domain.CodeInvalidArgument},
		{name: "unknown size, body over the value limit", cfg: kv.Config{MaxValueBytes: 4}, items: emitted(ok, item("", "x", -1, "abcde")), code: domain.CodeInvalidArgument},
		{name: "too many documents", cfg: kv.Config{MaxReplaceDocs: 2}, items: configItems(doc{"a", ""}, doc{"b", ""}, doc{"c", ""}), code: domain.CodeInvalidArgument},
		{name: "too many bytes", cfg: kv.Config{MaxReplaceBytes: 10}, items: configItems(doc{"a", "1234"}, doc{"b", "1234"}, doc{"c", "1"}), code: domain.CodeInvalidArgument},
		{name: "too many bytes, unknown size", cfg: kv.Config{MaxReplaceBytes: 10}, items: emitted(item("", "a", -1, "1234"), item("", "b", -1, "12345")), code: domain.CodeInvalidArgument},
		{name: "body fails", items: emitted(ok, domain.Item{Path: "x", Size: 3, Body: iotest.ErrReader(boom)}), err: boom},
		{name: "items fails", items: func(emit func(domain.Item) error) error {
			if err := emit(item("", "ok", 2, "ok")); err != nil {
				return err
			}
			return boom
		}, err: boom},
		{name: "items drops emit's error", items: func(emit func(domain.Item) error) error {
			_ = emit(item("", "ok", 2, "ok"))
			_ = emit(item("x", "y", 1, "z"))
			return nil
		}, code: domain.CodeInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s, js := setup(t, tt.cfg)
			put(t, s, "crm", doc{"a", "1"}, doc{"ok", "old"})
			before := messages(t, js, kv.DefaultBucket)
			app := tt.app
			if app == "" {
				app = "crm"
			}

			err := s.Replace(ctx, app, tt.items)
			switch {
			case tt.err != nil && !errors.Is(err, tt.err):
				t.Fatalf("Replace = %v, want %v", err, tt.err)
			case tt.err == nil:
				wantCode(t, err, tt.code)
			}
			if got, want := export(t, s, "crm"), exportedOf(doc{"a", "1"}, doc{"ok", "old"}); !slices.Equal(got, want) {
				t.Errorf("app changed:\n got %+v\nwant %+v", got, want)
			}
			if n := messages(t, js, kv.DefaultBucket); n != before {
				t.Errorf("bucket holds %d messages, had %d: something was written", n, before)
			}
		})
	}
}

func TestReplaceLimitsAreInclusive(t *testing.T) {
	ctx := context.Background()
	s, _ := setup(t, kv.Config{MaxValueBytes: 4, MaxReplaceDocs: 2, MaxReplaceBytes: 10})
	docs := []doc{{"a", "1234"}, {"b", "123"}} // 10 bytes of keys and values
	if err := s.Replace(ctx, "crm", configItems(docs...)); err != nil {
		t.Fatalf("Replace at the limits: %v", err)
	}
	if got, want := export(t, s, "crm"), exportedOf(docs...); !slices.Equal(got, want) {
		t.Errorf("Export = %+v, want %+v", got, want)
	}
}

func TestReplaceRetryAfterAnInterruptedReplace(t *testing.T) {
	// Replace puts every document, then deletes the others: a crash leaves
	// the app in one of these states, and the next Replace makes it right.
	tests := []struct {
		name    string
		puts    []doc
		deletes []string
	}{
		{name: "after some puts", puts: newDocs[:2]},
		{name: "after every put", puts: newDocs},
		{name: "after some deletes", puts: newDocs, deletes: []string{"gone"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s, _ := setup(t, kv.Config{})
			put(t, s, "crm", oldDocs...)
			put(t, s, "crm", tt.puts...)
			for _, key := range tt.deletes {
				if err := s.DeleteDoc(ctx, "crm", key); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Replace(ctx, "crm", configItems(newDocs...)); err != nil {
				t.Fatalf("Replace: %v", err)
			}
			if got, want := export(t, s, "crm"), exportedOf(newDocs...); !slices.Equal(got, want) {
				t.Errorf("Export after the retry:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestReplaceExportRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, _ := setup(t, kv.Config{})
	binary := string(bytes.Repeat([]byte{0, 0xff, '\n', 'x'}, 1000))
	src := []doc{{"bin", binary}, {"a/b.c", "dotted"}, {"v1.2.3", "version"}, {"x=y", "eq"}, {"zero", ""}}
	put(t, s, "src", src...)
	put(t, s, "dst", oldDocs...)

	err := s.Replace(ctx, "dst", func(emit func(domain.Item) error) error {
		return s.Export(ctx, "src", emit)
	})
	if err != nil {
		t.Fatalf("Export → Replace: %v", err)
	}
	if got, want := export(t, s, "dst"), export(t, s, "src"); !slices.Equal(got, want) {
		t.Errorf("exports differ:\n got %+v\nwant %+v", got, want)
	}
	if got, want := export(t, s, "dst"), exportedOf(src...); !slices.Equal(got, want) {
		t.Errorf("Export of dst:\n got %+v\nwant %+v", got, want)
	}
}

func TestReplaceCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s, _ := setup(t, kv.Config{})
	put(t, s, "crm", oldDocs...)
	cancel()
	err := s.Replace(ctx, "crm", configItems(newDocs...))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Replace with a cancelled context = %v, want context.Canceled", err)
	}
	if got, want := export(t, s, "crm"), exportedOf(oldDocs...); !slices.Equal(got, want) {
		t.Errorf("app changed:\n got %+v\nwant %+v", got, want)
	}
}
