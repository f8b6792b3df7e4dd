package httpapi_test

import (
	"net/http"
	"testing"

	"github.com/backupledger/backupledger/domain"
)

// Webhooks may not target the server's own network (an internal port
// scan for app admins): loopback, private and link-local addresses and
// local names are refused, for the server administrator too, and nothing
// is recorded.
func TestWebhookPrivateTargetsRefused(t *testing.T) {
	a := newAPI(t, nil)
	before := a.st.Store.Appends()
	for _, url := range []string{
		"http://127.0.0.1:9/x", "http://[::1]:8080/", "http://169.254.169.254/latest/meta-data",
		"http://10.0.0.1:8080/in", "http://192.168.1.1/", "http://localhost:6060/", "http://0x7f.1/",
	} {
		for _, path := range []string{"/v1/apps/crm/webhooks", "/v1/orgs/test/webhooks"} {
			r := a.do("POST", path, `{"url":"`+url+`"}`).want(t, http.StatusBadRequest)
			if p := r.problem(t); p.Code != domain.CodeInvalidArgument {
				t.Errorf("POST %s %s: %+v", path, url, p)
			}
		}
	}
	if n := a.st.Store.Appends(); n != before {
		t.Errorf("refused webhooks appended %d events", n-before)
	}
	a.do("POST", "/v1/apps/crm/webhooks", `{"url":"https://hooks.example.com/crm"}`).want(t, http.StatusCreated)
}
