package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"
)

// fromSession is where a token from the session file came from, as the
// hint on a 401 says: "(token from backupctl login)".
const fromSession = "backupctl login"

// credential is a bearer token and where it came from.
type credential struct {
	token string
	// from is "--token", "$BACKUPCTL_TOKEN", "backupctl login" or
	// "./data/admin.token".
	from    string
	session *session // the session, when from it
}

// findToken finds the token for the server at base (as serverURL returns
// it), in this order:
//
//  1. --token;
//  2. $BACKUPCTL_TOKEN;
//  3. the session of backupctl login, if it is for the same server and
//     has not expired;
//  4. ./data/admin.token, the server administrator's token beside a local
//     backupd.
//
// No token at all is a usageError, which says why a session was passed
// over.
func (c *cli) findToken(base string) (credential, error) {
	if c.g.token != "" {
		return credential{token: c.g.token, from: "--token"}, nil
	}
	if t := c.env(envToken); t != "" {
		return credential{token: t, from: "$" + envToken}, nil
	}
	s, passedOver := c.usableSession(base, time.Now())
	if s != nil {
		return credential{token: s.Token, from: fromSession, session: s}, nil
	}
	b, err := os.ReadFile(tokenFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		msg := "no token"
		if passedOver != "" {
			msg += " (" + passedOver + ")"
		}
		return credential{}, &usageError{msg: msg + ": pass --token, set " + envToken +
			", log in with backupctl login, or run backupctl in the directory that holds backupd's data/admin.token"}
	case err != nil:
		return credential{}, &usageError{msg: fmt.Sprintf("read token: %v", err)}
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return credential{}, &usageError{msg: fmt.Sprintf("token file ./%s is empty", tokenFile)}
	}
	if passedOver != "" {
		// Falling back from a user's login to the server administrator
		// must not go unnoticed.
		fmt.Fprintf(c.stderr, "backupctl: note: %s; acting as the server administrator with ./%s\n", passedOver, tokenFile)
	}
	return credential{token: t, from: "./" + tokenFile}, nil
}

// usableSession returns the stored session if it is for the server at base
// and has not expired at now; else nil, and why it passed over a session
// that exists (empty if there is none).
func (c *cli) usableSession(base string, now time.Time) (*session, string) {
	path, err := c.sessionPath()
	if err != nil {
		return nil, "" // no config dir, so no session
	}
	s, err := loadSession(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, ""
	case err != nil:
		fmt.Fprintf(c.stderr, "backupctl: ignoring the session of backupctl login: %v\n", err)
		return nil, "the session file is unusable; log in again"
	case s.Server != base:
		return nil, fmt.Sprintf("the session of backupctl login is for %s", s.Server)
	case s.expired(now):
		return nil, fmt.Sprintf("the session of backupctl login expired at %s; log in again", second(&s.ExpiresAt))
	}
	return s, ""
}
