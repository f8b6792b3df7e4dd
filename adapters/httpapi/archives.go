package httpapi

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/usecase"
)

const (
	// copyBufferSize is the size of a download's copy buffer.
	copyBufferSize = 1 << 20
	// multipartSlack is the room a multipart upload has above
	// MaxUploadBytes for its boundaries, part headers and form fields.
	multipartSlack = 64 << 10
	// maxFormField bounds a multipart form field other than the file.
	maxFormField = 16 << 10
)

// downloadArchive streams a ready backup's archive, or with ?component=
// a zip of one component, as an attachment: 200 with Content-Length,
// Content-Disposition, Repr-Digest and ETag. Errors before the first byte
// are problems; a read that fails midway (the archive does not match the
// ledger, which the domain records) aborts the response, so that the
// client sees a truncated transfer and never a short 200.
func (s *Server) downloadArchive(w http.ResponseWriter, r *http.Request, c call) error {
	if err := s.app.CheckTransfers(); err != nil {
		return err
	}
	component := r.URL.Query().Get("component")
	// Opening a component verifies the whole stored archive first, and a
	// download may take longer than the server's WriteTimeout: lift the
	// write deadline, then push it ahead while bytes go out. (net/http
	// itself lifts the read deadline once the request has been read.)
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	wd := &progress{set: rc.SetWriteDeadline, idle: s.cfg.TransferIdleTimeout}
	b, st, fileName, err := s.app.OpenDownload(r.Context(), c.query(), usecase.Download{App: c.app, ID: r.PathValue("id"), Component: component})
	wd.touch()
	if err != nil {
		return err
	}
	defer st.Close()
	digest, err := hex.DecodeString(st.SHA256)
	if err != nil || len(digest) != sha256.Size {
		return fmt.Errorf("archive of backup %s has a malformed sha256 %q", b.ID, st.SHA256)
	}
	h := w.Header()
	h.Set("Content-Type", "application/zip")
	h.Set("Content-Length", strconv.FormatInt(st.Size, 10))
	h.Set("Content-Disposition", contentDisposition(fileName))
	h.Set("Repr-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(digest)+":")
	h.Set("ETag", `"`+st.SHA256+`"`)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	n, readErr, writeErr := s.copyArchive(w, st, wd)
	switch {
	case writeErr != nil || readErr != nil && r.Context().Err() != nil:
		// The client went away; the read failed only because of that.
		s.log.Warn("download interrupted by the client", "app", c.app, "backup_id", b.ID,
			"component", component, "bytes", n, "size_bytes", st.Size, "err", errors.Join(writeErr, readErr))
	case readErr != nil:
		s.log.Error("download aborted: the archive failed midway", "app", c.app, "backup_id", b.ID,
			"component", component, "bytes", n, "size_bytes", st.Size, "err", readErr)
		panic(http.ErrAbortHandler)
	}
	return nil
}

// copyArchive copies st to w through a large buffer, pushing the write
// deadline ahead as bytes go. It returns the bytes written, and either a
// failure of the archive (a read error, more or fewer bytes than st.Size)
// or of the client (a write error).
func (s *Server) copyArchive(w io.Writer, st domain.ArchiveStream, wd *progress) (n int64, readErr, writeErr error) {
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	buf := *bp
	for {
		nr, rerr := st.Read(buf)
		if nr > 0 {
			if n+int64(nr) > st.Size {
				return n, fmt.Errorf("archive yields more than its %d bytes", st.Size), nil
			}
			wd.touch()
			nw, werr := w.Write(buf[:nr])
			n += int64(nw)
			if werr != nil {
				return n, nil, werr
			}
		}
		switch {
		case rerr == io.EOF && n != st.Size:
			return n, fmt.Errorf("archive ended after %d of its %d bytes: %w", n, st.Size, io.ErrUnexpectedEOF), nil
		case rerr == io.EOF:
			return n, nil, nil
		case rerr != nil:
			return n, rerr, nil
		}
	}
}

// contentDisposition is an attachment header for name (RFC 6266): an ASCII
// filename for old clients, where every other character is "_", and the
// exact name as filename* in UTF-8 (RFC 8187).
func contentDisposition(name string) string {
	var ascii, ext strings.Builder
	for _, r := range name {
		if r >= 0x20 && r < 0x7f && r != '"' && r != '\\' && r != '%' {
			ascii.WriteRune(r)
		} else {
			ascii.WriteByte('_')
		}
	}
	const hexDigits = "0123456789ABCDEF"
	for i := 0; i < len(name); i++ {
		b := name[i]
		if isAttrChar(b) {
			ext.WriteByte(b)
		} else {
			ext.WriteByte('%')
			ext.WriteByte(hexDigits[b>>4])
			ext.WriteByte(hexDigits[b&0xf])
		}
	}
	return `attachment; filename="` + ascii.String() + `"; filename*=UTF-8''` + ext.String()
}

// isAttrChar reports whether b may appear unencoded in an RFC 8187 value.
func isAttrChar(b byte) bool {
	switch {
	case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9':
		return true
	}
	return strings.IndexByte("!#$&+-.^_`|~", b) >= 0
}

// uploadArchive takes an archive as the raw body (application/zip or
// application/octet-stream) or as the "file" part of a multipart form, and
// records it as a new ready backup with origin upload: 201 with the backup
// and its Location. The body streams into the archive store; it is never
// held in memory. The name is ?name=, else the form's "name" field, else
// the uploaded file's name without its extension, else the default name.
// A retry with the same Idempotency-Key answers 201 with the first backup.
func (s *Server) uploadArchive(w http.ResponseWriter, r *http.Request, c call) error {
	if err := s.app.CheckTransfers(); err != nil {
		return err
	}
	uc, err := s.command(w, r, c)
	if err != nil {
		return err
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil && r.Header.Get("Content-Type") != "" {
		return unsupportedUpload(r.Header.Get("Content-Type"))
	}
	multi := mt == "multipart/form-data"
	if !multi && !rawArchiveType(mt) {
		return unsupportedUpload(r.Header.Get("Content-Type"))
	}
	limit := s.cfg.MaxUploadBytes
	if multi {
		limit += multipartSlack
	}
	if r.ContentLength > limit {
		return s.tooLarge()
	}

	// Reading the body may outlast a server-wide write deadline: lift it
	// now, and set it again before anything is written.
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	wd := &progress{set: rc.SetWriteDeadline, idle: s.cfg.TransferIdleTimeout}
	defer wd.touch()
	body := &uploadBody{r: http.MaxBytesReader(w, r.Body, limit), rd: &progress{set: rc.SetReadDeadline, idle: s.cfg.TransferIdleTimeout}}
	r.Body = body
	q := r.URL.Query()
	up := usecase.UploadBackup{Upload: domain.Upload{App: c.app, Name: nonEmpty(q.Get("name")), Description: q.Get("description")}}
	if multi {
		f, err := s.formFile(r, &up.Upload, q.Has("description"))
		if err != nil {
			return s.uploadFailure(body, err)
		}
		up.Body, up.FileName = f, f.FileName()
	} else {
		up.Body, up.FileName = body, rawFileName(r)
	}
	b, err := s.app.UploadBackup(r.Context(), uc, up)
	wd.touch()
	if err != nil {
		return s.uploadFailure(body, err)
	}
	replayed(w, uc)
	w.Header().Set("Location", "/v1/apps/"+c.app+"/backups/"+b.ID)
	writeJSON(w, http.StatusCreated, b)
	return nil
}

// formFile reads a multipart upload up to its "file" part and returns that
// part, unread. The "name" and "description" fields before it fill in up
// where the query left them unset; other fields are skipped.
func (s *Server) formFile(r *http.Request, up *domain.Upload, haveDescription bool) (*multipart.Part, error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, domain.Errorf(domain.CodeInvalidArgument, "malformed multipart body: %v", err)
	}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return nil, domain.Errorf(domain.CodeInvalidArgument, `multipart upload has no "file" part`)
		}
		if err != nil {
			return nil, domain.Errorf(domain.CodeInvalidArgument, "malformed multipart body: %v", err)
		}
		switch p.FormName() {
		case "file":
			return p, nil
		case "name":
			v, err := formValue(p)
			if err != nil {
				return nil, err
			}
			if up.Name == nil {
				up.Name = nonEmpty(v)
			}
		case "description":
			v, err := formValue(p)
			if err != nil {
				return nil, err
			}
			if !haveDescription {
				up.Description = v
			}
		default:
			if _, err := io.Copy(io.Discard, p); err != nil {
				return nil, domain.Errorf(domain.CodeInvalidArgument, "malformed multipart body: %v", err)
			}
		}
	}
}

