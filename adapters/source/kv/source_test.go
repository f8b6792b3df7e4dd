package kv_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/source/kv"
	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/test/natstest"
)

func setup(t *testing.T, cfg kv.Config) (*kv.Source, jetstream.JetStream) {
	t.Helper()
	_, js := natstest.Connect(t, natstest.Server(t, ""))
	s, err := kv.New(context.Background(), js, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s, js
}

// bucketKeys returns every key of the bucket that is not deleted, as any
// client of the bucket sees them.
func bucketKeys(t *testing.T, js jetstream.JetStream, bucket string) []string {
	t.Helper()
	b, err := js.KeyValue(context.Background(), bucket)
	if err != nil {
		t.Fatalf("bucket: %v", err)
	}
	keys, err := b.Keys(context.Background())
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil
	}
	if err != nil {
		t.Fatalf("keys: %v", err)
	}
	return keys
}

// messages returns how many messages the bucket's stream holds, values and
// delete markers alike.
func messages(t *testing.T, js jetstream.JetStream, bucket string) uint64 {
	t.Helper()
	b, err := js.KeyValue(context.Background(), bucket)
	if err != nil {
		t.Fatalf("bucket: %v", err)
	}
	st, err := b.Status(context.Background())
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	return st.Values()
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var e *domain.Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("err = %v, want *domain.Error with code %s", err, code)
	}
}

func keysOf(docs []domain.ConfigDoc) []string {
	var keys []string
	for _, d := range docs {
		keys = append(keys, d.Key)
	}
	return keys
}

type exported struct {
	path string
	size int64
	body string
}

func export(t *testing.T, s *kv.Source, app string) []exported {
	t.Helper()
	var got []exported
	err := s.Export(context.Background(), app, func(it domain.Item) error {
		b, err := io.ReadAll(it.Body)
		if err != nil {
			return err
		}
		got = append(got, exported{it.Path, it.Size, string(b)})
		return nil
	})
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	return got
}

func TestPutGetListDelete(t *testing.T) {
	ctx := context.Background()
	s, _ := setup(t, kv.Config{})

	doc, err := s.PutDoc(ctx, "crm", "settings/theme", []byte(`{"dark":true}`))
	if err != nil {
		t.Fatalf("PutDoc: %v", err)
	}
	if doc.Key != "settings/theme" || doc.Size != 13 || doc.Revision == 0 || doc.Updated.IsZero() {
		t.Fatalf("PutDoc = %+v", doc)
	}
	got, err := s.GetDoc(ctx, "crm", "settings/theme")
	if err != nil {
		t.Fatalf("GetDoc: %v", err)
	}
	if string(got.Value) != `{"dark":true}` || got.Revision != doc.Revision || !got.Updated.Equal(doc.Updated) || got.Size != 13 {
		t.Fatalf("GetDoc = %+v, want value and metadata of %+v", got, doc)
	}

	// Overwrite: a new revision, same key.
	doc2, err := s.PutDoc(ctx, "crm", "settings/theme", []byte(`{}`))
	if err != nil {
		t.Fatalf("PutDoc again: %v", err)
	}
	if doc2.Revision <= doc.Revision {
		t.Fatalf("revision %d after %d", doc2.Revision, doc.Revision)
	}
	if _, err := s.PutDoc(ctx, "crm", "empty", nil); err != nil {
		t.Fatalf("PutDoc empty: %v", err)
	}

	docs, err := s.ListDocs(ctx, "crm")
	if err != nil {
		t.Fatalf("ListDocs: %v", err)
	}
	if got, want := keysOf(docs), []string{"empty", "settings/theme"}; !slices.Equal(got, want) {
		t.Fatalf("ListDocs keys = %q, want %q", got, want)
	}
	for _, d := range docs {
		if d.Value != nil {
			t.Errorf("ListDocs %q has a value", d.Key)
		}
	}
	if docs[1].Size != 2 || docs[1].Revision != doc2.Revision || docs[0].Size != 0 {
		t.Fatalf("ListDocs = %+v", docs)
	}

	if err := s.DeleteDoc(ctx, "crm", "settings/theme"); err != nil {
		t.Fatalf("DeleteDoc: %v", err)
	}
	_, err = s.GetDoc(ctx, "crm", "settings/theme")
	wantCode(t, err, domain.CodeNotFound)
	wantCode(t, s.DeleteDoc(ctx, "crm", "settings/theme"), domain.CodeNotFound)
	wantCode(t, s.DeleteDoc(ctx, "crm", "never"), domain.CodeNotFound)
	_, err = s.GetDoc(ctx, "crm", "never")
	wantCode(t, err, domain.CodeNotFound)

	docs, err = s.ListDocs(ctx, "crm")
	if err != nil {
		t.Fatalf("ListDocs: %v", err)
	}
	if got, want := keysOf(docs), []string{"empty"}; !slices.Equal(got, want) {
		t.Fatalf("ListDocs after delete = %q, want %q", got, want)
	}
	if got := export(t, s, "crm"); len(got) != 1 || got[0].path != "empty" {
		t.Fatalf("Export after delete = %+v", got)
	}

	// Put after delete brings it back.
	if _, err := s.PutDoc(ctx, "crm", "settings/theme", []byte("x")); err != nil {
		t.Fatalf("PutDoc after delete: %v", err)
	}
	if got, err := s.GetDoc(ctx, "crm", "settings/theme"); err != nil || string(got.Value) != "x" {
		t.Fatalf("GetDoc after re-put = %+v, %v", got, err)
	}
}

