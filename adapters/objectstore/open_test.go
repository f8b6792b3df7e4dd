package objectstore_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/backupledger/backupledger/adapters/objectstore"
	"github.com/backupledger/backupledger/domain"
)

// writeMixed writes an archive with entries in two components and
// returns its bytes and info.
func writeMixed(t *testing.T, a *objectstore.Archives, id string) ([]byte, domain.ArchiveInfo) {
	t.Helper()
	h := header(id)
	h.Components = []string{"config", "files"}
	info, err := a.WriteArchive(context.Background(), h, emitItems(
		domain.Item{Component: "config", Path: "settings/theme", Size: 13, Body: strings.NewReader(`{"dark":true}`)},
		domain.Item{Component: "files", Path: "big.bin", Size: 1<<20 + 99, Body: bytes.NewReader(randomBytes(21, 1<<20+99))},
		domain.Item{Component: "config", Path: "tables/users.json", Size: 20000, Body: strings.NewReader(strings.Repeat(`{"id":1,"name":"x"},`, 1000))},
		domain.Item{Component: "files", Path: "small.txt", Size: 5, Body: strings.NewReader("small")},
	))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := readAll(t, a, id)
	return raw, info
}

// readSmall reads s to the end in small pieces.
func readSmall(r io.Reader) ([]byte, error) {
	var out bytes.Buffer
	buf := make([]byte, 1000)
	for {
		n, err := r.Read(buf)
		out.Write(buf[:n])
		if err == io.EOF {
			return out.Bytes(), nil
		}
		if err != nil {
			return out.Bytes(), err
		}
	}
}

func TestOpenArchiveWhole(t *testing.T) {
	a, _, _ := setupTemp(t, objectstore.Config{})
	raw, info := writeMixed(t, a, "01JOPEN")
	s, err := a.OpenArchive(t.Context(), "01JOPEN", info.SizeBytes, info.SHA256, "")
	if err != nil {
		t.Fatalf("OpenArchive: %v", err)
	}
	defer s.Close()
	if s.Size != info.SizeBytes || s.SHA256 != info.SHA256 {
		t.Errorf("stream says %d bytes sha %s, want %d %s", s.Size, s.SHA256, info.SizeBytes, info.SHA256)
	}
	got, err := readSmall(s)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if !bytes.Equal(got, raw) {
		t.Fatalf("read %d bytes, want the %d of the object", len(got), len(raw))
	}
	if n, err := s.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Errorf("read after the end = %d, %v", n, err)
	}
}

func wantCorrupt(t *testing.T, err error, detail string) {
	t.Helper()
	if !errors.Is(err, domain.ErrArchiveCorrupt) || !strings.Contains(err.Error(), detail) {
		t.Fatalf("err = %v, want one wrapping ErrArchiveCorrupt that mentions %q", err, detail)
	}
}

