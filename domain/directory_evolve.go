package domain

import "slices"

// ApplyDecoded is Apply of an event already decoded as env and ev, with
// hash its HashEvent; env or ev nil (not decodable) moves the sequence and
// the hash chain on and changes nothing else.
func (d *Directory) ApplyDecoded(seq uint64, hash string, env *Envelope, ev Event) {
	d.seq, d.lastHash = seq, hash
	if env == nil || ev == nil {
		return
	}
	d.remember(CommandKey(env.Actor, env.CommandID), CommandRecord{Seq: seq, Type: env.Type, Hash: env.CommandHash})
	d.evolve(seq, env, ev)
}

// makeMaps makes the directory's maps on its first event.
func (d *Directory) makeMaps() {
	if d.orgs == nil {
		d.orgs = map[string]*Org{}
		d.users = map[string]*User{}
		d.apps = map[string]*AppAccess{}
		d.tokens = map[string]*Token{}
	}
}

// evolve is the directory's evolve: every identity event, and what it
// changes, in one switch. It never fails and never validates.
func (d *Directory) evolve(seq uint64, env *Envelope, ev Event) {
	d.makeMaps()
	at := env.Time
	switch e := ev.(type) {
	// Organisations and users.
	case *OrgCreated:
		if _, ok := d.orgs[e.Org]; !ok {
			d.orgs[e.Org] = &Org{ID: e.Org, Name: e.Name, CreatedAt: at, Members: map[string]bool{}}
		}
	case *MemberAdded:
		if o, ok := d.orgs[e.Org]; ok {
			o.Members[e.User] = true
		}
	case *MemberRemoved:
		if o, ok := d.orgs[e.Org]; ok {
			delete(o.Members, e.User)
		}
		// The user's admin grants on the organisation's apps end with
		// the membership: rejoining does not bring them back.
		for _, a := range d.apps {
			if a.Org == e.Org {
				delete(a.Admins, e.User)
			}
		}
	case *UserCreated:
		if _, ok := d.users[e.User]; !ok {
			d.users[e.User] = &User{ID: e.User, Name: e.Name, Email: e.Email, CreatedAt: at}
		}
	case *UserDisabled:
		if u, ok := d.users[e.User]; ok {
			u.Disabled = true
		}
	case *UserEnabled:
		if u, ok := d.users[e.User]; ok {
			u.Disabled = false
		}
	case *PasswordChanged:
		for _, id := range e.RevokedSessions {
			if t, ok := d.tokens[id]; ok && t.User == e.User {
				t.Revoked = true
			}
		}
	case *PasswordFailed:
		// Recorded for the audit log; the directory does not change.

	// Apps and their admins.
	case *AppRegistered:
		if _, ok := d.apps[e.App]; !ok {
			a := &AppAccess{App: e.App, Org: e.Org, Admins: map[string]bool{}}
			if e.Admin != "" {
				a.Admins[e.Admin] = true
			}
			d.apps[e.App] = a
		}
	case *AdminGranted:
		if a, ok := d.apps[e.App]; ok {
			a.Admins[e.User] = true
		}
	case *AdminRevoked:
		if a, ok := d.apps[e.App]; ok {
			delete(a.Admins, e.User)
		}

	// Tokens.
	case *TokenCreated:
		if _, ok := d.tokens[e.Token]; !ok {
			d.tokens[e.Token] = &Token{ID: e.Token, User: e.User, Name: e.Name, Kind: e.Kind, CreatedAt: at, ExpiresAt: e.ExpiresAt}
		}
	case *TokenRevoked:
		if t, ok := d.tokens[e.Token]; ok {
			t.Revoked = true
		}

	// Webhooks.
	case *WebhookRegistered:
		if d.webhooks == nil {
			d.webhooks = map[string]*Webhook{}
		}
		if _, ok := d.webhooks[e.Webhook]; !ok {
			d.webhooks[e.Webhook] = &Webhook{ID: e.Webhook, Org: e.Org, App: e.App, URL: e.URL,
				Events: slices.Clone(e.Events), CreatedBy: env.Actor, CreatedAt: at, Seq: seq}
		}
	case *WebhookRemoved:
		delete(d.webhooks, e.Webhook)
		if d.removedHooks == nil {
			d.removedHooks = map[string]bool{}
		}
		d.removedHooks[e.Webhook] = true
	}
}
