package service

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

	"github.com/backupledger/backupledger/domain"
)

// ErrNoSecret is returned (wrapped) by a SecretStore for an unknown key.
var ErrNoSecret = errors.New("no such secret")

// PasswordHasher hashes passwords and checks them against a hash
// (Argon2id at the edge; the comparison's time does not depend on where
// the password differs).
type PasswordHasher interface {
	HashPassword(password string) ([]byte, error)
	// PasswordMatches reports whether password is the one hash was made of.
	PasswordMatches(hash []byte, password string) bool
	// NeedsRehash reports whether hash should be made again from the
	// password at its next successful check (an older algorithm or
	// parameters).
	NeedsRehash(hash []byte) bool
}

// IdentityConfig are the settings of the Identity service.
type IdentityConfig struct {
	// SessionTTL is how long a login's session token lasts; default 12h.
	SessionTTL time.Duration
	// AllowPrivateWebhookTargets lets webhooks target loopback, private and
	// other non-public addresses and local names (see CheckWebhookTarget).
	AllowPrivateWebhookTargets bool
	// Apps says whether an app id is in use outside the directory. nil:
	// only registered apps exist, and every unregistered id is unused.
	Apps AppUsage
	// CommandTimeout bounds an identity command as LedgerConfig's bounds a
	// ledger command; 0 means DefaultCommandTimeout.
	CommandTimeout time.Duration
}

// LedgerAppUsage is the AppUsage of this process's fold of the ledger and
// the configuration source.
type LedgerAppUsage struct {
	States  States
	Sources Sources
}

// HasEvents implements AppUsage.
func (u LedgerAppUsage) HasEvents(app string) bool {
	var n int
	u.States.ReadApp(app, func(a *domain.App) { n = a.Events() })
	return n > 0
}

// errFound stops an export at its first item.
var errFound = errors.New("found")

// HasConfig implements AppUsage: an export that yields an item.
func (u LedgerAppUsage) HasConfig(ctx context.Context, app string) (bool, error) {
	if u.Sources == nil {
		return false, nil
	}
	err := u.Sources.For(app).Export(ctx, app, func(domain.Item) error { return errFound })
	if errors.Is(err, errFound) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("read the configuration of %s: %w", app, err)
	}
	return false, nil
}

// Identity is the application service of identity and access: it decides
// and appends identity commands, keeps the secrets, authenticates tokens
// and answers who may act on which app.
type Identity struct {
	view    DirectoryView
	secrets SecretStore
	hasher  PasswordHasher
	clock   domain.Clock
	ids     domain.IDs
	cfg     IdentityConfig
	log     *slog.Logger

	lock subjectLock // identity commands of this process go one at a time
	loop *commandLoop[*domain.Directory]

	throttle *Throttle
	// pending counts the wrong passwords being recorded in the background.
	pending sync.WaitGroup

	hmu    sync.Mutex
	hashes map[string][]byte // token id → SHA-256 of its secret
	// dummy is a password hash compared against for unknown users, so that
	// a login takes as long whether or not the user exists.
	dummy []byte
}

// NewIdentity returns the identity service.
func NewIdentity(store EventStore, view DirectoryView, secrets SecretStore, hasher PasswordHasher, clock domain.Clock, ids domain.IDs, cfg IdentityConfig, log *slog.Logger) (*Identity, error) {
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
	return &Identity{view: view, secrets: secrets, hasher: hasher, clock: clock, ids: ids, cfg: cfg, log: log,
		hashes: map[string][]byte{}, dummy: dummy, throttle: NewThrottle(clock), lock: newSubjectLock(),
		loop: &commandLoop[*domain.Directory]{store: store, fold: directoryFold{view}, clock: clock, ids: ids, log: log,
			obs: domain.NopObserver{}, maxAttempts: maxIdentityAttempts, timeout: cfg.CommandTimeout}}, nil
}

