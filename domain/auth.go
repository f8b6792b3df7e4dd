package domain

// Principal is an authenticated caller.
type Principal struct {
	// ID is recorded as the actor of the events the caller causes.
	ID string
	// Admin is true for the server administrator.
	Admin bool
	// TokenID is the id of the token the caller presented, when the
	// Identity service made it (a session is ended by revoking it).
	TokenID string
}