// formValue reads a small multipart form field.
func formValue(p *multipart.Part) (string, error) {
	v, err := io.ReadAll(io.LimitReader(p, maxFormField+1))
	if err != nil {
		return "", domain.Errorf(domain.CodeInvalidArgument, "malformed multipart body: %v", err)
	}
	if len(v) > maxFormField {
		return "", domain.Errorf(domain.CodeInvalidArgument, "form field %q is longer than %d bytes", p.FormName(), maxFormField)
	}
	return string(v), nil
}

// tooLarge is the error of an upload over the limit.
func (s *Server) tooLarge() error {
	return domain.Errorf(domain.CodeArchiveTooLarge, "the archive is larger than the upload limit of %d bytes", s.cfg.MaxUploadBytes)
}

// rawArchiveType reports whether a raw upload body may have media type mt.
func rawArchiveType(mt string) bool {
	switch mt {
	case "", "application/zip", "application/x-zip-compressed", "application/x-zip", "application/octet-stream":
		return true
	}
	return false
}

func unsupportedUpload(ct string) error {
	return &domain.Error{Code: usecase.CodeUnsupportedMediaType, Message: fmt.Sprintf(
		"an upload is a zip sent as the raw body (Content-Type: application/zip or application/octet-stream) or as the \"file\" part of multipart/form-data, got %q", ct)}
}

