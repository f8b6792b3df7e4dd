package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxJSONAnswer bounds the JSON answers backupctl reads into memory.
const maxJSONAnswer = 64 << 20

// client talks to backupd's HTTP API.
type client struct {
	base      string // scheme://host[:port][/prefix], no trailing slash
	token     string
	tokenFrom string   // where the token came from, for the hint on a 401
	session   *session // the session the token came from, if it did
	timeout   time.Duration
	http      *http.Client
}

// plain parses the arguments of a command that has no flags of its own
// (minArgs to maxArgs positional ones) and returns them with a client.
func (c *cli) plain(cmd *command, args []string, minArgs, maxArgs int) ([]string, *client, error) {
	pos, err := c.parse(cmd, c.flagSet(cmd.name), args, minArgs, maxArgs)
	if err != nil {
		return nil, nil, err
	}
	cl, err := c.newClient(cmd)
	return pos, cl, err
}

// newClient checks the global flags and finds the token (see findToken):
// --token, else $BACKUPCTL_TOKEN, else the session of backupctl login (for
// this server, not expired), else ./data/admin.token. No token is a usage
// error.
func (c *cli) newClient(cmd *command) (*client, error) {
	cl, err := c.anonClient(cmd)
	if err != nil {
		return nil, err
	}
	cred, err := c.findToken(cl.base)
	if err != nil {
		return nil, err
	}
	cl.token, cl.tokenFrom, cl.session = cred.token, cred.from, cred.session
	return cl, nil
}

// anonClient checks the global flags and returns a client without a token,
// for the login and for callers that bring their own token.
func (c *cli) anonClient(cmd *command) (*client, error) {
	base, err := serverURL(c.g.server)
	if err != nil {
		return nil, &usageError{msg: err.Error(), cmd: cmd}
	}
	return c.clientFor(base), nil
}

// clientFor returns a client of the server at base (already checked),
// without a token.
func (c *cli) clientFor(base string) *client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: c.g.timeout, KeepAlive: 30 * time.Second}).DialContext
	tr.ResponseHeaderTimeout = c.g.timeout
	return &client{base: base, timeout: c.g.timeout, http: &http.Client{Transport: tr}}
}