// Execute decides cmd for p against the directory and appends its event,
// with m's command id: a command id accepted before is answered with the
// first command's result, Duplicate set. It returns an *Error for a
// refused command (CodeIdempotencyKeyReused for a client's key sent with
// another request), an error wrapping ErrConflict when the directory kept
// changing concurrently, and the store's errors.
func (s *Identity) Execute(ctx context.Context, p domain.Principal, cmd domain.IdentityCommand, m domain.Meta) (domain.IdentityResult, error) {
	if p.ID == "" {
		return domain.IdentityResult{}, domain.ErrUnauthenticated
	}
	m.Actor = p.ID
	m, err := m.Prepare(func() string { return s.ids.NewID(s.clock.Now()) }, fmt.Sprintf("%T", cmd), cmd)
	if err != nil {
		return domain.IdentityResult{}, err
	}
	ctx, cancel := s.loop.bounded(ctx)
	defer cancel()
	if err := s.lock.acquire(ctx); err != nil {
		return domain.IdentityResult{}, err
	}
	defer s.lock.release()
	out, err := s.loop.run(ctx, loopCommand[*domain.Directory]{token: domain.IdentityStream, name: fmt.Sprintf("%T", cmd), meta: m,
		decide: func(d *domain.Directory, now time.Time) (domain.Event, error) { return cmd.Decide(d, p, now) }})
	if err != nil {
		return domain.IdentityResult{}, err
	}
	return domain.IdentityResult{Seq: out.Seq, EventType: out.Type, Duplicate: out.duplicate, Event: out.event}, nil
}

// maxIdentityAttempts bounds the decide-append rounds of one command.
const maxIdentityAttempts = 20

func passwordKey(user string) string { return "password." + user }
func tokenKey(id string) string      { return "token." + id }

// CreateUser creates a user with its password (server admin). The
// password's hash goes to the secret store before the event, so that the
// user never exists without it.
func (s *Identity) CreateUser(ctx context.Context, p domain.Principal, c domain.CreateUser, m domain.Meta) (domain.IdentityResult, error) {
	if seen, err := s.seen(p, c, m); err != nil || seen {
		if err != nil {
			return domain.IdentityResult{}, err
		}
		return s.Execute(ctx, p, c, m) // a retry: the first result
	}
	if err := s.precheck(p, c); err != nil {
		return domain.IdentityResult{}, err
	}
	if err := s.storePassword(ctx, c.ID, c.Password); err != nil {
		return domain.IdentityResult{}, err
	}
	return s.Execute(ctx, p, c, m)
}

// ChangePassword sets a user's password: the server admin for anyone
// (which also clears the throttle of wrong passwords for the name in this
// process), a user for itself with its current password (a wrong one
// counts as a wrong password, and is throttled). Every session of the
// user but the caller's ends.
func (s *Identity) ChangePassword(ctx context.Context, p domain.Principal, c domain.ChangePassword, m domain.Meta) (domain.PasswordChange, error) {
	// A retry (the same key and request) answers the first result and
	// checks nothing again: the current password is the new one by then.
	seen, err := s.seen(p, c, m)
	if err != nil {
		return domain.PasswordChange{}, err
	}
	if !seen {
		if err := s.precheck(p, c); err != nil {
			return domain.PasswordChange{}, err
		}
		if !p.Admin {
			if err := s.checkPassword(ctx, p.ID, c.Current, "password_change"); err != nil {
				return domain.PasswordChange{}, err
			}
		}
		if err := s.storePassword(ctx, c.User, c.Password); err != nil {
			return domain.PasswordChange{}, err
		}
	}
	res, err := s.Execute(ctx, p, c, m)
	if err != nil {
		return domain.PasswordChange{}, err
	}
	if p.Admin {
		s.throttle.Forget(c.User)
	}
	out := domain.PasswordChange{IdentityResult: res, APITokens: []domain.Token{}}
	now := s.clock.Now()
	s.view.ReadDirectory(func(d *domain.Directory) {
		for _, t := range d.Tokens(c.User, domain.TokenAPI) {
			if t.Active(now) {
				out.APITokens = append(out.APITokens, *t)
			}
		}
	})
	if ev, ok := res.Event.(*domain.PasswordChanged); ok {
		out.RevokedSessions = ev.RevokedSessions
	}
	return out, nil
}

// precheck decides cmd without appending, so that a refused command
// stores no secret either.
func (s *Identity) precheck(p domain.Principal, cmd domain.IdentityCommand) error {
	var err error
	now := s.clock.Now().UTC()
	s.view.ReadDirectory(func(d *domain.Directory) { _, err = cmd.Decide(d, p, now) })
	return err
}

