package domain

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// SecretStore keeps what must never be in the event stream: password and
// token hashes. Only backupd may read it.
type SecretStore interface {
	// PutSecret stores value under key, replacing any value.
	PutSecret(ctx context.Context, key string, value []byte) error
	// Secret returns the value of key, or an error wrapping ErrNoSecret.
	Secret(ctx context.Context, key string) ([]byte, error)
}

// ErrNoSecret is returned (wrapped) by a SecretStore for an unknown key.
var ErrNoSecret = errors.New("no such secret")

// PasswordHasher hashes passwords and checks them against a hash
// (bcrypt at the edge; the comparison's time does not depend on where the
// password differs).
type PasswordHasher interface {
	HashPassword(password string) ([]byte, error)
	// PasswordMatches reports whether password is the one hash was made of.
	PasswordMatches(hash []byte, password string) bool
}

// DirectoryView is the fold of the identity events that this process keeps
// (the projection); identity commands are decided against it.
type DirectoryView interface {
	// ReadDirectory calls fn with the directory while no event is applied
	// to it. fn must not keep or change it.
	ReadDirectory(fn func(d *Directory))
	// WaitApplied returns once stream sequence seq is applied, or with
	// ctx's error.
	WaitApplied(ctx context.Context, seq uint64) error
}

// IdentityConfig are the settings of the Identity service.
type IdentityConfig struct {
	// SessionTTL is how long a login's session token lasts; default 12h.
	SessionTTL time.Duration
}

// Identity is the application service of identity and access: it decides
// and appends identity commands, keeps the secrets, authenticates tokens
// and answers who may act on which app.
type Identity struct {
	store   EventStore
	view    DirectoryView
	secrets SecretStore
	hasher  PasswordHasher
	clock   Clock
	ids     IDs
	cfg     IdentityConfig
	log     *slog.Logger

	mu sync.Mutex // identity commands of this process go one at a time

	hmu    sync.Mutex
	hashes map[string][]byte // token id → SHA-256 of its secret
	// dummy is a password hash compared against for unknown users, so that
	// a login takes as long whether or not the user exists.
	dummy []byte
}

// NewIdentity returns the identity service.
func NewIdentity(store EventStore, view DirectoryView, secrets SecretStore, hasher PasswordHasher, clock Clock, ids IDs, cfg IdentityConfig, log *slog.Logger) (*Identity, error) {
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dummy, err := hasher.HashPassword(rand.Text())
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	return &Identity{store: store, view: view, secrets: secrets, hasher: hasher, clock: clock, ids: ids, cfg: cfg, log: log,
		hashes: map[string][]byte{}, dummy: dummy}, nil
}

// IdentityResult is the outcome of an identity command.
type IdentityResult struct {
	// Seq is the stream sequence of the event, 0 when the command changed
	// nothing (it was already so).
	Seq       uint64
	EventType string
	Duplicate bool
}

