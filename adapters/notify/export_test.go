package notify

import "net"

// Backoff exposes the retry delay after an attempt to the tests.
var Backoff = (*Notifier).backoff

// WithResolver returns c with the resolver of the webhooks' host names
// when private targets are not allowed.
func WithResolver(c Config, r *net.Resolver) Config {
	c.resolver = r
	return c
}