// seen reports whether the directory already recorded p's command m: a
// retried command that makes a secret must not store another one.
// A key the caller used for another request is CodeIdempotencyKeyReused.
func (s *Identity) seen(p domain.Principal, cmd domain.IdentityCommand, m domain.Meta) (bool, error) {
	if m.CommandID == "" {
		return false, nil
	}
	var (
		rec domain.CommandRecord
		ok  bool
	)
	s.view.ReadDirectory(func(d *domain.Directory) { rec, ok = d.Command(domain.CommandKey(p.ID, m.CommandID)) })
	if ok && m.ClientKey {
		return true, domain.CheckReuse(rec, domain.RequestHash(fmt.Sprintf("%T", cmd), cmd))
	}
	return ok, nil
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

// tokenPrefix starts every token the Identity service makes.
const tokenPrefix = "bl_"

// CreateToken makes an API token of the caller, with a name and an
// optional expiry: 256 random bits, kept only as their SHA-256.
func (s *Identity) CreateToken(ctx context.Context, p domain.Principal, name string, expiresAt time.Time, m domain.Meta) (domain.NewToken, error) {
	return s.createToken(ctx, p, domain.CreateToken{Name: name, Kind: domain.TokenAPI, User: p.ID, ExpiresAt: expiresAt}, m)
}

func (s *Identity) createToken(ctx context.Context, p domain.Principal, c domain.CreateToken, m domain.Meta) (domain.NewToken, error) {
	now := s.clock.Now().UTC()
	c.ID = s.ids.NewID(now)
	if err := s.precheck(p, c); err != nil {
		return domain.NewToken{}, err
	}
	if seen, err := s.seen(p, c, m); err != nil {
		return domain.NewToken{}, err
	} else if seen {
		return domain.NewToken{}, domain.Errorf(domain.CodeAlreadyExists, "this command already made a token; its secret was shown then")
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret) // never fails
	sum := sha256.Sum256(secret)
	if err := s.secrets.PutSecret(ctx, tokenKey(c.ID), sum[:]); err != nil {
		return domain.NewToken{}, fmt.Errorf("store token: %w", err)
	}
	res, err := s.Execute(ctx, p, c, m)
	if err != nil {
		return domain.NewToken{}, err
	}
	if res.Duplicate {
		return domain.NewToken{}, domain.Errorf(domain.CodeAlreadyExists, "this command already made a token; its secret was shown then")
	}
	t := domain.Token{ID: c.ID, User: c.User, Name: c.Name, Kind: c.Kind, ExpiresAt: c.ExpiresAt.UTC(), CreatedAt: now.Truncate(time.Millisecond)}
	return domain.NewToken{Token: t, Secret: tokenPrefix + c.ID + "_" + base64.RawURLEncoding.EncodeToString(secret)}, nil
}

// Login checks a user's password and makes a session token that expires
// after IdentityConfig.SessionTTL. An unknown or disabled user and a
// wrong password are ErrUnauthenticated alike (a user's wrong password is
// recorded); too many wrong passwords for the name or from the client
// (ClientOf) are CodeTooManyAttempts, whether a user has the name or not
// (Throttle).
func (s *Identity) Login(ctx context.Context, user, password string, m domain.Meta) (domain.NewToken, error) {
	if err := s.checkPassword(ctx, user, password, "login"); err != nil {
		if domain.Code(err) == domain.CodePasswordIncorrect {
			return domain.NewToken{}, &domain.Error{Code: domain.CodeUnauthenticated, Message: "user or password incorrect"}
		}
		return domain.NewToken{}, err
	}
	p := domain.Principal{ID: user}
	return s.createToken(ctx, p, domain.CreateToken{Name: "login", Kind: domain.TokenSession, User: user,
		ExpiresAt: s.clock.Now().UTC().Add(s.cfg.SessionTTL).Truncate(time.Second)}, m)
}

// VerifyPassword checks the password of the caller p again, for a
// restore: CodePasswordIncorrect (recorded and throttled as a login's) or
// CodeTooManyAttempts with when to try again. The server administrator
// has no password.
func (s *Identity) VerifyPassword(ctx context.Context, p domain.Principal, password, purpose string) error {
	if p.Admin {
		return nil // the admin token is the server administrator's only secret
	}
	return s.checkPassword(ctx, p.ID, password, purpose)
}

func (s *Identity) checkPassword(ctx context.Context, user, password, purpose string) error {
	name, client := throttleName(user), ClientOf(ctx)
	if ok, retry := s.throttle.Allow(name, client); !ok {
		return errThrottled(retry)
	}
	var known, enabled bool
	s.view.ReadDirectory(func(d *domain.Directory) {
		if u, ok := d.User(user); ok {
			known, enabled = true, !u.Disabled
		}
	})
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
		if s.hasher.NeedsRehash(hash) {
			s.rehash(ctx, user, password)
		}
		return nil
	}
	s.throttle.Failed(name, client)
	if !known || !enabled {
		return &domain.Error{Code: domain.CodeUnauthenticated, Message: "user or password incorrect"}
	}
	// The failure is an audit event, recorded in the background so that
	// the answer takes as long for a name no user has.
	s.pending.Add(1)
	go func() {
		defer s.pending.Done()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, err := s.Execute(ctx, domain.Principal{ID: user}, recordFailure{user: user, purpose: purpose}, domain.Meta{}); err != nil {
			s.log.Warn("record wrong password", "user", user, "err", err)
		}
	}()
	return domain.Errorf(domain.CodePasswordIncorrect, "password incorrect")
}

