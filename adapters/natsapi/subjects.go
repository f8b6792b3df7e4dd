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
	SubjectBackupsVerify   = SubjectPrefix + ".backups.verify"   // DeleteRequest ({app, id}) → backup
	SubjectBackupsQuote    = SubjectPrefix + ".backups.quote"    // AppRequest → quote
	SubjectBackupsUpload   = SubjectPrefix + ".backups.upload"   // UploadRequest → backup
	SubjectBackupsDownload = SubjectPrefix + ".backups.download" // DownloadRequest → usecase.StagedDownload
	SubjectAppsGet         = SubjectPrefix + ".apps.get"         // AppRequest → app state
	SubjectRetentionGet    = SubjectPrefix + ".retention.get"    // AppRequest → retention (a dry run)
	SubjectLogsApp         = SubjectPrefix + ".logs.app"         // AppRequest → {"entries":[...]}
	SubjectLogsBackup      = SubjectPrefix + ".logs.backup"      // BackupRequest → {"entries":[...]}
	SubjectConfigPut       = SubjectPrefix + ".config.put"       // PutDocRequest → DocView
	SubjectConfigGet       = SubjectPrefix + ".config.get"       // DocRequest → DocValue
	SubjectConfigDelete    = SubjectPrefix + ".config.delete"    // DocRequest → Deleted
	SubjectConfigList      = SubjectPrefix + ".config.list"      // AppRequest → {"documents":[...]}
)

// Subjects of the restore and maintenance endpoints (restores.go).
const (
	SubjectMaintenanceStart = SubjectPrefix + ".maintenance.start" // MaintenanceRequest → app state
	SubjectMaintenanceEnd   = SubjectPrefix + ".maintenance.end"   // MaintenanceRequest → app state
	SubjectRestoresCreate   = SubjectPrefix + ".restores.create"   // CreateRestoreRequest → restore
	SubjectRestoresGet      = SubjectPrefix + ".restores.get"      // RestoreRequest → restore
	SubjectRestoresList     = SubjectPrefix + ".restores.list"     // AppRequest → {"restores":[...]}
)

// Subjects of the identity endpoints (identity.go).
const (
	SubjectOrgsCreate        = SubjectPrefix + ".orgs.create"         // CreateOrgRequest → org
	SubjectOrgsList          = SubjectPrefix + ".orgs.list"           // {} → OrgList
	SubjectOrgsGet           = SubjectPrefix + ".orgs.get"            // OrgRequest → org
	SubjectOrgsMembersAdd    = SubjectPrefix + ".orgs.members.add"    // MemberRequest → Membership
	SubjectOrgsMembersRemove = SubjectPrefix + ".orgs.members.remove" // MemberRequest → Membership
	SubjectUsersCreate       = SubjectPrefix + ".users.create"        // CreateUserRequest → user
	SubjectUsersList         = SubjectPrefix + ".users.list"          // {} → UserList
	SubjectUsersGet          = SubjectPrefix + ".users.get"           // UserRequest → user
	SubjectUsersDisable      = SubjectPrefix + ".users.disable"       // DisableUserRequest → user
	SubjectUsersPassword     = SubjectPrefix + ".users.password"      // PasswordRequest → projections.PasswordChangeView
	SubjectAppsRegister      = SubjectPrefix + ".apps.register"       // RegisterAppRequest → app access
	SubjectAppsAdminsGet     = SubjectPrefix + ".apps.admins.get"     // AppRequest → app access
	SubjectAppsAdminsGrant   = SubjectPrefix + ".apps.admins.grant"   // AdminRequest → AdminChange
	SubjectAppsAdminsRevoke  = SubjectPrefix + ".apps.admins.revoke"  // AdminRequest → AdminChange
	SubjectTokensCreate      = SubjectPrefix + ".tokens.create"       // CreateTokenRequest → new token
	SubjectTokensList        = SubjectPrefix + ".tokens.list"         // {} → TokenList
	SubjectTokensRevoke      = SubjectPrefix + ".tokens.revoke"       // TokenRequest → TokenRevoked
	SubjectSessionsCreate    = SubjectPrefix + ".sessions.create"     // LoginRequest → new token; no Authorization
	SubjectSessionsEnd       = SubjectPrefix + ".sessions.end"        // CommandFields → TokenRevoked
	SubjectMe                = SubjectPrefix + ".me"                  // {} → me
)

// Subjects of the nightly schedule and webhook endpoints (lifecycle.go).
const (
	SubjectScheduleGet        = SubjectPrefix + ".schedule.get"        // AppRequest → schedule
	SubjectScheduleSet        = SubjectPrefix + ".schedule.set"        // SetScheduleRequest → schedule
	SubjectWebhooksCreate     = SubjectPrefix + ".webhooks.create"     // CreateWebhookRequest → new webhook, with its secret
	SubjectWebhooksList       = SubjectPrefix + ".webhooks.list"       // WebhooksRequest → {"webhooks":[...]}
	SubjectWebhooksDelete     = SubjectPrefix + ".webhooks.delete"     // WebhookRequest → WebhookDeleted
	SubjectWebhooksDeliveries = SubjectPrefix + ".webhooks.deliveries" // DeliveriesRequest → {"deliveries":[...]}

	// The ledger's signing keys (docs/security.md#signed-events).
	SubjectKeysList   = SubjectPrefix + ".keys.list"   // {} → KeyList; no Authorization
	SubjectKeysRotate = SubjectPrefix + ".keys.rotate" // CommandFields → KeyList (server administrator)
)