func TestEmptyApp(t *testing.T) {
	s, _ := setup(t, kv.Config{})
	docs, err := s.ListDocs(context.Background(), "nobody")
	if err != nil || len(docs) != 0 {
		t.Fatalf("ListDocs = %v, %v; want empty", docs, err)
	}
	if got := export(t, s, "nobody"); len(got) != 0 {
		t.Fatalf("Export = %+v, want nothing", got)
	}
}

func TestAppsDoNotMix(t *testing.T) {
	ctx := context.Background()
	s, _ := setup(t, kv.Config{})
	for _, p := range []struct{ app, key string }{
		{"a", "x"}, {"ab", "x"}, {"ab", "y"}, {"a-b", "z"}, {"b", "a.x"},
	} {
		if _, err := s.PutDoc(ctx, p.app, p.key, []byte(p.app+"/"+p.key)); err != nil {
			t.Fatalf("PutDoc %s %s: %v", p.app, p.key, err)
		}
	}
	for app, want := range map[string][]string{"a": {"x"}, "ab": {"x", "y"}, "a-b": {"z"}, "b": {"a.x"}} {
		docs, err := s.ListDocs(ctx, app)
		if err != nil {
			t.Fatalf("ListDocs %s: %v", app, err)
		}
		if got := keysOf(docs); !slices.Equal(got, want) {
			t.Errorf("ListDocs %s = %q, want %q", app, got, want)
		}
		for _, e := range export(t, s, app) {
			if e.body != app+"/"+e.path {
				t.Errorf("Export %s: %s = %q", app, e.path, e.body)
			}
		}
	}
	if err := s.DeleteDoc(ctx, "a", "x"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetDoc(ctx, "ab", "x"); err != nil || string(got.Value) != "ab/x" {
		t.Fatalf("GetDoc ab x after deleting a x = %+v, %v", got, err)
	}
}

func TestBadKeysRejected(t *testing.T) {
	ctx := context.Background()
	s, js := setup(t, kv.Config{})
	bad := []struct{ name, app, key string }{
		{"empty key", "crm", ""},
		{"too long", "crm", strings.Repeat("k", kv.MaxKeyLen+1)},
		{"space", "crm", "a b"},
		{"star wildcard", "crm", "a.*"},
		{"gt wildcard", "crm", "a.>"},
		{"non-ascii", "crm", "thème"},
		{"backslash", "crm", `a\b`},
		{"colon", "crm", "a:b"},
		{"leading dot", "crm", ".a"},
		{"trailing dot", "crm", "a."},
		{"empty token", "crm", "a..b"},
		{"dot dot path", "crm", "a/../b"},
		{"only dot", "crm", "."},
		{"leading slash", "crm", "/a"},
		{"trailing slash", "crm", "a/"},
		{"double slash", "crm", "a//b"},
		{"dot segment", "crm", "a/./b"},
		{"empty app", "", "a"},
		{"upper-case app", "CRM", "a"},
		{"app with dot", "c.rm", "a"},
		{"app starting with dash", "-crm", "a"},
		{"app wildcard", "*", "a"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.PutDoc(ctx, tc.app, tc.key, []byte("v"))
			wantCode(t, err, domain.CodeInvalidArgument)
			_, err = s.GetDoc(ctx, tc.app, tc.key)
			wantCode(t, err, domain.CodeInvalidArgument)
			wantCode(t, s.DeleteDoc(ctx, tc.app, tc.key), domain.CodeInvalidArgument)
		})
	}
	for _, app := range []string{"", "CRM", "c.rm", "*", ">"} {
		_, err := s.ListDocs(ctx, app)
		wantCode(t, err, domain.CodeInvalidArgument)
		wantCode(t, s.Export(ctx, app, func(domain.Item) error { return nil }), domain.CodeInvalidArgument)
	}
	if n := messages(t, js, kv.DefaultBucket); n != 0 {
		t.Fatalf("bucket holds %d messages after rejected writes and deletes", n)
	}

	// The longest and the most varied good keys are accepted.
	good := []string{strings.Repeat("k", kv.MaxKeyLen), "A-Z_a=z/0-9.x", "a/.hidden", "v1.2.3", "x=y"}
	for _, key := range good {
		if _, err := s.PutDoc(ctx, "crm", key, []byte("v")); err != nil {
			t.Errorf("PutDoc %q: %v", key, err)
		}
	}
}

