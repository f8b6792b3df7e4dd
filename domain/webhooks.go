package domain

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Webhook event types, on the identity subject. Registered explicitly;
// never renamed.
const (
	TypeWebhookRegistered = "webhook.registered"
	TypeWebhookRemoved    = "webhook.removed"
)

// NotifiableTypes are the event types that webhooks are told of.
var notifiableTypes = []string{
	TypeBackupCompleted, TypeBackupFailed, TypeBackupExpired, TypeBackupCorrupted,
	TypeRestoreCompleted, TypeRestoreFailed,
}

// Notifiable reports whether events of type typ are sent to webhooks.
func Notifiable(typ string) bool { return slices.Contains(notifiableTypes, typ) }

// NotifiableTypes returns the event types a webhook may ask for, sorted.
func NotifiableTypes() []string {
	out := slices.Clone(notifiableTypes)
	slices.Sort(out)
	return out
}

// MaxWebhookURLLen bounds a webhook's URL.
const MaxWebhookURLLen = 2048

// WebhookSecretPrefix starts every generated webhook secret.
const WebhookSecretPrefix = "whsec_"

// WebhookRegistered records a webhook of an organisation (Org) or of an
// app (App): exactly one of them is set. Its secret is not in the event.
type WebhookRegistered struct {
	Webhook string   `json:"webhook"`
	Org     string   `json:"org,omitempty"`
	App     string   `json:"app,omitempty"`
	URL     string   `json:"url"`
	Events  []string `json:"events"`
}

// WebhookRemoved records that a webhook was removed.
type WebhookRemoved struct {
	Webhook string `json:"webhook"`
}

// EventType implements Event.
func (*WebhookRegistered) EventType() string { return TypeWebhookRegistered }

// EventType implements Event.
func (*WebhookRemoved) EventType() string { return TypeWebhookRemoved }

// Webhook is a registered webhook, without its secret.
type Webhook struct {
	ID        string
	Org       string
	App       string
	URL       string
	Events    []string
	CreatedBy string
	CreatedAt time.Time
	// Seq is the stream sequence of its registration.
	Seq uint64
}

// Wants reports whether the webhook is told of events of type typ.
func (w *Webhook) Wants(typ string) bool { return slices.Contains(w.Events, typ) }

// Webhook returns a registered webhook.
func (d *Directory) Webhook(id string) (*Webhook, bool) { w, ok := d.webhooks[id]; return w, ok }

// WebhookRemoved reports whether the webhook id was registered and then
// removed (as opposed to not known yet).
func (d *Directory) WebhookRemoved(id string) bool { return d.removedHooks[id] }

// Webhooks returns the webhooks of an organisation (org set) or an app,
// sorted by id.
func (d *Directory) Webhooks(org, app string) []*Webhook {
	var out []*Webhook
	for _, w := range sortedValues(d.webhooks, func(w *Webhook) string { return w.ID }) {
		if w.Org == org && w.App == app {
			out = append(out, w)
		}
	}
	return out
}

// WebhooksFor returns the webhooks told of an event of type typ of app
// at stream sequence seq: the app's own and those of its organisation
// that were registered before it (seq 0: all).
func (d *Directory) WebhooksFor(app, typ string, seq uint64) []*Webhook {
	org := DefaultOrg
	if a, ok := d.apps[app]; ok {
		org = a.Org
	}
	var out []*Webhook
	for _, w := range sortedValues(d.webhooks, func(w *Webhook) string { return w.ID }) {
		if (w.App == app || w.App == "" && w.Org == org) && w.Wants(typ) && (seq == 0 || w.Seq < seq) {
			out = append(out, w)
		}
	}
	return out
}

// RegisterWebhook registers a webhook of an organisation (the server
// administrator) or of an app (its admins). Events empty means every
// notifiable type. Its URL may not target a non-public address or a local
// name (CheckWebhookTarget) unless the server allows private targets.
type RegisterWebhook struct {
	ID     string `json:"-"` // made by the service, not part of the request
	Org    string
	App    string
	URL    string
	Events []string

	// AllowPrivate is the server's IdentityConfig.AllowPrivateWebhookTargets,
	// set by Identity.RegisterWebhook: it is not part of a request (no
	// JSON), and a command decided without it refuses private targets.
	AllowPrivate bool `json:"-"`
}

