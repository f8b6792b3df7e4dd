package test

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/backupledger/backupledger/docs"
)

// A running backupd serves its OpenAPI document without a token.
func TestOpenAPIServed(t *testing.T) {
	n := startNode(t, t.TempDir(), nil, nil)
	r := n.do("GET", "/v1/openapi.yaml", nil, "Authorization", "")
	if r.status != http.StatusOK || !bytes.Equal(r.body, docs.OpenAPI) || !bytes.HasPrefix(r.body, []byte("openapi: 3.1")) {
		t.Fatalf("GET /v1/openapi.yaml: %d, %d bytes: %.60q", r.status, len(r.body), r.body)
	}
}