// endpoint is one micro endpoint: its name (unique in the service), its
// subject and its handler; for archive transfers that copy a whole
// archive, the longer time they may take; and for the login, that it
// takes requests without an Authorization header.
type endpoint struct {
	name     string
	subject  string
	h        handler
	transfer bool
	// public endpoints are not authenticated: the handler sees the zero
	// Principal. Only the login is.
	public bool
}

// handler answers one request with a value to send as JSON, or an error
// to send as a problem.
type handler func(ctx context.Context, c *call) (any, error)

// endpoints is the table of the service's endpoints.
func (s *Service) endpoints() []endpoint {
	return []endpoint{
		{name: "backups_create", subject: SubjectBackupsCreate, h: s.createBackup},
		{name: "backups_list", subject: SubjectBackupsList, h: s.listBackups},
		{name: "backups_all", subject: SubjectBackupsAll, h: s.allBackups},
		{name: "backups_get", subject: SubjectBackupsGet, h: s.getBackup},
		{name: "backups_rename", subject: SubjectBackupsRename, h: s.renameBackup},
		{name: "backups_delete", subject: SubjectBackupsDelete, h: s.deleteBackup},
		{name: "backups_verify", subject: SubjectBackupsVerify, h: s.verifyBackup, transfer: true},
		{name: "backups_quote", subject: SubjectBackupsQuote, h: s.quote},
		{name: "backups_upload", subject: SubjectBackupsUpload, h: s.uploadBackup, transfer: true},
		{name: "backups_download", subject: SubjectBackupsDownload, h: s.downloadBackup, transfer: true},
		{name: "apps_get", subject: SubjectAppsGet, h: s.getApp},
		{name: "retention_get", subject: SubjectRetentionGet, h: s.retention},
		{name: "logs_app", subject: SubjectLogsApp, h: s.appLog},
		{name: "logs_backup", subject: SubjectLogsBackup, h: s.backupLog},
		{name: "config_put", subject: SubjectConfigPut, h: s.putDoc},
		{name: "config_get", subject: SubjectConfigGet, h: s.getDoc},
		{name: "config_delete", subject: SubjectConfigDelete, h: s.deleteDoc},
		{name: "config_list", subject: SubjectConfigList, h: s.listDocs},
		{name: "maintenance_start", subject: SubjectMaintenanceStart, h: s.startMaintenance},
		{name: "maintenance_end", subject: SubjectMaintenanceEnd, h: s.endMaintenance},
		{name: "restores_create", subject: SubjectRestoresCreate, h: s.createRestore},
		{name: "restores_get", subject: SubjectRestoresGet, h: s.getRestore},
		{name: "restores_list", subject: SubjectRestoresList, h: s.listRestores},

		{name: "orgs_create", subject: SubjectOrgsCreate, h: s.createOrg},
		{name: "orgs_list", subject: SubjectOrgsList, h: s.listOrgs},
		{name: "orgs_get", subject: SubjectOrgsGet, h: s.getOrg},
		{name: "orgs_members_add", subject: SubjectOrgsMembersAdd, h: s.setMember(true)},
		{name: "orgs_members_remove", subject: SubjectOrgsMembersRemove, h: s.setMember(false)},
		{name: "users_create", subject: SubjectUsersCreate, h: s.createUser},
		{name: "users_list", subject: SubjectUsersList, h: s.listUsers},
		{name: "users_get", subject: SubjectUsersGet, h: s.getUser},
		{name: "users_disable", subject: SubjectUsersDisable, h: s.disableUser},
		{name: "users_password", subject: SubjectUsersPassword, h: s.setPassword},
		{name: "apps_register", subject: SubjectAppsRegister, h: s.registerApp},
		{name: "apps_admins_get", subject: SubjectAppsAdminsGet, h: s.getAppAccess},
		{name: "apps_admins_grant", subject: SubjectAppsAdminsGrant, h: s.setAdmin(true)},
		{name: "apps_admins_revoke", subject: SubjectAppsAdminsRevoke, h: s.setAdmin(false)},
		{name: "tokens_create", subject: SubjectTokensCreate, h: s.createToken},
		{name: "tokens_list", subject: SubjectTokensList, h: s.listTokens},
		{name: "tokens_revoke", subject: SubjectTokensRevoke, h: s.revokeToken},
		{name: "sessions_create", subject: SubjectSessionsCreate, h: s.login, public: true},
		{name: "sessions_end", subject: SubjectSessionsEnd, h: s.endSession},
		{name: "me", subject: SubjectMe, h: s.me},

		{name: "schedule_get", subject: SubjectScheduleGet, h: s.getSchedule},
		{name: "schedule_set", subject: SubjectScheduleSet, h: s.setSchedule},
		{name: "webhooks_create", subject: SubjectWebhooksCreate, h: s.createWebhook},
		{name: "webhooks_list", subject: SubjectWebhooksList, h: s.listWebhooks},
		{name: "webhooks_delete", subject: SubjectWebhooksDelete, h: s.deleteWebhook},
		{name: "webhooks_deliveries", subject: SubjectWebhooksDeliveries, h: s.webhookDeliveries},

		{name: "keys_list", subject: SubjectKeysList, h: s.listKeys, public: true},
		{name: "keys_rotate", subject: SubjectKeysRotate, h: s.rotateKey},
	}
}