// Decide implements IdentityCommand.
func (c RegisterWebhook) Decide(d *Directory, p Principal, _ time.Time) (Event, error) {
	if err := webhookScope(d, p, c.Org, c.App); err != nil {
		return nil, err
	}
	u, err := CheckWebhookURL(c.URL)
	if err != nil {
		return nil, err
	}
	if !c.AllowPrivate {
		if err := CheckWebhookTarget(u); err != nil {
			return nil, err
		}
	}
	events := c.Events
	if len(events) == 0 {
		events = NotifiableTypes()
	}
	events = slices.Clone(events)
	slices.Sort(events)
	events = slices.Compact(events)
	for _, typ := range events {
		if !Notifiable(typ) {
			return nil, Errorf(CodeInvalidArgument, "event type %q cannot be sent to a webhook; use some of %s", typ, strings.Join(NotifiableTypes(), ", "))
		}
	}
	return &WebhookRegistered{Webhook: c.ID, Org: c.Org, App: c.App, URL: u, Events: events}, nil
}

// RemoveWebhook removes a webhook of the organisation or app it names.
type RemoveWebhook struct{ ID, Org, App string }

// Decide implements IdentityCommand.
func (c RemoveWebhook) Decide(d *Directory, p Principal, _ time.Time) (Event, error) {
	if err := CheckWebhook(d, p, c.Org, c.App, c.ID); err != nil {
		return nil, err
	}
	return &WebhookRemoved{Webhook: c.ID}, nil
}

// CheckWebhook returns nil when p may see and change the webhooks of the
// organisation org or the app app (exactly one set) and, if id is not
// empty, webhook id is one of them; else the error to answer: not_found
// for what p cannot see.
func CheckWebhook(d *Directory, p Principal, org, app, id string) error {
	if err := webhookScope(d, p, org, app); err != nil || id == "" {
		return err
	}
	if w, ok := d.webhooks[id]; !ok || w.Org != org || w.App != app {
		return Errorf(CodeNotFound, "webhook %s not found", id)
	}
	return nil
}

// webhookScope checks that exactly one of org and app is set and that p
// may manage its webhooks: an app's admins theirs, the server
// administrator everyone's. Someone who cannot see the app or
// organisation gets not_found.
func webhookScope(d *Directory, p Principal, org, app string) error {
	switch {
	case org != "" && app != "", org == "" && app == "":
		return Errorf(CodeInvalidArgument, "a webhook belongs to an organisation or to an app")
	case app != "":
		if err := ValidateAppID(app); err != nil {
			return err
		}
		if !p.Admin && !d.Administers(p.ID, app) {
			return Errorf(CodeNotFound, "app %s not found", app)
		}
	default:
		if err := ValidateName("organisation", org); err != nil {
			return err
		}
		if _, ok := d.orgs[org]; !ok && org != DefaultOrg {
			return Errorf(CodeNotFound, "organisation %s not found", org)
		}
		if !p.Admin {
			if o, ok := d.orgs[org]; ok && o.Members[p.ID] {
				return Errorf(CodePermissionDenied, "only the server administrator manages the webhooks of an organisation")
			}
			return Errorf(CodeNotFound, "organisation %s not found", org)
		}
	}
	return nil
}

// CheckWebhookURL checks a webhook's URL: absolute http or https, with a
// host, no user info and no fragment, at most MaxWebhookURLLen bytes. It
// returns the URL as given.
func CheckWebhookURL(raw string) (string, error) {
	bad := func(why string) (string, error) {
		return "", Errorf(CodeInvalidArgument, "webhook url %q: %s", clip(raw, 100), why)
	}
	if raw == "" || len(raw) > MaxWebhookURLLen || strings.ContainsAny(raw, " \t\r\n\x00") {
		return bad(fmt.Sprintf("must be 1 to %d bytes without spaces", MaxWebhookURLLen))
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return bad("not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return bad("the scheme must be http or https")
	case u.Host == "" || u.Hostname() == "":
		return bad("it names no host")
	case u.User != nil:
		return bad("credentials belong in the secret, not the URL")
	case u.Fragment != "":
		return bad("a fragment is never sent")
	}
	return raw, nil
}

// NewWebhook is a webhook just registered: its secret is shown once.
type NewWebhook struct {
	Webhook
	Secret string
}

// WebhookSecretKey is the secret store key of a webhook's signing secret.
func WebhookSecretKey(id string) string { return "webhook." + id }
