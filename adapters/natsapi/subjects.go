package natsapi

import "context"

// Subjects of the endpoints. Each takes and answers JSON; see docs/api.md.
const (
	SubjectPrefix = "ledger.api"

	SubjectBackupsCreate   = SubjectPrefix + ".backups.create"   // CreateRequest → backup
	SubjectBackupsList     = SubjectPrefix + ".backups.list"     // AppRequest → {"backups":[...]}
	SubjectBackupsAll      = SubjectPrefix + ".backups.all"      // {} → {"backups":[...]}
	SubjectBackupsGet      = SubjectPrefix + ".backups.get"      // BackupRequest → backup
	SubjectBackupsRename   = SubjectPrefix + ".backups.rename"   // RenameRequest → backup
	SubjectBackupsDelete   = SubjectPrefix + ".backups.delete"   // DeleteRequest → Deleted
	SubjectBackupsUpload   = SubjectPrefix + ".backups.upload"   // UploadRequest → backup
	SubjectBackupsDownload = SubjectPrefix + ".backups.download" // DownloadRequest → StagedDownload
	SubjectAppsGet         = SubjectPrefix + ".apps.get"         // AppRequest → app state
	SubjectLogsApp         = SubjectPrefix + ".logs.app"         // AppRequest → {"entries":[...]}
	SubjectLogsBackup      = SubjectPrefix + ".logs.backup"      // BackupRequest → {"entries":[...]}
	SubjectConfigPut       = SubjectPrefix + ".config.put"       // PutDocRequest → DocView
	SubjectConfigGet       = SubjectPrefix + ".config.get"       // DocRequest → DocValue
	SubjectConfigDelete    = SubjectPrefix + ".config.delete"    // DocRequest → Deleted
	SubjectConfigList      = SubjectPrefix + ".config.list"      // AppRequest → {"documents":[...]}
)

// endpoint is one micro endpoint: its name (unique in the service), its
// subject and its handler, and for archive transfers that copy a whole
// archive, the longer time they may take.
type endpoint struct {
	name     string
	subject  string
	h        handler
	transfer bool
}

// handler answers one authenticated request with a value to send as JSON,
// or an error to send as a problem.
type handler func(ctx context.Context, c *call) (any, error)

// endpoints is the table of the service's endpoints.
func (s *Service) endpoints() []endpoint {
	return []endpoint{
		{"backups_create", SubjectBackupsCreate, s.createBackup, false},
		{"backups_list", SubjectBackupsList, s.listBackups, false},
		{"backups_all", SubjectBackupsAll, s.allBackups, false},
		{"backups_get", SubjectBackupsGet, s.getBackup, false},
		{"backups_rename", SubjectBackupsRename, s.renameBackup, false},
		{"backups_delete", SubjectBackupsDelete, s.deleteBackup, false},
		{"backups_upload", SubjectBackupsUpload, s.uploadBackup, true},
		{"backups_download", SubjectBackupsDownload, s.downloadBackup, true},
		{"apps_get", SubjectAppsGet, s.getApp, false},
		{"logs_app", SubjectLogsApp, s.appLog, false},
		{"logs_backup", SubjectLogsBackup, s.backupLog, false},
		{"config_put", SubjectConfigPut, s.putDoc, false},
		{"config_get", SubjectConfigGet, s.getDoc, false},
		{"config_delete", SubjectConfigDelete, s.deleteDoc, false},
		{"config_list", SubjectConfigList, s.listDocs, false},
	}
}
