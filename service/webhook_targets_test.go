package service_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/service"
)

// newWebhookRig is an identity rig with cfg, with the organisation acme,
// its member alice and alice's app crm.
func newWebhookRig(t *testing.T, cfg service.IdentityConfig) (*identityRig, domain.Principal) {
	t.Helper()
	s := newFakeStream()
	r := &identityRig{stream: s, secrets: &fakeSecrets{m: map[string][]byte{}}, clock: newClock(t0),
		admin: domain.Principal{ID: "admin", Admin: true}}
	var err error
	if r.id, err = service.NewIdentity(s, &fakeDirView{s: s}, r.secrets, fakeHasher{}, r.clock, &fakeIDs{}, cfg, nil); err != nil {
		t.Fatal(err)
	}
	r.must(t, r.admin, domain.CreateOrg{ID: "acme", Name: "ACME"})
	r.user(t, "alice")
	r.must(t, r.admin, domain.SetMember{Org: "acme", User: "alice", Member: true})
	alice := domain.Principal{ID: "alice"}
	r.must(t, alice, domain.RegisterApp{App: "crm", Org: "acme"})
	return r, alice
}

// privateTargets are webhook URLs refused without allow-private, with
// what the refusal calls their host.
var privateTargets = []struct{ url, what string }{
	// loopback
	{"http://127.0.0.1:8080/hook", "a loopback address"},
	{"http://127.255.255.254/", "a loopback address"},
	{"http://127.0.0.1./", "a loopback address"},
	{"http://[::1]:9000/", "a loopback address"},
	// private (RFC 1918)
	{"http://10.0.0.1/", "a private address (RFC 1918)"},
	{"https://10.255.255.255/", "a private address (RFC 1918)"},
	{"http://172.16.0.1/", "a private address (RFC 1918)"},
	{"http://172.31.255.255/", "a private address (RFC 1918)"},
	{"http://192.168.1.1/", "a private address (RFC 1918)"},
	// link-local, with the cloud metadata service
	{"http://169.254.169.254/latest/meta-data/", "a link-local address"},
	{"http://169.254.0.1/", "a link-local address"},
	{"http://[fe80::1]/", "a link-local address"},
	{"http://[fe80::1%25eth0]:80/", "a link-local address"},
	// unique local
	{"http://[fc00::1]/", "a unique local address"},
	{"http://[fd12:3456:789a::1]/", "a unique local address"},
	// unspecified
	{"http://0.0.0.0:22/", `an unspecified ("this network") address`},
	{"http://0.1.2.3/", `an unspecified ("this network") address`},
	{"http://[::]/", "an unspecified address"},
	// multicast
	{"http://224.0.0.1/", "a multicast address"},
	{"http://239.255.255.250/", "a multicast address"},
	{"http://[ff02::1]/", "a multicast address"},
	// shared address space (carrier-grade NAT)
	{"http://100.64.0.1/", "a shared (carrier-grade NAT) address"},
	{"http://100.127.255.254/", "a shared (carrier-grade NAT) address"},
	// IPv4-mapped, IPv4-compatible, NAT64 and 6to4 forms
	{"http://[::ffff:127.0.0.1]/", "a loopback address"},
	{"http://[::ffff:7f00:1]/", "a loopback address"},
	{"http://[::ffff:169.254.169.254]/", "a link-local address"},
	{"http://[::ffff:10.0.0.1]/", "a private address (RFC 1918)"},
	{"http://[::127.0.0.1]/", "an IPv4-compatible address"},
	{"http://[64:ff9b::a9fe:a9fe]/", "a link-local address"},
	{"http://[64:ff9b::7f00:1]/", "a loopback address"},
	{"http://[2002:c0a8:101::1]/", "a private address (RFC 1918)"},
	{"http://[2002:7f00:1::]/", "a loopback address"},
	// other reserved ranges
	{"http://255.255.255.255/", "a reserved address"},
	{"http://240.0.0.1/", "a reserved address"},
	{"http://192.0.0.170/", "a reserved address"},
	{"http://198.18.0.1/", "a reserved address"},
	{"http://192.0.2.10/", "a documentation address"},
	{"http://[2001:db8::1]/", "a documentation address"},
	{"http://[100::1]/", "a reserved address"},
	{"http://[2001::1]/", "a reserved address"},
	{"http://[4000::1]/", "a reserved address"},
	// local names
	{"http://localhost:8080/", "a local name"},
	{"http://LOCALHOST./", "a local name"},
	{"http://api.localhost/", "a local name"},
	{"http://localhost.localdomain/", "a local name"},
	{"http://metadata.google.internal/computeMetadata/v1/", "a local name"},
	{"http://printer.local/", "a local name"},
	{"http://nas.home.arpa/", "a local name"},
	// numbers that resolvers take for an IPv4 address
	{"http://2130706433/", "looks like an IP address"},
	{"http://127.1/", "looks like an IP address"},
	{"http://0x7f.0.0.1/", "looks like an IP address"},
	{"http://0x7f000001/", "looks like an IP address"},
	{"http://0177.0.0.1/", "looks like an IP address"},
	{"http://127.0.0.01/", "looks like an IP address"},
	{"http://0/", "looks like an IP address"},
}

