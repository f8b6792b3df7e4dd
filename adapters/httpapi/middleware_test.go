package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
)

// Every API request is logged at info level with its status and duration;
// scrapes and probes that succeed only at debug level, since they come
// every few seconds.
func TestRequestLogLevels(t *testing.T) {
	a := newAPI(t, nil) // an info-level text logger
	a.do("GET", "/healthz", "", "Authorization", "").want(t, http.StatusOK)
	a.do("GET", "/readyz", "", "Authorization", "").want(t, http.StatusOK)
	a.do("GET", "/v1/apps/crm/backups", "").want(t, http.StatusOK)
	logs := a.logs.String()
	if strings.Contains(logs, "path=/healthz") || strings.Contains(logs, "path=/readyz") {
		t.Errorf("probes logged at info level:\n%s", logs)
	}
	if !strings.Contains(logs, `msg="http request" method=GET path=/v1/apps/crm/backups status=200 duration=`) || !strings.Contains(logs, "app=crm") {
		t.Errorf("the API request's line is missing or incomplete:\n%s", logs)
	}
}
