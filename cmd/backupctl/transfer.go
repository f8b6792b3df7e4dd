package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"github.com/schollz/progressbar/v3"

	"github.com/backupledger/backupledger/projections"
)

const helpDownload = `
Downloads a ready backup's archive (a zip, see docs/archive.md) into the
file the server suggests (<name>_<YYYY-MM-DD_HH-MM>.zip) in the current
directory, or into FILE with -o. The bytes go to a temporary file beside
the target, which is renamed into place only once their SHA-256 matches the
server's Repr-Digest and ETag and the backup's recorded sha256; on a
mismatch or an interrupted transfer nothing is left behind and the exit
code is 1. The file is readable by its owner only (it holds the app's
configuration).

Flags:
  -o, --output FILE  write to FILE (replacing it), into the directory FILE
                     with the suggested name, or to stdout with "-" (then
                     a mismatch is only reported, by the exit code 1)
  --component C      download a zip of only that component (e.g. config)

On a terminal, a progress bar (bytes, rate, time left) shows on stderr. With
--json, prints {"file", "size_bytes", "sha256"}.
`

const helpUpload = `
Uploads an archive (a zip made by a download, or by hand, see
docs/archive.md) as a new backup of APP: a new entry, ready, origin upload.
It is not restored. The archive may come from another app or installation.
FILE "-" reads the archive from stdin.

Flags:
  --name N  the new backup's name (default: the file's name without .zip)

On a terminal, a progress bar (bytes, rate, time left) shows on stderr. With
--json, prints the new backup's JSON.
`

// digest is a SHA-256 the downloaded bytes must have, and who said so.
type digest struct{ hex, from string }

func backupDownload(ctx context.Context, c *cli, cmd *command, args []string) error {
	fs := c.flagSet(cmd.name)
	out := fs.String("o", "", "")
	fs.StringVar(out, "output", "", "")
	component := fs.String("component", "", "")
	pos, err := c.parse(cmd, fs, args, 2, 2)
	if err != nil {
		return err
	}
	cl, err := c.newClient(cmd)
	if err != nil {
		return err
	}
	app, id := pos[0], pos[1]
	var want []digest
	if *component == "" {
		// A component's zip is a file of its own; only the whole
		// archive has the recorded digest.
		var b projections.BackupView
		if _, err := cl.getJSON(ctx, apiPath("v1/apps", app, "backups", id), &b); err != nil {
			return err
		}
		if b.SHA256 != nil {
			want = append(want, digest{*b.SHA256, "the backup's recorded sha256"})
		}
	}
	q := url.Values{}
	if *component != "" {
		q.Set("component", *component)
	}
	a, err := cl.do(ctx, request{method: http.MethodGet, path: apiPath("v1/apps", app, "backups", id, "archive"), query: q, transfer: true, stream: true})
	if err != nil {
		return err
	}
	resp := a.resp
	defer resp.Body.Close()
	if d, ok := reprDigest(resp.Header.Get("Repr-Digest")); ok {
		want = append(want, digest{d, "the server's Repr-Digest"})
	}
	if d, ok := etagDigest(resp.Header.Get("ETag")); ok {
		want = append(want, digest{d, "the server's ETag"})
	}

	target, err := downloadTarget(*out, resp.Header.Get("Content-Disposition"), app, id, *component)
	if err != nil {
		return err
	}
	var w io.Writer = c.stdout
	var tmp *os.File
	if target != "-" {
		// A hidden temporary file beside the target, so that the final
		// rename stays on one file system.
		pattern := "." + filepath.Base(target) + ".*.part"
		if tmp, err = os.CreateTemp(filepath.Dir(target), pattern); err != nil {
			return fmt.Errorf("download: %w", err)
		}
		defer func() {
			if tmp != nil { // not renamed into place
				tmp.Close()
				os.Remove(tmp.Name())
			}
		}()
		w = tmp
	}
	h := sha256.New()
	bar, done := c.progressBar(resp.ContentLength, "downloading")
	n, err := io.Copy(io.MultiWriter(w, h, bar), resp.Body)
	done(err == nil)
	if err != nil {
		if ctx.Err() != nil {
			err = errors.New("interrupted")
		}
		return fmt.Errorf("download of backup %s stopped after %s: %w", id, humanSize(n), err)
	}
	got := hex.EncodeToString(h.Sum(nil))
	for _, d := range want {
		if !strings.EqualFold(d.hex, got) {
			outcome := "nothing saved"
			if tmp == nil {
				outcome = "what was written to stdout is not the archive"
			}
			return &failure{msg: fmt.Sprintf("downloaded archive has SHA-256 %s, but %s is %s; %s", got, d.from, d.hex, outcome)}
		}
	}
	if len(want) == 0 {
		fmt.Fprintln(c.stderr, "backupctl: warning: the server sent no SHA-256; the download is not verified")
	}
	if tmp != nil {
		if err := tmp.Sync(); err != nil {
			return fmt.Errorf("download: %w", err)
		}
		if err := tmp.Close(); err != nil {
			return fmt.Errorf("download: %w", err)
		}
		if err := os.Rename(tmp.Name(), target); err != nil {
			return fmt.Errorf("download: %w", err)
		}
		tmp = nil
	}
	switch {
	case target == "-":
		return nil
	case c.g.json:
		return printJSON(c.stdout, map[string]any{"file": target, "size_bytes": n, "sha256": got})
	}
	verified := ", SHA-256 verified"
	if len(want) == 0 {
		verified = ""
	}
	_, err = fmt.Fprintf(c.stdout, "Saved %s (%s)%s.\n", target, humanSize(n), verified)
	return err
}

