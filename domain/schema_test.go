package domain_test

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/backupledger/backupledger/domain"
)

// schemaDir holds the JSON Schemas of the events (docs/events.md).
const schemaDir = "../docs/schemas"

// eventSchemas compiles the schemas of docs/schemas once per test, with
// formats (date-time, uri) asserted.
type eventSchemas struct {
	t  *testing.T
	c  *jsonschema.Compiler
	by map[string]*jsonschema.Schema
}

func newEventSchemas(t *testing.T) *eventSchemas {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	return &eventSchemas{t: t, c: c, by: map[string]*jsonschema.Schema{}}
}

// of returns the compiled schema of an event type.
func (s *eventSchemas) of(typ string) *jsonschema.Schema {
	s.t.Helper()
	if sch, ok := s.by[typ]; ok {
		return sch
	}
	path, err := filepath.Abs(filepath.Join(schemaDir, typ+".json"))
	if err != nil {
		s.t.Fatal(err)
	}
	sch, err := s.c.Compile(path)
	if err != nil {
		s.t.Fatalf("compile schema of %s: %v", typ, err)
	}
	s.by[typ] = sch
	return sch
}

// validate validates a document (as decoded by decodeDoc) against the
// schema of typ.
func (s *eventSchemas) validate(typ string, doc any) error {
	s.t.Helper()
	// The validator wants its own decoding (json.Number for numbers):
	// re-encode what the test built.
	raw, err := json.Marshal(doc)
	if err != nil {
		s.t.Fatal(err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		s.t.Fatal(err)
	}
	return s.of(typ).Validate(v)
}

// decodeDoc decodes JSON into maps, keeping numbers exact.
func decodeDoc(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return m
}

// cloneDoc deep-copies a decoded document.
func cloneDoc(t *testing.T, m map[string]any) map[string]any {
	t.Helper()
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return decodeDoc(t, raw)
}

// goldenFiles returns the golden event files, by name without .json.
func goldenFiles(t *testing.T) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "events", "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no golden events: %v", err)
	}
	out := map[string][]byte{}
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(filepath.Base(p), ".json")] = raw
	}
	return out
}

// schemaData is what a type's schema file says of data.
type schemaData struct {
	Properties map[string]json.RawMessage `json:"properties"`
	Required   []string                   `json:"required"`
	OneOf      []struct {
		Required []string `json:"required"`
	} `json:"oneOf"`
}

