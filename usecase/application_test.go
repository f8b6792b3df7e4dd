package usecase_test

import (
	"context"
	"errors"
	"testing"

	"github.com/backupledger/backupledger/domain"
	"github.com/backupledger/backupledger/test/apitest"
	"github.com/backupledger/backupledger/usecase"
)

// newApp is an Application over a stack on which apitest.Apps exist, in
// the organisation "test".
func newApp(t *testing.T) (*usecase.Application, *apitest.Stack) {
	t.Helper()
	st := apitest.NewStack(t)
	return apitest.NewApp(t, nil, st.AppDeps()), st
}

var (
	admin    = domain.Principal{ID: "admin", Admin: true}
	stranger = domain.Principal{ID: "eve"}
)

func TestNewNeedsCommandsAndQueries(t *testing.T) {
	if _, err := usecase.New(usecase.Config{}, usecase.Deps{}); err == nil {
		t.Fatal("an application without commands and queries was made")
	}
}

// Every use case on an app checks it the same way: a bad id is
// invalid_argument, an app the caller may not see (or that does not
// exist) not_found, whatever the use case.
func TestUseCasesCheckTheApp(t *testing.T) {
	app, st := newApp(t)
	ctx := context.Background()
	name := "x"
	for _, tc := range []struct {
		who  domain.Principal
		app  string
		code string
	}{
		{admin, "CRM", domain.CodeInvalidArgument},
		{admin, "nosuchapp", domain.CodeNotFound},
		{stranger, "crm", domain.CodeNotFound},
	} {
		before := st.Store.Appends()
		c := &usecase.Call{Principal: tc.who, Meta: domain.Meta{Actor: tc.who.ID, CommandID: "k1"}}
		for what, err := range map[string]error{
			"create":  second(app.CreateBackup(ctx, c, usecase.CreateBackup{App: tc.app})),
			"list":    second(app.ListBackups(ctx, c, usecase.ListBackups{App: tc.app})),
			"rename":  second(app.RenameBackup(ctx, c, usecase.RenameBackup{App: tc.app, ID: "b", Name: &name})),
			"delete":  app.DeleteBackup(ctx, c, usecase.BackupRef{App: tc.app, ID: "b"}),
			"state":   second(app.GetApp(ctx, c, usecase.GetApp{App: tc.app})),
			"logs":    second(app.AppLog(ctx, c, tc.app)),
			"restore": second(app.CreateRestore(ctx, c, usecase.CreateRestore{App: tc.app, BackupID: "b"})),
			"doc":     third(app.PutDoc(ctx, c, usecase.PutDoc{App: tc.app, Key: "k", Value: []byte("v")})),
			"upload":  second(app.UploadBackup(ctx, c, usecase.UploadBackup{Upload: domain.Upload{App: tc.app}})),
		} {
			if got := domain.Code(err); got != tc.code {
				t.Errorf("%s by %s on %q: %v, want %s", what, tc.who.ID, tc.app, err, tc.code)
			}
		}
		if got := st.Store.Appends(); got != before {
			t.Errorf("refused use cases appended %d events", got-before)
		}
	}
}

func second[T any](_ T, err error) error { return err }

func third[T, U any](_ T, _ U, err error) error { return err }

// A retry answers the first result and says so; the same key for another
// command is a conflict.
func TestCommandRetries(t *testing.T) {
	app, _ := newApp(t)
	ctx := context.Background()
	call := func(key string) *usecase.Call {
		return &usecase.Call{Principal: admin, Meta: domain.Meta{Actor: "admin", CommandID: key, ClientKey: true}}
	}
	first, err := app.CreateBackup(ctx, call("k1"), usecase.CreateBackup{App: "crm"})
	if err != nil {
		t.Fatal(err)
	}
	retry := call("k1")
	again, err := app.CreateBackup(ctx, retry, usecase.CreateBackup{App: "crm"})
	if err != nil || again.ID != first.ID || !retry.Replayed {
		t.Fatalf("retry: %+v replayed %v, %v; first %s", again, retry.Replayed, err, first.ID)
	}
	other := call("k1")
	err = app.DeleteBackup(ctx, other, usecase.BackupRef{App: "crm", ID: first.ID})
	var de *domain.Error
	if !errors.As(err, &de) || de.Code != domain.CodeIdempotencyKeyReused || other.Replayed {
		t.Fatalf("the key of a create sent with a delete: %v (replayed %v)", err, other.Replayed)
	}
}

// A restore request lacking a field is refused before anything is
// checked: a missing password does not count as a wrong one.
func TestCreateRestoreNeedsItsFields(t *testing.T) {
	app, st := newApp(t)
	yes := true
	for _, tc := range []struct {
		name string
		who  domain.Principal
		req  usecase.CreateRestore
	}{
		{"no backup", admin, usecase.CreateRestore{App: "crm", PreRestoreBackup: &yes, AutoEndMaintenance: &yes}},
		{"no pre-restore choice", admin, usecase.CreateRestore{App: "crm", BackupID: "b", AutoEndMaintenance: &yes}},
		{"no auto-end choice", admin, usecase.CreateRestore{App: "crm", BackupID: "b", PreRestoreBackup: &yes}},
	} {
		before := st.Store.Appends()
		_, err := app.CreateRestore(context.Background(), &usecase.Call{Principal: tc.who, Meta: domain.Meta{Actor: tc.who.ID, CommandID: "r"}}, tc.req)
		if domain.Code(err) != domain.CodeInvalidArgument {
			t.Errorf("%s: %v", tc.name, err)
		}
		if st.Store.Appends() != before {
			t.Errorf("%s: appended", tc.name)
		}
	}
}