// overwrite replaces the object id with other bytes of the same length
// through nats.go, as a damaged or tampered store would hold it.
func overwrite(t *testing.T, js jetstream.JetStream, id string, raw []byte) jetstream.ObjectStore {
	t.Helper()
	obs, err := js.ObjectStore(context.Background(), objectstore.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(raw)
	bad[len(bad)/2] ^= 0xff
	bad[len(bad)-1] ^= 0xff
	if _, err := obs.Put(context.Background(), jetstream.ObjectMeta{Name: id, Opts: &jetstream.ObjectMetaOptions{ChunkSize: 128 << 10}}, bytes.NewReader(bad)); err != nil {
		t.Fatal(err)
	}
	return obs
}

// forgeDigest makes the object's recorded digest sha256Hex again, so that
// only its bytes tell that they changed (a damaged chunk).
func forgeDigest(t *testing.T, js jetstream.JetStream, obs jetstream.ObjectStore, id, sha256Hex string) {
	t.Helper()
	oi, err := obs.GetInfo(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	sum, _ := hex.DecodeString(sha256Hex)
	oi.Digest = "SHA-256=" + base64.URLEncoding.EncodeToString(sum)
	oi.ModTime = time.Time{}
	data, err := json.Marshal(oi)
	if err != nil {
		t.Fatal(err)
	}
	m := nats.NewMsg("$O." + objectstore.DefaultBucket + ".M." + base64.URLEncoding.EncodeToString([]byte(id)))
	m.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	m.Data = data
	if _, err := js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

func TestOpenArchiveCorrupt(t *testing.T) {
	ctx := context.Background()
	a, js, tmp := setupTemp(t, objectstore.Config{})
	raw, info := writeMixed(t, a, "01JCORRUPT")

	t.Run("recorded digest differs", func(t *testing.T) {
		overwrite(t, js, "01JCORRUPT", raw)
		_, err := a.OpenArchive(ctx, "01JCORRUPT", info.SizeBytes, info.SHA256, "")
		wantCorrupt(t, err, "ledger has "+info.SHA256)
	})

	t.Run("bytes differ", func(t *testing.T) {
		obs := overwrite(t, js, "01JCORRUPT", raw)
		forgeDigest(t, js, obs, "01JCORRUPT", info.SHA256)
		s, err := a.OpenArchive(ctx, "01JCORRUPT", info.SizeBytes, info.SHA256, "")
		if err != nil {
			t.Fatalf("OpenArchive: %v", err)
		}
		defer s.Close()
		got, err := readSmall(s)
		wantCorrupt(t, err, "ledger has")
		if withheld := info.SizeBytes - int64(len(got)); withheld <= 0 || withheld > 128<<10 {
			t.Fatalf("read %d of %d bytes before the error; the last chunk must be withheld", len(got), info.SizeBytes)
		}
		if !bytes.Equal(got[:len(raw)/2], raw[:len(raw)/2]) {
			t.Error("the bytes before the damage differ")
		}
		if _, err2 := s.Read(make([]byte, 10)); !errors.Is(err2, domain.ErrArchiveCorrupt) {
			t.Errorf("read after the error = %v, want the same error", err2)
		}
	})

	t.Run("component", func(t *testing.T) {
		_, err := a.OpenArchive(ctx, "01JCORRUPT", info.SizeBytes, info.SHA256, "config")
		wantCorrupt(t, err, "ledger has")
		assertNoTempFiles(t, tmp)
	})

	t.Run("size differs", func(t *testing.T) {
		obs, _ := js.ObjectStore(ctx, objectstore.DefaultBucket)
		if _, err := obs.PutBytes(ctx, "01JCORRUPT", raw); err != nil {
			t.Fatal(err)
		}
		_, err := a.OpenArchive(ctx, "01JCORRUPT", info.SizeBytes+1, info.SHA256, "")
		wantCorrupt(t, err, "ledger has")
	})

	t.Run("missing", func(t *testing.T) {
		_, err := a.OpenArchive(ctx, "01JNEVERWRITTEN", info.SizeBytes, info.SHA256, "")
		wantCorrupt(t, err, "archive missing")
		_, err = a.OpenArchive(ctx, "01JNEVERWRITTEN", info.SizeBytes, info.SHA256, "config")
		wantCorrupt(t, err, "archive missing")
		wantCorrupt(t, a.CheckArchive(ctx, "01JNEVERWRITTEN", info.SizeBytes, info.SHA256), "archive missing")
	})

	t.Run("check: size and digest", func(t *testing.T) {
		obs, _ := js.ObjectStore(ctx, objectstore.DefaultBucket)
		if _, err := obs.PutBytes(ctx, "01JCORRUPT", raw); err != nil {
			t.Fatal(err)
		}
		wantCorrupt(t, a.CheckArchive(ctx, "01JCORRUPT", info.SizeBytes+1, info.SHA256), "ledger has")
		wantCorrupt(t, a.CheckArchive(ctx, "01JCORRUPT", info.SizeBytes, strings.Repeat("0", 64)), "ledger has")
	})

	// The object store's record of the archive no longer decodes: corrupt
	// (for good), not an internal error to retry.
	t.Run("record unreadable", func(t *testing.T) {
		obs, _ := js.ObjectStore(ctx, objectstore.DefaultBucket)
		if _, err := obs.PutBytes(ctx, "01JCORRUPT", raw); err != nil {
			t.Fatal(err)
		}
		if err := a.CheckArchive(ctx, "01JCORRUPT", info.SizeBytes, info.SHA256); err != nil {
			t.Fatalf("CheckArchive of the intact archive: %v", err)
		}
		m := nats.NewMsg("$O." + objectstore.DefaultBucket + ".M." + base64.URLEncoding.EncodeToString([]byte("01JCORRUPT")))
		m.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
		m.Data = []byte(`{"name": "01JCORRUPT", "size": "not a number`)
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
		for _, component := range []string{"", "config"} {
			_, err := a.OpenArchive(ctx, "01JCORRUPT", info.SizeBytes, info.SHA256, component)
			wantCorrupt(t, err, "record of the archive is unreadable")
		}
		wantCorrupt(t, a.CheckArchive(ctx, "01JCORRUPT", info.SizeBytes, info.SHA256), "record of the archive is unreadable")
	})
}

func TestOpenArchiveComponent(t *testing.T) {
	ctx := context.Background()
	a, _, tmp := setupTemp(t, objectstore.Config{})
	raw, info := writeMixed(t, a, "01JCOMPONENT")
	full, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		component string
		entries   []string
	}{
		{"config", []string{"config/settings/theme", "config/tables/users.json"}},
		{"files", []string{"files/big.bin", "files/small.txt"}},
	} {
		t.Run(tc.component, func(t *testing.T) {
			s, err := a.OpenArchive(ctx, "01JCOMPONENT", info.SizeBytes, info.SHA256, tc.component)
			if err != nil {
				t.Fatalf("OpenArchive: %v", err)
			}
			got, err := readSmall(s)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			assertNoTempFiles(t, tmp)
			if s.Size != int64(len(got)) || s.SHA256 != sha(got) {
				t.Errorf("stream says %d bytes sha %s; read %d sha %s", s.Size, s.SHA256, len(got), sha(got))
			}
			unzipTest(t, got)
			m, err := objectstore.ValidateArchive(ctx, bytes.NewReader(got), int64(len(got)), objectstore.Limits{})
			if err != nil {
				t.Fatalf("the component zip is not a valid archive: %v", err)
			}
			var paths []string
			for _, e := range m.Entries {
				paths = append(paths, e.Path)
			}
			if !slices.Equal(paths, tc.entries) || m.ItemCount != len(tc.entries) || !slices.Equal(m.Components, []string{tc.component}) {
				t.Errorf("manifest lists %q (item count %d) in %q, want %q in [%s]", paths, m.ItemCount, m.Components, tc.entries, tc.component)
			}
			if m.BackupID != "01JCOMPONENT" || m.App != "crm" || m.Name != header("").Name {
				t.Errorf("manifest header = %+v", m)
			}
			zr, err := zip.NewReader(bytes.NewReader(got), int64(len(got)))
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range zr.File[:len(zr.File)-1] {
				orig := full.File[slices.IndexFunc(full.File, func(o *zip.File) bool { return o.Name == f.Name })]
				if f.Method != orig.Method || f.CompressedSize64 != orig.CompressedSize64 || f.CRC32 != orig.CRC32 {
					t.Errorf("%s was not copied as it was", f.Name)
				}
			}
		})
	}
	for _, bad := range []string{"nope", "../config", "Config"} {
		_, err := a.OpenArchive(ctx, "01JCOMPONENT", info.SizeBytes, info.SHA256, bad)
		wantCode(t, err, domain.CodeInvalidArgument)
	}
	assertNoTempFiles(t, tmp)
}

func TestStageDownload(t *testing.T) {
	ctx := context.Background()
	a, js, tmp := setupTemp(t, objectstore.Config{})
	stg := stagingStore(t, js)
	raw, info := writeMixed(t, a, "01JSTAGE")

	before := time.Now()
	st, err := a.StageDownload(ctx, "01JSTAGE", info.SizeBytes, info.SHA256, "")
	if err != nil {
		t.Fatalf("StageDownload: %v", err)
	}
	after := time.Now()
	if st.Bucket != objectstore.DefaultStagingBucket || !strings.HasPrefix(st.Object, "download-01JSTAGE-") || len(st.Object) < len("download-01JSTAGE-")+20 {
		t.Errorf("staged as %s/%s", st.Bucket, st.Object)
	}
	if st.Size != info.SizeBytes || st.SHA256 != info.SHA256 {
		t.Errorf("staged %d bytes sha %s, want %d %s", st.Size, st.SHA256, info.SizeBytes, info.SHA256)
	}
	// An hour after the staging began (in whole seconds, rounded down).
	if st.ExpiresAt.Before(before.Add(time.Hour).Add(-time.Second)) || st.ExpiresAt.After(after.Add(time.Hour)) {
		t.Errorf("ExpiresAt = %v, want an hour after %v..%v", st.ExpiresAt, before, after)
	}
	got, err := stg.GetBytes(ctx, st.Object) // checks the digest
	if err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("staged object: %d bytes, %v; want the archive", len(got), err)
	}

	// A component, and a client that hands the staged archive back in.
	st, err = a.StageDownload(ctx, "01JSTAGE", info.SizeBytes, info.SHA256, "config")
	if err != nil {
		t.Fatalf("StageDownload of a component: %v", err)
	}
	imp, err := a.ImportStaged(ctx, "crm", "01JSTAGEBACK", st.Object)
	if err != nil {
		t.Fatalf("ImportStaged of a staged download: %v", err)
	}
	if imp.ItemCount != 2 || imp.SHA256 != st.SHA256 || imp.SizeBytes != st.Size || !slices.Equal(imp.Components, []string{"config"}) {
		t.Errorf("ImportedArchive = %+v, staged %+v", imp, st)
	}

	// A corrupt archive is not staged.
	names := stagingNames(t, stg)
	obs := overwrite(t, js, "01JSTAGE", raw)
	forgeDigest(t, js, obs, "01JSTAGE", info.SHA256)
	_, err = a.StageDownload(ctx, "01JSTAGE", info.SizeBytes, info.SHA256, "")
	wantCorrupt(t, err, "ledger has")
	if got := stagingNames(t, stg); !slices.Equal(got, names) {
		t.Errorf("staging objects %q after a refused download, want %q", got, names)
	}
	assertNoTempFiles(t, tmp)
}
