package domain

import (
	"net/netip"
	"net/url"
	"strings"
)

// nonPublicRanges are the address ranges a webhook may not target unless
// the server allows private targets, each with what it is called in an
// error message. IPv4-mapped IPv6 addresses are unmapped before they are
// looked up here; NAT64 and 6to4 addresses are judged by the IPv4 address
// they embed (see NonPublicAddr).
var nonPublicRanges = []struct {
	prefix netip.Prefix
	what   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), `an unspecified ("this network") address`},
	{netip.MustParsePrefix("10.0.0.0/8"), "a private address (RFC 1918)"},
	{netip.MustParsePrefix("100.64.0.0/10"), "a shared (carrier-grade NAT) address"},
	{netip.MustParsePrefix("127.0.0.0/8"), "a loopback address"},
	{netip.MustParsePrefix("169.254.0.0/16"), "a link-local address"},
	{netip.MustParsePrefix("172.16.0.0/12"), "a private address (RFC 1918)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "a reserved address"},
	{netip.MustParsePrefix("192.0.2.0/24"), "a documentation address"},
	{netip.MustParsePrefix("192.88.99.0/24"), "a reserved address"},
	{netip.MustParsePrefix("192.168.0.0/16"), "a private address (RFC 1918)"},
	{netip.MustParsePrefix("198.18.0.0/15"), "a reserved address"},
	{netip.MustParsePrefix("198.51.100.0/24"), "a documentation address"},
	{netip.MustParsePrefix("203.0.113.0/24"), "a documentation address"},
	{netip.MustParsePrefix("224.0.0.0/4"), "a multicast address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved address"},

	{netip.MustParsePrefix("::/128"), "an unspecified address"},
	{netip.MustParsePrefix("::1/128"), "a loopback address"},
	{netip.MustParsePrefix("::/96"), "an IPv4-compatible address"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "a reserved address"},
	{netip.MustParsePrefix("100::/64"), "a reserved address"},
	{netip.MustParsePrefix("2001:db8::/32"), "a documentation address"},
	{netip.MustParsePrefix("2001::/23"), "a reserved address"},
	{netip.MustParsePrefix("3fff::/20"), "a documentation address"},
	{netip.MustParsePrefix("fc00::/7"), "a unique local address"},
	{netip.MustParsePrefix("fe80::/10"), "a link-local address"},
	{netip.MustParsePrefix("fec0::/10"), "a site-local address"},
	{netip.MustParsePrefix("ff00::/8"), "a multicast address"},
}

var (
	// nat64 is the well-known NAT64 prefix (RFC 6052): its addresses reach
	// the IPv4 address in their last 32 bits.
	nat64 = netip.MustParsePrefix("64:ff9b::/96")
	// sixToFour is the 6to4 prefix (RFC 3056): bits 16 to 48 are an IPv4
	// address.
	sixToFour = netip.MustParsePrefix("2002::/16")
	// globalUnicast is the only IPv6 range with public unicast addresses.
	globalUnicast = netip.MustParsePrefix("2000::/3")
)

// NonPublicAddr returns what kind of address a is when a webhook may not
// target it without the server's permission (e.g. "a loopback address",
// "a private address (RFC 1918)", "a link-local address", which includes
// the cloud metadata address 169.254.169.254), or "" for a public unicast
// address. An IPv4-mapped IPv6 address is judged as its IPv4 address, a
// NAT64 (64:ff9b::/96) or 6to4 (2002::/16) address as the IPv4 address it
// embeds, an IPv6 address outside 2000::/3 is reserved, and a zone is
// ignored. The invalid Addr is reserved too.
func NonPublicAddr(a netip.Addr) string {
	if !a.IsValid() {
		return "not an IP address"
	}
	a = a.WithZone("").Unmap()
	switch {
	case a.Is6() && nat64.Contains(a):
		b := a.As16()
		return NonPublicAddr(netip.AddrFrom4([4]byte(b[12:16])))
	case a.Is6() && sixToFour.Contains(a):
		b := a.As16()
		return NonPublicAddr(netip.AddrFrom4([4]byte(b[2:6])))
	}
	for _, r := range nonPublicRanges {
		if r.prefix.Contains(a) {
			return r.what
		}
	}
	if a.Is6() && !globalUnicast.Contains(a) {
		return "a reserved address"
	}
	return ""
}

// localNames are the host names, and the suffixes of host names, that
// name this machine or a private network by definition: localhost (RFC
// 6761, and what resolvers answer locally), .internal (reserved by ICANN
// for private use), .local (multicast DNS, RFC 6762) and .home.arpa (RFC
// 8375).
var (
	localNames    = []string{"localhost", "localhost.localdomain"}
	localSuffixes = []string{".localhost", ".localhost.localdomain", ".internal", ".local", ".home.arpa"}
)

// CheckWebhookTarget refuses, with invalid_argument, a webhook URL (as
// CheckWebhookURL accepts it) whose host is a non-public IP address (see
// NonPublicAddr), a number that resolvers take for an IPv4 address
// ("2130706433", "127.1", "0x7f.0.0.1": only four decimal numbers are
// accepted, so that what is checked is what is dialled), or a local name
// (localhost, *.localhost, *.internal, *.local, *.home.arpa). It does not
// resolve host names (the domain does no I/O): the deliverer checks the
// address it connects to, which also defeats DNS rebinding. A server that
// allows private targets does not call it.
func CheckWebhookTarget(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		return Errorf(CodeInvalidArgument, "webhook url %q: not a URL with a host", clip(raw, 100))
	}
	refuse := func(what string) error {
		return Errorf(CodeInvalidArgument, "webhook url %q: the host %s is %s; webhooks may target public addresses only, unless the server allows private targets (--webhook-allow-private)",
			clip(raw, 100), clip(u.Hostname(), 100), what)
	}
	host := strings.ToLower(strings.TrimRight(u.Hostname(), "."))
	if a, err := netip.ParseAddr(host); err == nil {
		if what := NonPublicAddr(a); what != "" {
			return refuse(what)
		}
		return nil
	}
	if numericHost(host) {
		return Errorf(CodeInvalidArgument, "webhook url %q: the host %s looks like an IP address; write an IPv4 address as four decimal numbers (e.g. 203.0.113.7)",
			clip(raw, 100), clip(u.Hostname(), 100))
	}
	for _, n := range localNames {
		if host == n {
			return refuse("a local name")
		}
	}
	for _, s := range localSuffixes {
		if strings.HasSuffix(host, s) {
			return refuse("a local name")
		}
	}
	return nil
}

// numericHost reports whether host ends in a number, decimal or 0x hex:
// such a host is an IPv4 address to URL parsers (the WHATWG URL standard)
// and to inet_aton, never a DNS name (no top-level domain is numeric).
func numericHost(host string) bool {
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last == "" {
		return false
	}
	if h, ok := strings.CutPrefix(last, "0x"); ok {
		return strings.Trim(h, "0123456789abcdef") == ""
	}
	return strings.Trim(last, "0123456789") == ""
}
