// Package docs holds the documents that programs serve: the OpenAPI
// description of the HTTP API.
package docs

import _ "embed"

// OpenAPI is the OpenAPI 3.1 document of the HTTP API (openapi.yaml), which
// backupd serves at GET /v1/openapi.yaml. It is read-only: do not modify.
//
//go:embed openapi.yaml
var OpenAPI []byte