func TestValueSizeLimit(t *testing.T) {
	ctx := context.Background()
	t.Run("default", func(t *testing.T) {
		s, js := setup(t, kv.Config{})
		max := make([]byte, kv.DefaultMaxValueBytes)
		if _, err := s.PutDoc(ctx, "crm", "max", max); err != nil {
			t.Fatalf("PutDoc of exactly the limit: %v", err)
		}
		_, err := s.PutDoc(ctx, "crm", "over", make([]byte, kv.DefaultMaxValueBytes+1))
		wantCode(t, err, domain.CodeInvalidArgument)
		if got, want := bucketKeys(t, js, kv.DefaultBucket), []string{"crm.max"}; !slices.Equal(got, want) {
			t.Fatalf("bucket keys = %q, want %q", got, want)
		}
		if n := messages(t, js, kv.DefaultBucket); n != 1 {
			t.Fatalf("bucket holds %d messages, want 1", n)
		}
	})
	t.Run("configured", func(t *testing.T) {
		s, js := setup(t, kv.Config{Bucket: "small", MaxValueBytes: 10})
		if _, err := s.PutDoc(ctx, "crm", "ok", []byte("0123456789")); err != nil {
			t.Fatalf("PutDoc: %v", err)
		}
		_, err := s.PutDoc(ctx, "crm", "over", []byte("0123456789a"))
		wantCode(t, err, domain.CodeInvalidArgument)
		// The bucket enforces the limit on direct writers too.
		b, err := js.KeyValue(ctx, "small")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Put(ctx, "crm.direct", []byte("0123456789a")); err == nil {
			t.Fatal("direct put over the limit accepted by the bucket")
		}
	})
}