// downloadTarget picks the file a download goes to: -o as given (or, for a
// directory, the suggested name in it), else the name the server suggests in
// Content-Disposition, made safe, else <app>_<id>[_<component>].zip. A
// suggested name that exists already is not replaced.
func downloadTarget(out, disposition, app, id, component string) (string, error) {
	if out == "-" {
		return out, nil
	}
	name := suggestedName(disposition)
	if name == "" {
		name = safeFileName(strings.Join([]string{app, id, component}, "_"))
		name = strings.TrimSuffix(name, "_") + ".zip"
	}
	if out != "" {
		if st, err := os.Stat(out); err == nil && st.IsDir() {
			return filepath.Join(out, name), nil
		}
		return out, nil
	}
	if _, err := os.Lstat(name); err == nil {
		return "", &failure{msg: fmt.Sprintf("%s exists already: remove it, or name another file with -o", name)}
	}
	return name, nil
}

// suggestedName returns the file name of a Content-Disposition header
// (filename*, which holds non-ASCII names, before filename), made safe, or
// "".
func suggestedName(disposition string) string {
	_, params, err := mime.ParseMediaType(disposition)
	if err != nil {
		return ""
	}
	return safeFileName(params["filename"])
}

// safeFileName makes a server-supplied file name safe to create in the
// current directory: path separators and control characters become "_",
// leading dots go (so no "..", no hidden file); "" if nothing usable is
// left.
func safeFileName(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '/' || r == '\\' {
			return '_'
		}
		return r
	}, s)
	s = strings.TrimLeft(strings.TrimSpace(s), ".")
	if s == "" || len(s) > 255 {
		return ""
	}
	return s
}

// reprDigest returns the hex SHA-256 of a Repr-Digest header (RFC 9530,
// e.g. sha-256=:base64:), if it has one.
func reprDigest(h string) (string, bool) {
	for item := range strings.SplitSeq(h, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "sha-256") {
			continue
		}
		v, _, _ = strings.Cut(strings.TrimSpace(v), ";")
		v = strings.TrimSpace(v)
		if len(v) < 2 || v[0] != ':' || v[len(v)-1] != ':' {
			return "", false
		}
		v = v[1 : len(v)-1]
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			b, err = base64.URLEncoding.DecodeString(v)
		}
		if err != nil || len(b) != sha256.Size {
			return "", false
		}
		return hex.EncodeToString(b), true
	}
	return "", false
}

// etagDigest returns the hex SHA-256 an ETag holds ("<hex>", optionally
// weak or prefixed "sha256:"), if it is one.
func etagDigest(h string) (string, bool) {
	h = strings.TrimPrefix(strings.TrimSpace(h), "W/")
	h = strings.ToLower(strings.Trim(h, `"`))
	for _, p := range []string{"sha256:", "sha-256:", "sha256-", "sha-256-"} {
		h = strings.TrimPrefix(h, p)
	}
	if len(h) != 2*sha256.Size {
		return "", false
	}
	if _, err := hex.DecodeString(h); err != nil {
		return "", false
	}
	return h, true
}

func backupUpload(ctx context.Context, c *cli, cmd *command, args []string) error {
	fs := c.flagSet(cmd.name)
	name := fs.String("name", "", "")
	pos, err := c.parse(cmd, fs, args, 2, 2)
	if err != nil {
		return err
	}
	nameSet := false
	fs.Visit(func(f *flag.Flag) { nameSet = nameSet || f.Name == "name" })
	cl, err := c.newClient(cmd)
	if err != nil {
		return err
	}
	app, file := pos[0], pos[1]
	var body io.Reader = c.stdin
	size, filename := int64(-1), ""
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return fmt.Errorf("upload: %w", err)
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return fmt.Errorf("upload: %w", err)
		}
		if !st.Mode().IsRegular() {
			return &usageError{msg: fmt.Sprintf("%s is not a regular file", file), cmd: cmd}
		}
		body, size, filename = f, st.Size(), filepath.Base(file)
	}
	q := url.Values{}
	if nameSet {
		q.Set("name", *name)
	}
	header := http.Header{"Content-Type": {"application/zip"}}
	if filename != "" {
		q.Set("filename", filename)
		if cd := mime.FormatMediaType("attachment", map[string]string{"filename": filename}); cd != "" {
			header.Set("Content-Disposition", cd)
		}
	}
	bar, done := c.progressBar(size, "uploading")
	a, err := cl.do(ctx, request{
		method: http.MethodPost, path: apiPath("v1/apps", app, "backups", "upload"), query: q, header: header,
		body: io.TeeReader(body, bar), size: size, command: true, transfer: true,
	})
	done(err == nil)
	if err != nil {
		return err
	}
	if c.g.json {
		return writeJSON(c.stdout, a.body)
	}
	var b projections.BackupView
	if err := decode(a.body, &b); err != nil {
		return err
	}
	from := file
	if file == "-" {
		from = "stdin"
	}
	_, err = fmt.Fprintf(c.stdout, "Uploaded %s as backup %s (%q) of %s: %s, %s, %d items.\n",
		from, b.ID, clean(b.Name), b.App, statusText(b), humanSize(b.SizeBytes), b.ItemCount)
	return err
}

// progressBar returns a writer that advances a progress bar (bytes, rate,
// time left) on stderr, and a function that ends it; when stderr is not a
// terminal, the writer discards and nothing is shown. total -1 means
// unknown.
func (c *cli) progressBar(total int64, what string) (io.Writer, func(ok bool)) {
	if !c.isTerminal(c.stderr) {
		return io.Discard, func(bool) {}
	}
	bar := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(c.stderr),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionUseIECUnits(true),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionSetRenderBlankState(true),
	)
	return bar, func(ok bool) {
		if ok {
			_ = bar.Finish()
		} else {
			_ = bar.Exit()
		}
		fmt.Fprintln(c.stderr)
	}
}
