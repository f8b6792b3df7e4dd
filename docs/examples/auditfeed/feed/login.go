package feed

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/nats-io/nats.go"
)

// Login is a NATS login file as backupd writes it for each role of its
// embedded server, e.g. <data-dir>/nats/audit.json (docs/security.md). On
// a NATS cluster of your own, write the audit user's login in the same
// form.
type Login struct {
	User     string `json:"user"`
	Password string `json:"password"`
	// InboxPrefix is the prefix of the reply subjects the role may
	// subscribe to: "_INBOX_audit" for the audit role. Without it, replies
	// and deliveries never arrive.
	InboxPrefix string `json:"inbox_prefix"`
	// URL is the server's URL, with the user and password in it.
	URL string `json:"url"`
}

// ReadLogin reads a login file. It returns an error wrapping fs.ErrNotExist
// when the file does not exist, and one naming the file when it is not a
// login.
func ReadLogin(path string) (Login, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Login{}, fmt.Errorf("read login: %w", err)
	}
	var l Login
	if err := json.Unmarshal(b, &l); err != nil {
		return Login{}, fmt.Errorf("login %s: %w", path, err)
	}
	if l.URL == "" {
		return Login{}, fmt.Errorf("login %s: no url", path)
	}
	return l, nil
}

// Options returns the nats.go options that log in with l: the user and
// password, and the inbox prefix.
func (l Login) Options() []nats.Option {
	var opts []nats.Option
	if l.User != "" {
		opts = append(opts, nats.UserInfo(l.User, l.Password))
	}
	if l.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(l.InboxPrefix))
	}
	return opts
}
