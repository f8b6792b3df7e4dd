package projections

// StateOf returns everything s folded, for tests to compare two stores
// with reflect.DeepEqual (unexported fields included).
func StateOf(s *Store) any {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return struct {
		Apps        map[string]*appModel
		Dir         any
		Check       any
		Rejected    any
		Refused     any
		LastRefused uint64
		RestoreKeys any
		Applied     uint64
		AppliedHash string
	}{s.apps, s.dir, *s.check, s.rejected, s.refused, s.lastRefused, s.restoreKeys, s.applied, s.appliedHash}
}