func TestExportOrderAndContent(t *testing.T) {
	ctx := context.Background()
	s, _ := setup(t, kv.Config{})
	docs := map[string]string{
		"settings/theme": `{"dark":true}`,
		"settings":       "top",
		"B":              "upper",
		"a.b":            "dotted",
		"a/b":            "slashed",
		"empty":          "",
		"z-last":         strings.Repeat("z", 100000),
	}
	for k, v := range docs {
		if _, err := s.PutDoc(ctx, "crm", k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.PutDoc(ctx, "crmx", "other", []byte("not mine")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutDoc(ctx, "crm", "gone", []byte("deleted")); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteDoc(ctx, "crm", "gone"); err != nil {
		t.Fatal(err)
	}

	got := export(t, s, "crm")
	var paths []string
	for _, e := range got {
		paths = append(paths, e.path)
		if want := docs[e.path]; e.body != want || e.size != int64(len(want)) {
			t.Errorf("item %q: size %d body %.20q, want size %d body %.20q", e.path, e.size, e.body, len(want), want)
		}
	}
	want := []string{"B", "a.b", "a/b", "empty", "settings", "settings/theme", "z-last"}
	if !slices.Equal(paths, want) {
		t.Fatalf("Export paths = %q, want %q", paths, want)
	}
	if !slices.Equal(paths, keysOf(mustList(t, s, "crm"))) {
		t.Fatalf("Export and ListDocs disagree")
	}
}

func mustList(t *testing.T, s *kv.Source, app string) []domain.ConfigDoc {
	t.Helper()
	docs, err := s.ListDocs(context.Background(), app)
	if err != nil {
		t.Fatalf("ListDocs: %v", err)
	}
	return docs
}

func TestExportEmitError(t *testing.T) {
	ctx := context.Background()
	s, _ := setup(t, kv.Config{})
	for _, k := range []string{"a", "b", "c"} {
		if _, err := s.PutDoc(ctx, "crm", k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	boom := errors.New("boom")
	var n int
	err := s.Export(ctx, "crm", func(domain.Item) error {
		n++
		if n == 2 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || n != 2 {
		t.Fatalf("Export = %v after %d items, want boom after 2", err, n)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Export(cctx, "crm", func(domain.Item) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Export with a cancelled context = %v", err)
	}
}

// Another service writes and deletes documents with nats.go's KV API.
func TestDirectWritersOverNATS(t *testing.T) {
	ctx := context.Background()
	s, js := setup(t, kv.Config{})
	if _, err := s.PutDoc(ctx, "crm", "mine", []byte("api")); err != nil {
		t.Fatal(err)
	}

	b, err := js.KeyValue(ctx, kv.DefaultBucket)
	if err != nil {
		t.Fatalf("bind bucket: %v", err)
	}
	if _, err := b.Put(ctx, "crm.flags/beta", []byte("on")); err != nil {
		t.Fatalf("direct put: %v", err)
	}
	if _, err := b.PutString(ctx, "crm.doomed", "x"); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, "crm.doomed"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PutString(ctx, "crm.purged", "x"); err != nil {
		t.Fatal(err)
	}
	if err := b.Purge(ctx, "crm.purged"); err != nil {
		t.Fatal(err)
	}

	if got, want := keysOf(mustList(t, s, "crm")), []string{"flags/beta", "mine"}; !slices.Equal(got, want) {
		t.Fatalf("ListDocs = %q, want %q", got, want)
	}
	got := export(t, s, "crm")
	want := []exported{{"flags/beta", 2, "on"}, {"mine", 3, "api"}}
	if !slices.Equal(got, want) {
		t.Fatalf("Export = %+v, want %+v", got, want)
	}
	if d, err := s.GetDoc(ctx, "crm", "flags/beta"); err != nil || string(d.Value) != "on" {
		t.Fatalf("GetDoc of a direct write = %+v, %v", d, err)
	}
	_, err = s.GetDoc(ctx, "crm", "purged")
	wantCode(t, err, domain.CodeNotFound)

	// A key that breaks the scheme fails the export loudly, naming the key.
	if _, err := b.PutString(ctx, "crm.//bad", "x"); err != nil {
		t.Fatal(err)
	}
	err = s.Export(ctx, "crm", func(domain.Item) error { return nil })
	wantCode(t, err, domain.CodeInvalidArgument)
	if !strings.Contains(err.Error(), "//bad") {
		t.Fatalf("Export error %q does not name the key", err)
	}
}

func TestNewIsIdempotent(t *testing.T) {
	ctx := context.Background()
	s, js := setup(t, kv.Config{})
	if _, err := s.PutDoc(ctx, "crm", "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		s2, err := kv.New(ctx, js, kv.Config{MaxValueBytes: 512 << 10})
		if err != nil {
			t.Fatalf("New #%d: %v", i+2, err)
		}
		if d, err := s2.GetDoc(ctx, "crm", "k"); err != nil || string(d.Value) != "v" {
			t.Fatalf("GetDoc after New #%d = %+v, %v", i+2, d, err)
		}
	}
	b, err := js.KeyValue(ctx, kv.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	st, err := b.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	info := st.(*jetstream.KeyValueBucketStatus).StreamInfo()
	if info.Config.MaxMsgSize != 512<<10 || info.Config.Storage != jetstream.FileStorage || st.History() != 1 {
		t.Fatalf("bucket config not updated: max msg size %d, storage %v, history %d", info.Config.MaxMsgSize, info.Config.Storage, st.History())
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  kv.Config
		want []string
	}{
		{kv.Config{}, nil},
		{kv.Config{Bucket: "b-1_x", Replicas: 3, MaxValueBytes: 10}, nil},
		{kv.Config{Bucket: "a.b"}, []string{"bucket"}},
		{kv.Config{Replicas: -1, MaxValueBytes: -1}, []string{"replicas", "max value bytes"}},
		{kv.Config{Replicas: 6}, []string{"replicas"}},
		{kv.Config{MaxReplaceDocs: 1, MaxReplaceBytes: 1}, nil},
		{kv.Config{MaxReplaceDocs: -1, MaxReplaceBytes: -1}, []string{"max replace docs", "max replace bytes"}},
	} {
		err := tc.cfg.Validate()
		if (err == nil) != (len(tc.want) == 0) {
			t.Errorf("%+v: Validate = %v, want errors about %q", tc.cfg, err, tc.want)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: Validate = %v, want it to mention %q", tc.cfg, err, w)
			}
		}
	}
	_, js := natstest.Connect(t, natstest.Server(t, ""))
	if _, err := kv.New(context.Background(), js, kv.Config{Bucket: "bad bucket"}); err == nil {
		t.Fatal("New with a bad bucket name succeeded")
	}
	if _, err := kv.New(context.Background(), js, kv.Config{MaxValueBytes: 64 << 20}); err == nil {
		t.Fatal("New with a value limit above max_payload succeeded")
	}
}