// serverURL checks and normalises --server; "host:port" means http.
func serverURL(s string) (string, error) {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("--server %q is not an http:// or https:// URL", s)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// apiPath joins the path segments of a route, escaping each; a segment may
// hold "/" (config keys), which stay separators.
func apiPath(segments ...string) string {
	var b strings.Builder
	for _, s := range segments {
		for part := range strings.SplitSeq(s, "/") {
			b.WriteByte('/')
			b.WriteString(url.PathEscape(part))
		}
	}
	return b.String()
}

// problemError is an error answer of the server: its problem document
// (RFC 9457) with the stable code.
type problemError struct {
	Status     int    `json:"status"`
	Code       string `json:"code"`
	Detail     string `json:"detail"`
	RetryAfter int64  `json:"retry_after_seconds"`
	hint       string
}

func (e *problemError) Error() string {
	msg := e.Code + ": " + e.Detail
	if e.RetryAfter > 0 {
		msg += fmt.Sprintf(" (retry after %ds)", e.RetryAfter)
	}
	if e.hint != "" {
		msg += " (" + e.hint + ")"
	}
	return msg
}

// request is one API call.
type request struct {
	method string
	path   string // escaped, from apiPath
	query  url.Values
	header http.Header
	// body is sent as is; json, if not nil, is marshalled instead.
	body io.Reader
	size int64 // of body; -1 unknown
	json any
	// command requests get an Idempotency-Key, kept over retries.
	command bool
	// transfer requests move archives: --timeout bounds only the wait for
	// the answer's headers, not the whole request, and they are not
	// retried.
	transfer bool
	// stream leaves a transfer's answer body open for the caller.
	stream bool
}

// answer is a successful answer; body is set unless the request streamed.
type answer struct {
	status int
	header http.Header
	body   []byte
	resp   *http.Response // streamed answers only; the caller closes its body
}

// do sends req and returns its answer if its status is 2xx, else the
// problem. A JSON request that the server answers 503 (starting, or timed
// out) is retried, with the same idempotency key, within --timeout.
func (cl *client) do(ctx context.Context, req request) (*answer, error) {
	if req.command {
		if req.header == nil {
			req.header = http.Header{}
		}
		req.header.Set("Idempotency-Key", rand.Text())
	}
	var payload []byte
	if req.json != nil {
		b, err := json.Marshal(req.json)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		payload = b
	}
	if !req.transfer {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cl.timeout)
		defer cancel()
	}
	u := cl.base + req.path
	if len(req.query) > 0 {
		u += "?" + req.query.Encode()
	}
	for attempt := 1; ; attempt++ {
		hr, err := http.NewRequestWithContext(ctx, req.method, u, nil)
		if err != nil {
			return nil, fmt.Errorf("request: %w", err)
		}
		switch {
		case payload != nil:
			hr.Body = io.NopCloser(bytes.NewReader(payload))
			hr.ContentLength = int64(len(payload))
			hr.Header.Set("Content-Type", "application/json")
		case req.body != nil:
			hr.Body = io.NopCloser(req.body)
			hr.ContentLength = req.size
		}
		for k, v := range req.header {
			hr.Header[k] = v
		}
		if cl.token != "" {
			hr.Header.Set("Authorization", "Bearer "+cl.token)
		}
		hr.Header.Set("User-Agent", "backupctl")
		resp, err := cl.http.Do(hr)
		if err != nil {
			return nil, cl.netError(ctx, err)
		}
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			if req.stream {
				return &answer{status: resp.StatusCode, header: resp.Header, resp: resp}, nil
			}
			body, err := io.ReadAll(io.LimitReader(resp.Body, maxJSONAnswer))
			resp.Body.Close()
			if err != nil {
				return nil, cl.netError(ctx, err)
			}
			return &answer{status: resp.StatusCode, header: resp.Header, body: body}, nil
		}
		perr := cl.problem(resp)
		retry := resp.StatusCode == http.StatusServiceUnavailable && !req.transfer && req.body == nil && attempt < 10
		if !retry {
			return nil, perr
		}
		wait := 500 * time.Millisecond
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			wait = min(time.Duration(s)*time.Second, 2*time.Second)
		}
		select {
		case <-ctx.Done():
			return nil, perr
		case <-time.After(wait):
		}
	}
}

// problem reads an error answer into a problemError and closes its body.
func (cl *client) problem(resp *http.Response) error {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	p := &problemError{}
	if err := json.Unmarshal(b, p); err != nil || p.Code == "" {
		text := strings.TrimSpace(string(b))
		if len(text) > 200 {
			text = text[:200] + "…"
		}
		if text == "" {
			return fmt.Errorf("server answered %s", resp.Status)
		}
		return fmt.Errorf("server answered %s: %s", resp.Status, text)
	}
	if p.RetryAfter == 0 {
		if s, err := strconv.ParseInt(resp.Header.Get("Retry-After"), 10, 64); err == nil && p.Code != "unavailable" {
			p.RetryAfter = s
		}
	}
	if resp.StatusCode == http.StatusUnauthorized && cl.tokenFrom != "" {
		p.hint = "token from " + cl.tokenFrom
	}
	return p
}

// netError says clearly that the server could not be reached or did not
// answer in time.
func (cl *client) netError(ctx context.Context, err error) error {
	if errors.Is(err, context.Canceled) {
		return errors.New("interrupted")
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || isTimeout(err) {
		return fmt.Errorf("no answer from %s within %s (--timeout)", cl.base, cl.timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("cannot reach backupd at %s: %w", cl.base, err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// getJSON reads a document into v and returns its raw JSON.
func (cl *client) getJSON(ctx context.Context, path string, v any) ([]byte, error) {
	a, err := cl.do(ctx, request{method: http.MethodGet, path: path})
	if err != nil {
		return nil, err
	}
	if v != nil {
		if err := json.Unmarshal(a.body, v); err != nil {
			return nil, fmt.Errorf("decode answer of %s: %w", path, err)
		}
	}
	return a.body, nil
}

// decode decodes a JSON answer into v.
func decode(raw []byte, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}
