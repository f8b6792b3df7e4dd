package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// SeedName is the name of the backup Setup makes in each app.
const SeedName = "load seed"

// Setup makes apps app-001 … app-<n> of organisation org on the backupd at
// base (with an administrator's token), each with one backup (SeedName,
// made once and kept for later runs), and returns the backup of each app.
// It waits until every backup has been made (ready).
func Setup(ctx context.Context, base, token, org string, n int) (map[string]string, error) {
	h := &setup{base: base, token: token}
	if status, body, err := h.do(ctx, "POST", "/v1/orgs", map[string]string{"id": org}); err != nil {
		return nil, err
	} else if status != http.StatusCreated && status != http.StatusConflict {
		return nil, fmt.Errorf("create organisation %s: %d %s", org, status, body)
	}
	apps := map[string]string{}
	for i := 1; i <= n; i++ {
		app := fmt.Sprintf("app-%03d", i)
		if status, body, err := h.do(ctx, "PUT", "/v1/apps/"+app, map[string]string{"org": org}); err != nil {
			return nil, err
		} else if status != http.StatusOK && status != http.StatusCreated {
			return nil, fmt.Errorf("register app %s: %d %s", app, status, body)
		}
		id, err := h.seed(ctx, app)
		if err != nil {
			return nil, err
		}
		apps[app] = id
	}
	for app, id := range apps {
		if err := h.waitReady(ctx, app, id); err != nil {
			return nil, err
		}
	}
	return apps, nil
}

type setup struct{ base, token string }

type backupView struct {
	ID     string  `json:"id"`
	Name   string  `json:"name"`
	Status string  `json:"status"`
	Error  *string `json:"error"`
}

// seed returns app's seed backup, requested now if it has none.
func (h *setup) seed(ctx context.Context, app string) (string, error) {
	var list struct {
		Backups []backupView `json:"backups"`
	}
	if err := h.json(ctx, "GET", "/v1/apps/"+app+"/backups", nil, http.StatusOK, &list); err != nil {
		return "", err
	}
	for _, b := range list.Backups {
		if b.Name == SeedName && b.Status != "failed" {
			return b.ID, nil
		}
	}
	var b backupView
	if err := h.json(ctx, "POST", "/v1/apps/"+app+"/backups", map[string]string{"name": SeedName}, http.StatusAccepted, &b); err != nil {
		return "", err
	}
	return b.ID, nil
}

// waitReady waits until backup id of app is ready.
func (h *setup) waitReady(ctx context.Context, app, id string) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var b backupView
		if err := h.json(ctx, "GET", "/v1/apps/"+app+"/backups/"+url.PathEscape(id), nil, http.StatusOK, &b); err != nil {
			return err
		}
		switch {
		case b.Status == "ready":
			return nil
		case b.Status == "failed":
			return fmt.Errorf("seed backup %s of %s failed: %v", id, app, b.Error)
		case time.Now().After(deadline):
			return fmt.Errorf("seed backup %s of %s still %s after 2 minutes", id, app, b.Status)
		}
		if !Sleep(ctx, 20*time.Millisecond) {
			return ctx.Err()
		}
	}
}

func (h *setup) do(ctx context.Context, method, path string, body any) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, h.base+path, r)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+h.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

func (h *setup) json(ctx context.Context, method, path string, body any, want int, v any) error {
	status, out, err := h.do(ctx, method, path, body)
	if err != nil {
		return err
	}
	if status != want {
		return fmt.Errorf("%s %s: %d %s", method, path, status, out)
	}
	return json.Unmarshal(out, v)
}