func readSchemaData(t *testing.T, typ string) schemaData {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(schemaDir, typ+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Properties struct {
			Data schemaData `json:"data"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("schema of %s: %v", typ, err)
	}
	return s.Properties.Data
}

// jsonFields returns the JSON fields of an event's data struct and
// whether each is always written (no omitempty or omitzero).
func jsonFields(ev domain.Event) map[string]bool {
	out := map[string]bool{}
	rt := reflect.TypeOf(ev).Elem()
	for i := range rt.NumField() {
		f := rt.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		always := true
		for o := range strings.SplitSeq(opts, ",") {
			if o == "omitempty" || o == "omitzero" {
				always = false
			}
		}
		out[name] = always
	}
	return out
}

// Every registered event type has a schema, and every schema (but the
// envelope's) is of a registered type; all of them compile.
func TestSchemasCoverEventTypes(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(schemaDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, p := range paths {
		if name := strings.TrimSuffix(filepath.Base(p), ".json"); name != "envelope" {
			files = append(files, name)
		}
	}
	slices.Sort(files)
	if want := domain.EventTypes(); !slices.Equal(files, want) {
		t.Errorf("schemas %v\nregistered types %v", files, want)
	}
	s := newEventSchemas(t)
	for _, typ := range domain.EventTypes() {
		s.of(typ) // compiles, with its references to envelope.json
	}
}

// Every golden event matches the schema of its type.
func TestGoldenEventsMatchSchemas(t *testing.T) {
	s := newEventSchemas(t)
	files := goldenFiles(t)
	seen := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		doc := decodeDoc(t, files[name])
		typ, _ := doc["type"].(string)
		if !strings.HasPrefix(name, typ) {
			t.Errorf("golden %s holds an event of type %q", name, typ)
		}
		seen[typ] = true
		if err := s.validate(typ, doc); err != nil {
			t.Errorf("golden %s does not match schemas/%s.json:\n%v", name, typ, err)
		}
	}
	for _, typ := range domain.EventTypes() {
		if !seen[typ] {
			t.Errorf("no golden event of %s", typ)
		}
	}
}

// The schemas say what the Go types say: every field of an event's data
// is declared, a field that is always written is required (the golden
// without it is invalid), an optional one is not, and a field of the wrong
// JSON type is invalid. The envelope's own fields are checked the same
// way, and fields added later are accepted.
func TestSchemasMatchEventStructs(t *testing.T) {
	s := newEventSchemas(t)
	files := goldenFiles(t)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		t.Run(name, func(t *testing.T) {
			golden := decodeDoc(t, files[name])
			typ := golden["type"].(string)
			var env domain.Envelope
			if err := json.Unmarshal(files[name], &env); err != nil {
				t.Fatal(err)
			}
			ev, err := domain.DecodeEvent(&env)
			if err != nil {
				t.Fatal(err)
			}
			fields := jsonFields(ev)
			sd := readSchemaData(t, typ)
			if got, want := slices.Sorted(maps.Keys(sd.Properties)), slices.Sorted(maps.Keys(fields)); !slices.Equal(got, want) {
				t.Errorf("schema declares data fields %v, %T has %v", got, ev, want)
			}
			alternatives := map[string]bool{} // exactly one of them is set
			for _, o := range sd.OneOf {
				for _, f := range o.Required {
					alternatives[f] = true
				}
			}
			invalid := func(what string, doc map[string]any) {
				t.Helper()
				if s.validate(typ, doc) == nil {
					t.Errorf("%s: still valid", what)
				}
			}
			valid := func(what string, doc map[string]any) {
				t.Helper()
				if err := s.validate(typ, doc); err != nil {
					t.Errorf("%s: invalid: %v", what, err)
				}
			}
			data := golden["data"].(map[string]any)
			for _, f := range slices.Sorted(maps.Keys(fields)) {
				if _, ok := data[f]; !ok {
					continue
				}
				doc := cloneDoc(t, golden)
				delete(doc["data"].(map[string]any), f)
				switch {
				case fields[f] || alternatives[f]:
					invalid("without data."+f, doc)
				default:
					valid("without optional data."+f, doc)
				}
				doc = cloneDoc(t, golden)
				doc["data"].(map[string]any)[f] = wrongType(data[f])
				invalid("data."+f+" of another JSON type", doc)
			}
			for f, always := range map[string]bool{"id": true, "type": true, "version": true, "app": true, "time": true,
				"actor": true, "command_id": true, "prev_hash": true, "data": true, "correlation_id": false, "causation_id": false} {
				doc := cloneDoc(t, golden)
				delete(doc, f)
				if always {
					invalid("without "+f, doc)
				} else {
					valid("without "+f, doc)
				}
			}
			for what, set := range map[string]func(map[string]any){
				"another type":          func(d map[string]any) { d["type"] = otherType(typ) },
				"version 2":             func(d map[string]any) { d["version"] = 2 },
				"id not a ULID":         func(d map[string]any) { d["id"] = "01jdax3n3z8q1v0g5y9f6k2m4e" },
				"app not an app id":     func(d map[string]any) { d["app"] = "CRM" },
				"time not UTC":          func(d map[string]any) { d["time"] = "2026-11-21T11:15:00.123+01:00" },
				"time in microseconds":  func(d map[string]any) { d["time"] = "2026-11-21T10:15:00.123456Z" },
				"prev_hash not hex":     func(d map[string]any) { d["prev_hash"] = strings.Repeat("G", 64) },
				"prev_hash too short":   func(d map[string]any) { d["prev_hash"] = "abc" },
				"empty command_id":      func(d map[string]any) { d["command_id"] = "" },
				"command_id with space": func(d map[string]any) { d["command_id"] = "a b" },
				"empty actor":           func(d map[string]any) { d["actor"] = "" },
				"data not an object":    func(d map[string]any) { d["data"] = []any{} },
			} {
				doc := cloneDoc(t, golden)
				set(doc)
				invalid(what, doc)
			}
			doc := cloneDoc(t, golden)
			doc["prev_hash"] = ""
			valid("first event of its subject", doc)
			doc["added_later"] = "x"
			doc["data"].(map[string]any)["added_later"] = map[string]any{"x": 1}
			valid("with fields added later", doc)
		})
	}
}

// Values the patterns of the schemas refuse, field by field.
func TestSchemasRefuseMalformedValues(t *testing.T) {
	s := newEventSchemas(t)
	files := goldenFiles(t)
	tests := []struct {
		golden, field string
		value         any
	}{
		{"backup.requested", "backup_id", "not-a-ulid"},
		{"backup.requested", "name", ""},
		{"backup.requested", "name", strings.Repeat("n", 101)},
		{"backup.requested", "description", strings.Repeat("d", 1001)},
		{"backup.requested", "origin", "by-hand"},
		{"backup.requested", "expires_at", "tomorrow"},
		{"backup.requested.v1-nightly", "night", "22.11.2026"},
		{"backup.requested.v1-nightly", "try", 0},
		{"backup.started", "attempt", 0},
		{"backup.completed", "sha256", strings.ToUpper(strings.Repeat("ab", 32))},
		{"backup.completed", "size_bytes", -1},
		{"backup.completed", "item_count", 1.5},
		{"backup.verified", "sha256", "e3b0"},
		{"restore.requested", "source_app", "-erp"},
		{"restore.requested", "backup_sha256", ""},
		{"restore.completed", "digest", "x"},
		{"restore.failed", "step", ""},
		{"maintenance.started", "reason", ""},
		{"org.created", "org", "Acme"},
		{"user.created", "email", "not an address"},
		{"user.password_failed", "purpose", "sudo"},
		{"user.password_failed", "locked_until", "2026-11-22 10:30"},
		{"app.registered", "app", "_identity"},
		{"token.created", "kind", "root"},
		{"schedule.set", "time", "24:00"},
		{"schedule.set", "time_zone", ""},
		{"nightly.skipped", "code", "Quota!"},
		{"archive.orphan_removed", "backup_id", ""},
		{"webhook.registered", "url", "ftp://hooks.example.com/crm"},
		{"webhook.registered", "events", []any{}},
		{"webhook.registered", "events", []any{"backup.completed", "backup.completed"}},
		{"webhook.registered", "org", "acme"}, // an app's webhook with an org too
		{"webhook.registered.v1-org", "app", "crm"},
		{"key.created", "key_id", "34750F98BD59FCFC"},
		{"key.created", "key_id", "34750f98bd59fc"},
		{"key.created", "algorithm", "rsa"},
		{"key.created", "public_key", "iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w"},      // no padding
		{"key.created", "public_key", "iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1x="},     // padding bits set
		{"key.created", "public_key", "iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w-_AA="}, // not 32 bytes
		{"key.created", "mac_key_sha256", "e3b0"},
		{"key.rotated", "previous_key_id", ""},
		{"key.rotated", "public_key", "gTl3Dqh9F19Wo1Rmw0x-zMuNipG07jeiXfYPW4_Js5Q="}, // URL alphabet
	}
	for _, tt := range tests {
		doc := decodeDoc(t, files[tt.golden])
		doc["data"].(map[string]any)[tt.field] = tt.value
		if s.validate(doc["type"].(string), doc) == nil {
			t.Errorf("%s with data.%s = %#v: valid", tt.golden, tt.field, tt.value)
		}
	}
	// The identity events are on the identity subject, the key events on
	// the keys subject, the backups' on an app's.
	for golden, app := range map[string]string{"user.created": "crm", "webhook.removed": "crm", "backup.deleted": "_identity", "restore.failed": "_identity",
		"key.created": "crm", "key.rotated": "_identity", "backup.requested": "_keys", "org.created": "_keys"} {
		doc := decodeDoc(t, files[golden])
		doc["app"] = app
		if s.validate(doc["type"].(string), doc) == nil {
			t.Errorf("%s with app %q: valid", golden, app)
		}
	}
	// key.created is the first event of its subject.
	doc := decodeDoc(t, files["key.created"])
	doc["prev_hash"] = domain.HashEvent([]byte("previous event"))
	if s.validate(domain.TypeKeyCreated, doc) == nil {
		t.Errorf("key.created with a prev_hash: valid")
	}
}

// docs/events.md describes every registered type and links its schema.
func TestEventsDocLinksEverySchema(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "docs", "events.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	for _, typ := range domain.EventTypes() {
		if !strings.Contains(doc, "#### `"+typ+"`") {
			t.Errorf("docs/events.md has no section on %s", typ)
		}
		if !strings.Contains(doc, "(schemas/"+typ+".json)") {
			t.Errorf("docs/events.md does not link schemas/%s.json", typ)
		}
	}
}

// wrongType returns a value of another JSON type than v.
func wrongType(v any) any {
	switch v.(type) {
	case string:
		return 12345
	default:
		return "not of this type"
	}
}

// otherType returns a registered type other than typ.
func otherType(typ string) string {
	for _, o := range domain.EventTypes() {
		if o != typ {
			return o
		}
	}
	return "x.y"
}
