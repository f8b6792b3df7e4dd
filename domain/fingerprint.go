package domain

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
)

// Requester is implemented by a command that holds more than what the
// client asked for (ids it made, facts it looked up): Request returns
// what the client asked for, which RequestHash fingerprints.
type Requester interface {
	Request() any
}

// RequestHash is the fingerprint of the request behind cmd (an app or
// identity command): the SHA-256 of its name and its JSON (Request's, for
// a Requester), 32 hex digits. Secrets are not part of it: fields tagged
// `json:"-"`.
func RequestHash(name string, cmd any) string {
	if r, ok := cmd.(Requester); ok {
		cmd = r.Request()
	}
	body, err := json.Marshal(cmd)
	if err != nil {
		body = []byte(err.Error()) // never: commands are plain values
	}
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// CheckReuse returns CodeIdempotencyKeyReused when rec, the record of an
// earlier command with the key, was made of another request than hash.
// Records without a fingerprint (events from before it was recorded, or
// of generated ids) answer as before.
func CheckReuse(rec CommandRecord, hash string) error {
	if hash == "" || rec.Hash == "" || rec.Hash == hash {
		return nil
	}
	return Errorf(CodeIdempotencyKeyReused, "this idempotency key was used for another request (%s at seq %d): send a retry unchanged, or use a new key", rec.Type, rec.Seq)
}

// RestoreKeys is implemented by a States that indexes, over every app,
// the restore requests made with a client's key: a restore request's key
// is scoped by the app it was sent to (the source), while its event and
// record are the target's.
type RestoreKeys interface {
	// RestoreByKey returns the record of the restore requested from
	// sourceApp by actor with commandID (its App is the target).
	RestoreByKey(sourceApp, actor, commandID string) (CommandRecord, bool)
}

// Request implements Requester: what the client asked to restore where,
// not what the service looked up (the backup's facts, whether the target
// was new).
func (c RequestRestore) Request() any {
	return struct {
		App, SourceApp, BackupID             string
		PreRestoreBackup, AutoEndMaintenance bool
	}{c.App, c.SourceApp, c.BackupID, c.PreRestoreBackup, c.AutoEndMaintenance}
}

// Request implements Requester: the upload's app, name and description;
// not the id the service made, nor the archive's bytes, which a retry is
// answered without reading.
func (c RecordUpload) Request() any {
	return struct {
		App         string
		Name        *string
		Description string
	}{c.App, c.Name, c.Description}
}
