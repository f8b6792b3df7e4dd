package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/backupledger/backupledger/adapters/natsapi"
)

// AttemptTimeout is how long an attempt waits for its answer by default:
// longer than backupd's command bound (5 s), so that a slow answer is seen
// as one rather than as none.
const AttemptTimeout = 15 * time.Second

// problem holds the fields of a problem document the load looks at.
type problem struct {
	Code     string `json:"code"`
	Recorded string `json:"recorded"`
}

// HTTP sends commands to backupd's HTTP API.
type HTTP struct {
	// Base is the API's base URL, e.g. http://127.0.0.1:8080.
	Base string
	// Token is the bearer token of the requests.
	Token string
	// Client sends the requests (default: one with a connection per
	// client kept alive).
	Client *http.Client
	// Timeout bounds an attempt (default AttemptTimeout).
	Timeout time.Duration
}

// NewHTTP returns an HTTP target whose client keeps up to conns
// connections to base.
func NewHTTP(base, token string, conns int) *HTTP {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = conns, conns
	return &HTTP{Base: base, Token: token, Client: &http.Client{Transport: tr}}
}

func (h *HTTP) String() string { return h.Base }

// Send implements Target.
func (h *HTTP) Send(ctx context.Context, cmd Command) Answer {
	ctx, cancel := context.WithTimeout(ctx, orDefault(h.Timeout, AttemptTimeout))
	defer cancel()
	path := "/v1/apps/" + url.PathEscape(cmd.App) + "/backups"
	var method string
	var body []byte
	switch cmd.Op {
	case OpRename:
		method, path = http.MethodPatch, path+"/"+url.PathEscape(cmd.BackupID)
		body, _ = json.Marshal(map[string]string{"name": cmd.Name})
	case OpCreate:
		method = http.MethodPost
		body, _ = json.Marshal(map[string]string{"name": cmd.Name})
	case OpDelete:
		method, path = http.MethodDelete, path+"/"+url.PathEscape(cmd.BackupID)
	}
	req, err := http.NewRequestWithContext(ctx, method, h.Base+path, bytes.NewReader(body))
	if err != nil {
		return Answer{Err: err}
	}
	req.Header.Set("Authorization", "Bearer "+h.Token)
	req.Header.Set("Idempotency-Key", cmd.Key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	client := h.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return Answer{Err: err}
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return Answer{Err: err}
	}
	return answerOf(resp.StatusCode, resp.Header.Get("Retry-After"), out)
}

// NATS sends commands to backupd's NATS API.
type NATS struct {
	// Conn is the producer's connection.
	Conn *nats.Conn
	// Token is the bearer token of the requests.
	Token string
	// Timeout bounds an attempt (default AttemptTimeout).
	Timeout time.Duration
}

func (n *NATS) String() string { return "nats " + n.Conn.ConnectedUrlRedacted() }

// Send implements Target.
func (n *NATS) Send(ctx context.Context, cmd Command) Answer {
	ctx, cancel := context.WithTimeout(ctx, orDefault(n.Timeout, AttemptTimeout))
	defer cancel()
	fields := natsapi.CommandFields{IdempotencyKey: cmd.Key}
	var subject string
	var req any
	switch cmd.Op {
	case OpRename:
		name := cmd.Name
		subject, req = natsapi.SubjectBackupsRename, natsapi.RenameRequest{App: cmd.App, ID: cmd.BackupID, Name: &name, CommandFields: fields}
	case OpCreate:
		name := cmd.Name
		subject, req = natsapi.SubjectBackupsCreate, natsapi.CreateRequest{App: cmd.App, Name: &name, CommandFields: fields}
	case OpDelete:
		subject, req = natsapi.SubjectBackupsDelete, natsapi.DeleteRequest{App: cmd.App, ID: cmd.BackupID, CommandFields: fields}
	}
	msg := nats.NewMsg(subject)
	msg.Header.Set("Authorization", "Bearer "+n.Token)
	msg.Data, _ = json.Marshal(req)
	reply, err := n.Conn.RequestMsgWithContext(ctx, msg)
	if err != nil {
		return Answer{Err: err}
	}
	status := http.StatusOK
	if code := reply.Header.Get(micro.ErrorCodeHeader); code != "" {
		if status, err = strconv.Atoi(code); err != nil {
			return Answer{Status: 0, Err: fmt.Errorf("error code header %q", code)}
		}
	}
	return answerOf(status, reply.Header.Get("Retry-After"), reply.Data)
}

// answerOf reads an answer of either transport.
func answerOf(status int, retryAfter string, body []byte) Answer {
	a := Answer{Status: status}
	if s, err := strconv.Atoi(retryAfter); err == nil && s > 0 {
		a.RetryAfter = time.Duration(s) * time.Second
	}
	if status >= 200 && status < 300 {
		var v struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(body, &v) == nil {
			a.BackupID = v.ID
		}
		return a
	}
	var p problem
	_ = json.Unmarshal(body, &p)
	a.Code, a.Recorded, a.Body = p.Code, p.Recorded, string(body)
	return a
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