// rawFileName is the file name of a raw upload: the filename of its
// Content-Disposition header, else ?filename=.
func rawFileName(r *http.Request) string {
	if cd := r.Header.Get("Content-Disposition"); cd != "" {
		if _, params, err := mime.ParseMediaType(cd); err == nil && params["filename"] != "" {
			return params["filename"]
		}
	}
	return r.URL.Query().Get("filename")
}

// nonEmpty returns &v, or nil when v is blank.
func nonEmpty(v string) *string {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	return &v
}

// uploadBody is an upload's request body: reads past the limit fail with
// *http.MaxBytesError, which it remembers, and every read before the end
// pushes the read deadline ahead. Once the body has ended net/http lifts
// the read deadline to watch for the client going away; a deadline set
// again then would, once passed, cancel the request's context while the
// archive store is still at work, so a read after the end leaves it be.
type uploadBody struct {
	r     io.ReadCloser
	rd    *progress
	ended bool
	// tooLarge is set when the body crossed the limit, broken when
	// reading it failed otherwise (the client stalled or went away).
	tooLarge, broken atomic.Bool
}

func (b *uploadBody) Read(p []byte) (int, error) {
	if b.ended {
		return 0, io.EOF
	}
	b.rd.touch()
	n, err := b.r.Read(p)
	switch {
	case err == io.EOF:
		b.ended = true
	case err != nil:
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			b.tooLarge.Store(true)
		} else {
			b.broken.Store(true)
		}
	}
	return n, err
}

// uploadFailure replaces err, the failure of an upload, by what went
// wrong with its body, if anything did: 413 over the limit, 400 when it
// could not be read to its end.
func (s *Server) uploadFailure(body *uploadBody, err error) error {
	switch {
	case body.tooLarge.Load():
		return s.tooLarge()
	case body.broken.Load():
		return domain.Errorf(domain.CodeInvalidArgument, "the request body could not be read to its end: the client stalled or went away")
	}
	return err
}

func (b *uploadBody) Close() error { return b.r.Close() }

// progress keeps one of a connection's deadlines (set is a
// ResponseController's SetReadDeadline or SetWriteDeadline) idle ahead
// while a transfer makes progress: a stalled peer is dropped, a long
// transfer never cut. It pushes at most every idle/4. A writer that cannot
// set deadlines makes it do nothing.
type progress struct {
	set  func(time.Time) error
	idle time.Duration
	next time.Time
	off  bool
}

func (p *progress) touch() {
	if p.off {
		return
	}
	now := time.Now()
	if now.Before(p.next) {
		return
	}
	if err := p.set(now.Add(p.idle)); err != nil {
		p.off = true
		return
	}
	p.next = now.Add(p.idle / 4)
}
