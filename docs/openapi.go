// Package docs holds the documents that programs serve or run with: the
// OpenAPI description of the HTTP API, and the NATS accounts of the
// embedded server.
package docs

import _ "embed"

// OpenAPI is the OpenAPI 3.1 document of the HTTP API (openapi.yaml), which
// backupd serves at GET /v1/openapi.yaml. It is read-only: do not modify.
//
//go:embed openapi.yaml
var OpenAPI []byte

// NATSAccounts is the NATS server configuration of backupledger's accounts
// and users (nats/accounts.conf, docs/security.md): the embedded server runs
// with it, and operators include it in their cluster's configuration. It
// is read-only: do not modify.
//
//go:embed nats/accounts.conf
var NATSAccounts []byte
