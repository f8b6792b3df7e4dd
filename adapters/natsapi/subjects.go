package natsapi

import "context"

// Subjects of the endpoints. Each takes and answers JSON; see docs/api.md.
const (
	SubjectPrefix = "ledger.api"

	SubjectBackupsCreate = SubjectPrefix + ".backups.create" // CreateRequest → backup
	SubjectBackupsList   = SubjectPrefix + ".backups.list"   // AppRequest → {"backups":[...]}
	SubjectBackupsAll    = SubjectPrefix + ".backups.all"    // {} → {"backups":[...]}
	SubjectBackupsGet    = SubjectPrefix + ".backups.get"    // BackupRequest → backup
	SubjectBackupsRename = SubjectPrefix + ".backups.rename" // RenameRequest → backup
	SubjectBackupsDelete = SubjectPrefix + ".backups.delete" // DeleteRequest → Deleted
	SubjectAppsGet       = SubjectPrefix + ".apps.get"       // AppRequest → app state
	SubjectLogsApp       = SubjectPrefix + ".logs.app"       // AppRequest → {"entries":[...]}
	SubjectLogsBackup    = SubjectPrefix + ".logs.backup"    // BackupRequest → {"entries":[...]}
	SubjectConfigPut     = SubjectPrefix + ".config.put"     // PutDocRequest → DocView
	SubjectConfigGet     = SubjectPrefix + ".config.get"     // DocRequest → DocValue
	SubjectConfigDelete  = SubjectPrefix + ".config.delete"  // DocRequest → Deleted
	SubjectConfigList    = SubjectPrefix + ".config.list"    // AppRequest → {"documents":[...]}
)

// endpoint is one micro endpoint: its name (unique in the service), its
// subject and its handler.
type endpoint struct {
	name    string
	subject string
	h       handler
}

// handler answers one authenticated request with a value to send as JSON,
// or an error to send as a problem.
type handler func(ctx context.Context, c *call) (any, error)

// endpoints is the table of the service's endpoints.
func (s *Service) endpoints() []endpoint {
	return []endpoint{
		{"backups_create", SubjectBackupsCreate, s.createBackup},
		{"backups_list", SubjectBackupsList, s.listBackups},
		{"backups_all", SubjectBackupsAll, s.allBackups},
		{"backups_get", SubjectBackupsGet, s.getBackup},
		{"backups_rename", SubjectBackupsRename, s.renameBackup},
		{"backups_delete", SubjectBackupsDelete, s.deleteBackup},
		{"apps_get", SubjectAppsGet, s.getApp},
		{"logs_app", SubjectLogsApp, s.appLog},
		{"logs_backup", SubjectLogsBackup, s.backupLog},
		{"config_put", SubjectConfigPut, s.putDoc},
		{"config_get", SubjectConfigGet, s.getDoc},
		{"config_delete", SubjectConfigDelete, s.deleteDoc},
		{"config_list", SubjectConfigList, s.listDocs},
	}
}