// WaitRecorded waits until the wrong passwords seen so far are recorded
// (tests, and a graceful stop).
func (s *Identity) WaitRecorded() { s.pending.Wait() }

// throttleName is the key of a name in the Throttle: at most 128 bytes,
// since an unknown name can be anything.
func throttleName(user string) string {
	if len(user) > 128 {
		return user[:128]
	}
	return user
}

// rehash stores a new hash of user's password, made with the hasher's
// current algorithm and parameters; a failure is only logged (the old
// hash still works).
func (s *Identity) rehash(ctx context.Context, user, password string) {
	if err := s.storePassword(ctx, user, password); err != nil {
		s.log.Warn("rehash password", "user", user, "err", err)
		return
	}
	s.log.Info("password rehashed", "user", user)
}

// recordFailure records a wrong password of user.
type recordFailure struct{ user, purpose string }

func (r recordFailure) Decide(*domain.Directory, domain.Principal, time.Time) (domain.Event, error) {
	return &domain.PasswordFailed{User: r.user, Purpose: r.purpose}, nil
}

// Authenticate turns a token the Identity service made into its user's
// Principal: the token must exist, be neither revoked nor expired, belong
// to an enabled user, and its secret must match. Anything else is
// ErrUnauthenticated.
func (s *Identity) Authenticate(ctx context.Context, token string) (domain.Principal, error) {
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok {
		return domain.Principal{}, domain.ErrUnauthenticated
	}
	id, enc, ok := strings.Cut(rest, "_")
	if !ok || id == "" || len(id) > 64 {
		return domain.Principal{}, domain.ErrUnauthenticated
	}
	secret, err := base64.RawURLEncoding.Strict().DecodeString(enc) // one spelling per token
	if err != nil || len(secret) != 32 {
		return domain.Principal{}, domain.ErrUnauthenticated
	}
	var (
		user   string
		active bool
		now    = s.clock.Now()
	)
	s.view.ReadDirectory(func(d *domain.Directory) {
		t, ok := d.Token(id)
		if !ok || !t.Active(now) {
			return
		}
		if u, ok := d.User(t.User); ok && !u.Disabled {
			user, active = t.User, true
		}
	})
	if !active {
		return domain.Principal{}, domain.ErrUnauthenticated
	}
	want, err := s.tokenHash(ctx, id)
	if err != nil {
		return domain.Principal{}, err
	}
	got := sha256.Sum256(secret)
	if subtle.ConstantTimeCompare(got[:], want) != 1 {
		return domain.Principal{}, domain.ErrUnauthenticated
	}
	return domain.Principal{ID: user, TokenID: id}, nil
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
		return nil, domain.ErrUnauthenticated
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
// administrator on every app that exists, a user on the apps it
// administers. No command creates an app: an id that is not registered
// (RegisterApp) is not found, for the administrator too, unless it has
// events from before apps were registered (an app of DefaultOrg).
func (s *Identity) Visible(p domain.Principal, app string) bool {
	if !p.Admin {
		var ok bool
		s.view.ReadDirectory(func(d *domain.Directory) { ok = d.Administers(p.ID, app) })
		return ok
	}
	return s.Exists(app)
}

// Exists reports whether app exists: registered in an organisation, or
// with events in the ledger from before apps were registered.
func (s *Identity) Exists(app string) bool {
	var registered bool
	s.view.ReadDirectory(func(d *domain.Directory) { _, registered = d.App(app) })
	return registered || s.cfg.Apps != nil && s.cfg.Apps.HasEvents(app)
}

// unused reports whether app was never used: not registered, no events,
// nothing in its configuration source.
func (s *Identity) unused(ctx context.Context, app string) (bool, error) {
	if s.Exists(app) {
		return false, nil
	}
	if s.cfg.Apps == nil {
		return true, nil
	}
	used, err := s.cfg.Apps.HasConfig(ctx, app)
	return !used, err
}

// RegisterApp puts an app into an organisation (RegisterApp's rules). A
// member registers only an id that was never used: not registered, no
// events, nothing in its configuration source; anything else is not
// found for it, so that no one takes over an app and its data. The
// server administrator registers any unregistered id, which is how an
// app from before registration (in DefaultOrg) moves into an
// organisation.
func (s *Identity) RegisterApp(ctx context.Context, p domain.Principal, c domain.RegisterApp, m domain.Meta) (domain.IdentityResult, error) {
	if p.ID == "" {
		return domain.IdentityResult{}, domain.ErrUnauthenticated
	}
	if err := s.precheck(p, c); err != nil {
		return domain.IdentityResult{}, err
	}
	var registered bool
	s.view.ReadDirectory(func(d *domain.Directory) { _, registered = d.App(c.App) })
	if !registered && !p.Admin {
		free, err := s.unused(ctx, c.App)
		if err != nil {
			return domain.IdentityResult{}, err
		}
		if !free {
			return domain.IdentityResult{}, domain.ErrAppUnavailable(c.App)
		}
	}
	return s.Execute(ctx, p, c, m)
}

// Read calls fn with the directory, for queries.
func (s *Identity) Read(fn func(d *domain.Directory)) { s.view.ReadDirectory(fn) }

// RegisterWebhook registers a webhook; an empty secret means a generated
// one (whsec_ and 256 random bits). The secret is stored before the event
// (a refused command stores none), as the raw bytes the signatures are
// made with: HMAC needs the secret itself, not a hash of it. A URL whose
// host is a non-public IP address or a local name is invalid_argument
// unless IdentityConfig.AllowPrivateWebhookTargets is set (see
// CheckWebhookTarget).
func (s *Identity) RegisterWebhook(ctx context.Context, p domain.Principal, c domain.RegisterWebhook, secret string, m domain.Meta) (domain.NewWebhook, error) {
	now := s.clock.Now().UTC()
	c.ID = s.ids.NewID(now)
	c.AllowPrivate = s.cfg.AllowPrivateWebhookTargets
	if err := s.precheck(p, c); err != nil {
		return domain.NewWebhook{}, err
	}
	if seen, err := s.seen(p, c, m); err != nil {
		return domain.NewWebhook{}, err
	} else if seen {
		return domain.NewWebhook{}, domain.Errorf(domain.CodeAlreadyExists, "this command already registered a webhook; its secret was shown then")
	}
	if secret == "" {
		b := make([]byte, 32)
		_, _ = rand.Read(b) // never fails
		secret = domain.WebhookSecretPrefix + base64.RawURLEncoding.EncodeToString(b)
	} else if len(secret) < 16 || len(secret) > 256 || strings.ContainsAny(secret, "\x00\r\n") {
		return domain.NewWebhook{}, domain.Errorf(domain.CodeInvalidArgument, "a webhook secret must be 16 to 256 bytes on one line")
	}
	if err := s.secrets.PutSecret(ctx, domain.WebhookSecretKey(c.ID), []byte(secret)); err != nil {
		return domain.NewWebhook{}, fmt.Errorf("store webhook secret: %w", err)
	}
	res, err := s.Execute(ctx, p, c, m)
	if err != nil {
		return domain.NewWebhook{}, err
	}
	if res.Duplicate {
		return domain.NewWebhook{}, domain.Errorf(domain.CodeAlreadyExists, "this command already registered a webhook; its secret was shown then")
	}
	var w domain.Webhook
	s.view.ReadDirectory(func(d *domain.Directory) {
		if got, ok := d.Webhook(c.ID); ok {
			w = *got
		}
	})
	return domain.NewWebhook{Webhook: w, Secret: secret}, nil
}

// WebhookSecret returns the signing secret of a webhook.
func (s *Identity) WebhookSecret(ctx context.Context, id string) ([]byte, error) {
	return s.secrets.Secret(ctx, domain.WebhookSecretKey(id))
}
