package domain

// IdentityResult is the outcome of an identity command.
type IdentityResult struct {
	// Seq is the stream sequence of the event, 0 when the command changed
	// nothing (it was already so).
	Seq       uint64
	EventType string
	Duplicate bool
	// Event is the event appended; nil when the command changed nothing
	// or was a retry.
	Event Event
}

// PasswordChange is the outcome of ChangePassword.
type PasswordChange struct {
	IdentityResult
	// RevokedSessions are the sessions the change ended (none for a
	// retried command).
	RevokedSessions []string
	// APITokens are the user's API tokens, which still work: a user who
	// changed its password because one leaked revokes them itself.
	APITokens []Token
}

// NewToken is a token just made: its secret is shown once.
type NewToken struct {
	Token
	// Secret is the bearer token to present; it is not kept.
	Secret string
}