// publicTargets are webhook URLs accepted without allow-private, some
// right beside a refused range.
var publicTargets = []string{
	"https://hooks.example.com/crm",
	"https://203.0.114.1/",
	"http://93.184.215.14:8080/in",
	"https://[2606:4700:4700::1111]/",
	"https://[64:ff9b::808:808]/",   // NAT64 of 8.8.8.8
	"https://[2002:808:808::1]/",    // 6to4 of 8.8.8.8
	"https://[::ffff:8.8.8.8]/",     // IPv4-mapped 8.8.8.8
	"https://100.128.0.1/",          // just above 100.64.0.0/10
	"https://172.32.0.1/",           // just above 172.16.0.0/12
	"https://11.0.0.1/",             // just above 10.0.0.0/8
	"https://localhost.example.com", // localhost is not its last label
	"https://mylocalhost/",
	"https://internal.example.com/",
	"https://v1.example/",
	"https://host.123abc/",
}

func TestRegisterWebhookRefusesPrivateTargets(t *testing.T) {
	r, alice := newWebhookRig(t, service.IdentityConfig{})
	ctx := t.Context()
	before, secrets := r.stream.len(), len(r.secrets.m)
	for _, c := range privateTargets {
		_, err := r.id.RegisterWebhook(ctx, alice, domain.RegisterWebhook{App: "crm", URL: c.url}, "", domain.Meta{})
		var de *domain.Error
		if !errors.As(err, &de) || de.Code != domain.CodeInvalidArgument {
			t.Errorf("%s: err = %v, want invalid_argument", c.url, err)
			continue
		}
		if !strings.Contains(de.Message, c.what) {
			t.Errorf("%s: message %q does not say %q", c.url, de.Message, c.what)
		}
		if c.what != "looks like an IP address" && !strings.Contains(de.Message, "--webhook-allow-private") {
			t.Errorf("%s: message %q does not name the setting that allows it", c.url, de.Message)
		}
		// The server administrator's organisation webhooks are no
		// exception.
		if _, err := r.id.RegisterWebhook(ctx, r.admin, domain.RegisterWebhook{Org: "acme", URL: c.url}, "", domain.Meta{}); domain.Code(err) != domain.CodeInvalidArgument {
			t.Errorf("%s for the organisation by the administrator: err = %v, want invalid_argument", c.url, err)
		}
	}
	if r.stream.len() != before || len(r.secrets.m) != secrets {
		t.Fatalf("refused registrations changed the stream (%d → %d) or stored secrets (%d → %d)", before, r.stream.len(), secrets, len(r.secrets.m))
	}
	for _, u := range publicTargets {
		w, err := r.id.RegisterWebhook(ctx, alice, domain.RegisterWebhook{App: "crm", URL: u}, "", domain.Meta{})
		if err != nil || w.URL != u {
			t.Errorf("%s: %+v, %v; want it registered as given", u, w.Webhook, err)
		}
	}
}

func TestRegisterWebhookAllowsPrivateTargetsWhenConfigured(t *testing.T) {
	r, alice := newWebhookRig(t, service.IdentityConfig{AllowPrivateWebhookTargets: true})
	ctx := t.Context()
	for _, c := range privateTargets {
		w, err := r.id.RegisterWebhook(ctx, alice, domain.RegisterWebhook{App: "crm", URL: c.url}, "", domain.Meta{})
		if err != nil || w.URL != c.url {
			t.Errorf("%s: %+v, %v; want it registered as given", c.url, w.Webhook, err)
		}
	}
	// The other checks of the URL still hold.
	for _, u := range []string{"ftp://127.0.0.1/", "http://u:p@localhost/", "http://localhost/#x"} {
		if _, err := r.id.RegisterWebhook(ctx, alice, domain.RegisterWebhook{App: "crm", URL: u}, "", domain.Meta{}); domain.Code(err) != domain.CodeInvalidArgument {
			t.Errorf("%s: err = %v, want invalid_argument", u, err)
		}
	}
}

func TestRegisterWebhookDecidedWithoutTheServerRefusesPrivateTargets(t *testing.T) {
	// A command that does not go through Identity.RegisterWebhook (which
	// sets the server's setting) refuses private targets also on a server
	// that allows them.
	r, alice := newWebhookRig(t, service.IdentityConfig{AllowPrivateWebhookTargets: true})
	var err error
	r.id.Read(func(d *domain.Directory) {
		_, err = domain.RegisterWebhook{ID: "w1", App: "crm", URL: "http://127.0.0.1/"}.Decide(d, alice, t0)
	})
	if domain.Code(err) != domain.CodeInvalidArgument {
		t.Fatalf("Decide = %v, want invalid_argument", err)
	}
}

func TestNonPublicAddr(t *testing.T) {
	for _, c := range privateTargets {
		host := c.url[strings.Index(c.url, "//")+2:]
		host = host[:strings.IndexAny(host, "/")]
		if strings.HasPrefix(host, "[") {
			host = strings.ReplaceAll(host[1:strings.Index(host, "]")], "%25", "%")
		} else if i := strings.IndexByte(host, ':'); i >= 0 {
			host = host[:i]
		}
		a, err := netip.ParseAddr(strings.TrimSuffix(host, "."))
		if err != nil {
			continue // a name or a non-canonical number
		}
		if got := domain.NonPublicAddr(a); got != c.what {
			t.Errorf("NonPublicAddr(%s) = %q, want %q", a, got, c.what)
		}
	}
	for _, s := range []string{"8.8.8.8", "1.1.1.1", "93.184.215.14", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e", "::ffff:8.8.8.8", "64:ff9b::808:808"} {
		if got := domain.NonPublicAddr(netip.MustParseAddr(s)); got != "" {
			t.Errorf("NonPublicAddr(%s) = %q, want public", s, got)
		}
	}
	if domain.NonPublicAddr(netip.Addr{}) == "" {
		t.Error("the invalid Addr is public")
	}
}