// Execute decides cmd for p against the directory and appends its event,
// with m's command id (a retry answers the first result). It returns an
// *Error for a refused command.
func (s *Identity) Execute(ctx context.Context, p Principal, cmd IdentityCommand, m Meta) (IdentityResult, error) {
	if p.ID == "" {
		return IdentityResult{}, ErrUnauthenticated
	}
	m.Actor = p.ID
	if m.CommandID == "" {
		m.CommandID = s.ids.NewID(s.clock.Now())
	} else if err := ValidateCommandKey(m.CommandID); err != nil {
		return IdentityResult{}, err
	}
	if m.CorrelationID == "" {
		m.CorrelationID = m.CommandID
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.execute(ctx, p, cmd, m)
}

// maxIdentityAttempts bounds the decide-append rounds of one command.
const maxIdentityAttempts = 20

func (s *Identity) execute(ctx context.Context, p Principal, cmd IdentityCommand, m Meta) (IdentityResult, error) {
	key := CommandKey(m.Actor, m.CommandID)
	for attempt := 1; ; attempt++ {
		var (
			ev       Event
			derr     error
			rec      CommandRecord
			seen     bool
			expected uint64
			prev     string
			now      = s.clock.Now().UTC().Truncate(time.Millisecond)
		)
		s.view.ReadDirectory(func(d *Directory) {
			if rec, seen = d.Command(key); seen {
				return
			}
			expected, prev = d.Seq(), d.LastHash()
			ev, derr = cmd.Decide(d, p, now)
		})
		if seen {
			return IdentityResult{Seq: rec.Seq, EventType: rec.Type, Duplicate: true}, nil
		}
		if derr != nil {
			return IdentityResult{}, derr
		}
		if ev == nil {
			return IdentityResult{}, nil
		}
		_, body, err := encode(IdentityStream, now, ev, m, prev, s.ids.NewID(now))
		if err != nil {
			return IdentityResult{}, err
		}
		res, err := s.store.Append(ctx, PendingEvent{App: IdentityStream, Type: ev.EventType(),
			MsgID: IdentityStream + "|" + m.CommandID + "|" + m.Actor, ExpectedSeq: expected, Body: body})
		if errors.Is(err, ErrConflict) && attempt < maxIdentityAttempts {
			// Another process appended: catch up with it and decide again.
			last, lerr := s.store.LastSeq(ctx, IdentityStream)
			if lerr != nil {
				return IdentityResult{}, lerr
			}
			if werr := s.view.WaitApplied(ctx, last); werr != nil {
				return IdentityResult{}, werr
			}
			continue
		}
		if err != nil {
			return IdentityResult{}, err
		}
		if err := s.view.WaitApplied(ctx, res.Seq); err != nil {
			return IdentityResult{}, err
		}
		if !res.Duplicate {
			if err := refused(s.view, res.Seq, ev.EventType()); err != nil {
				s.log.Error("own event refused", "app", IdentityStream, "seq", res.Seq, "type", ev.EventType(), "err", err)
				return IdentityResult{}, err
			}
		}
		return IdentityResult{Seq: res.Seq, EventType: ev.EventType(), Duplicate: res.Duplicate}, nil
	}
}

func passwordKey(user string) string { return "password." + user }
func tokenKey(id string) string      { return "token." + id }

// CreateUser creates a user with its password (server admin). The
// password's hash goes to the secret store before the event, so that the
// user never exists without it.
func (s *Identity) CreateUser(ctx context.Context, p Principal, c CreateUser, m Meta) (IdentityResult, error) {
	if err := s.precheck(p, c); err != nil {
		return IdentityResult{}, err
	}
	if err := s.storePassword(ctx, c.ID, c.Password); err != nil {
		return IdentityResult{}, err
	}
	return s.Execute(ctx, p, c, m)
}

// ChangePassword sets a user's password: the server admin for anyone, a
// user for itself. It also ends the user's lockout.
func (s *Identity) ChangePassword(ctx context.Context, p Principal, c ChangePassword, m Meta) (IdentityResult, error) {
	if err := s.precheck(p, c); err != nil {
		return IdentityResult{}, err
	}
	if err := s.storePassword(ctx, c.User, c.Password); err != nil {
		return IdentityResult{}, err
	}
	return s.Execute(ctx, p, c, m)
}

// precheck decides cmd without appending, so that a refused command
// stores no secret either.
func (s *Identity) precheck(p Principal, cmd IdentityCommand) error {
	var err error
	now := s.clock.Now().UTC()
	s.view.ReadDirectory(func(d *Directory) { _, err = cmd.Decide(d, p, now) })
	return err
}

// seen reports whether the directory already recorded p's command m: a
// retried command that makes a secret must not store another one.
func (s *Identity) seen(p Principal, m Meta) bool {
	if m.CommandID == "" {
		return false
	}
	var ok bool
	s.view.ReadDirectory(func(d *Directory) { _, ok = d.Command(CommandKey(p.ID, m.CommandID)) })
	return ok
}

func (s *Identity) storePassword(ctx context.Context, user, password string) error {
	h, err := s.hasher.HashPassword(password)
	if err != nil {
		return fmt.Errorf("hash password: %w", err)
	}
	if err := s.secrets.PutSecret(ctx, passwordKey(user), h); err != nil {
		return fmt.Errorf("store password of %s: %w", user, err)
	}
	return nil
}

// NewToken is a token just made: its secret is shown once.
type NewToken struct {
	Token
	// Secret is the bearer token to present; it is not kept.
	Secret string
}

// tokenPrefix starts every token the Identity service makes.
const tokenPrefix = "bl_"

// CreateToken makes an API token of the caller, with a name and an
// optional expiry: 256 random bits, kept only as their SHA-256.
func (s *Identity) CreateToken(ctx context.Context, p Principal, name string, expiresAt time.Time, m Meta) (NewToken, error) {
	return s.createToken(ctx, p, CreateToken{Name: name, Kind: TokenAPI, User: p.ID, ExpiresAt: expiresAt}, m)
}

func (s *Identity) createToken(ctx context.Context, p Principal, c CreateToken, m Meta) (NewToken, error) {
	now := s.clock.Now().UTC()
	c.ID = s.ids.NewID(now)
	if err := s.precheck(p, c); err != nil {
		return NewToken{}, err
	}
	if s.seen(p, m) {
		return NewToken{}, Errorf(CodeAlreadyExists, "this command already made a token; its secret was shown then")
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret) // never fails
	sum := sha256.Sum256(secret)
	if err := s.secrets.PutSecret(ctx, tokenKey(c.ID), sum[:]); err != nil {
		return NewToken{}, fmt.Errorf("store token: %w", err)
	}
	res, err := s.Execute(ctx, p, c, m)
	if err != nil {
		return NewToken{}, err
	}
	if res.Duplicate {
		return NewToken{}, Errorf(CodeAlreadyExists, "this command already made a token; its secret was shown then")
	}
	t := Token{ID: c.ID, User: c.User, Name: c.Name, Kind: c.Kind, ExpiresAt: c.ExpiresAt.UTC(), CreatedAt: now.Truncate(time.Millisecond)}
	return NewToken{Token: t, Secret: tokenPrefix + c.ID + "_" + base64.RawURLEncoding.EncodeToString(secret)}, nil
}

// Login checks a user's password and makes a session token that expires
// after IdentityConfig.SessionTTL. An unknown or disabled user and a
// wrong password are ErrUnauthenticated alike (a wrong password is
// recorded, and locks the user after LockoutFailures); a locked user is
// CodePasswordLocked.
func (s *Identity) Login(ctx context.Context, user, password string, m Meta) (NewToken, error) {
	if err := s.checkPassword(ctx, user, password, "login"); err != nil {
		if Code(err) == CodePasswordIncorrect {
			return NewToken{}, &Error{Code: CodeUnauthenticated, Message: "user or password incorrect"}
		}
		return NewToken{}, err
	}
	p := Principal{ID: user}
	return s.createToken(ctx, p, CreateToken{Name: "login", Kind: TokenSession, User: user,
		ExpiresAt: s.clock.Now().UTC().Add(s.cfg.SessionTTL).Truncate(time.Second)}, m)
}

// VerifyPassword checks the password of the caller p again, for a
// restore: CodePasswordIncorrect (recorded; LockoutFailures of them within
// LockoutWindow lock the user for LockoutDuration) or CodePasswordLocked
// with when the lockout ends. The server administrator has no password.
func (s *Identity) VerifyPassword(ctx context.Context, p Principal, password, purpose string) error {
	if p.Admin {
		return nil // the admin token is the server administrator's only secret
	}
	return s.checkPassword(ctx, p.ID, password, purpose)
}

func (s *Identity) checkPassword(ctx context.Context, user, password, purpose string) error {
	var (
		known, enabled bool
		lockedUntil    time.Time
		locked         bool
		now            = s.clock.Now().UTC()
	)
	s.view.ReadDirectory(func(d *Directory) {
		if u, ok := d.User(user); ok {
			known, enabled = true, !u.Disabled
			lockedUntil, locked = u.LockedUntil(now)
		}
	})
	if locked {
		return &Error{Code: CodePasswordLocked, Message: fmt.Sprintf("too many wrong passwords: locked until %s", lockedUntil.Format(time.RFC3339)),
			RetryAfter: lockedUntil.Sub(now)}
	}
	hash := s.dummy
	if known {
		h, err := s.secrets.Secret(ctx, passwordKey(user))
		if err != nil && !errors.Is(err, ErrNoSecret) {
			return err
		}
		if err == nil {
			hash = h
		}
	}
	ok := s.hasher.PasswordMatches(hash, password)
	if known && enabled && ok && subtle.ConstantTimeCompare(hash, s.dummy) == 0 {
		return nil
	}
	if !known || !enabled {
		return &Error{Code: CodeUnauthenticated, Message: "user or password incorrect"}
	}
	// Record the failure (an audit event), decided against the directory
	// as it is when appended, so that failures seen by several replicas
	// count together; the last straw locks.
	if _, err := s.Execute(ctx, Principal{ID: user}, recordFailure{user: user, purpose: purpose}, Meta{}); err != nil {
		s.log.Warn("record wrong password", "user", user, "err", err)
	}
	s.view.ReadDirectory(func(d *Directory) {
		if u, ok := d.User(user); ok {
			lockedUntil, locked = u.LockedUntil(now)
		}
	})
	if locked {
		return &Error{Code: CodePasswordLocked, Message: fmt.Sprintf("too many wrong passwords: locked until %s", lockedUntil.Format(time.RFC3339)),
			RetryAfter: lockedUntil.Sub(now)}
	}
	return Errorf(CodePasswordIncorrect, "password incorrect")
}

// recordFailure records a wrong password of user.
type recordFailure struct{ user, purpose string }

func (r recordFailure) Decide(d *Directory, _ Principal, now time.Time) (Event, error) {
	return d.passwordFailure(r.user, r.purpose, now), nil
}

// Authenticate turns a token the Identity service made into its user's
// Principal: the token must exist, be neither revoked nor expired, belong
// to an enabled user, and its secret must match. Anything else is
// ErrUnauthenticated.
func (s *Identity) Authenticate(ctx context.Context, token string) (Principal, error) {
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok {
		return Principal{}, ErrUnauthenticated
	}
	id, enc, ok := strings.Cut(rest, "_")
	if !ok || id == "" || len(id) > 64 {
		return Principal{}, ErrUnauthenticated
	}
	secret, err := base64.RawURLEncoding.Strict().DecodeString(enc) // one spelling per token
	if err != nil || len(secret) != 32 {
		return Principal{}, ErrUnauthenticated
	}
	var (
		user   string
		active bool
		now    = s.clock.Now()
	)
	s.view.ReadDirectory(func(d *Directory) {
		t, ok := d.Token(id)
		if !ok || !t.Active(now) {
			return
		}
		if u, ok := d.User(t.User); ok && !u.Disabled {
			user, active = t.User, true
		}
	})
	if !active {
		return Principal{}, ErrUnauthenticated
	}
	want, err := s.tokenHash(ctx, id)
	if err != nil {
		return Principal{}, err
	}
	got := sha256.Sum256(secret)
	if subtle.ConstantTimeCompare(got[:], want) != 1 {
		return Principal{}, ErrUnauthenticated
	}
	return Principal{ID: user, TokenID: id}, nil
}

// tokenHash returns the stored hash of a token's secret; a token's hash
// never changes, so it is kept once read.
func (s *Identity) tokenHash(ctx context.Context, id string) ([]byte, error) {
	s.hmu.Lock()
	h, ok := s.hashes[id]
	s.hmu.Unlock()
	if ok {
		return h, nil
	}
	h, err := s.secrets.Secret(ctx, tokenKey(id))
	if errors.Is(err, ErrNoSecret) {
		return nil, ErrUnauthenticated
	}
	if err != nil {
		return nil, fmt.Errorf("token hash: %w", err)
	}
	s.hmu.Lock()
	s.hashes[id] = h
	s.hmu.Unlock()
	return h, nil
}

// Visible reports whether p may see and act on app: the server
// administrator on every app, a user on the apps it administers.
func (s *Identity) Visible(p Principal, app string) bool {
	if p.Admin {
		return true
	}
	var ok bool
	s.view.ReadDirectory(func(d *Directory) { ok = d.Administers(p.ID, app) })
	return ok
}

// Read calls fn with the directory, for queries.
func (s *Identity) Read(fn func(d *Directory)) { s.view.ReadDirectory(fn) }
