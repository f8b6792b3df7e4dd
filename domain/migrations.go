package domain

import "fmt"

// Migration turns the items of one schema version of a source kind into
// the next version's: a restore of an older backup runs them in order
// before the import (DESIGN §6).
type Migration struct {
	// Source is the source kind, e.g. "kv".
	Source string
	// From is the version it reads; it writes From+1.
	From int
	// Name says what it does, for the restore's record.
	Name string
	// Apply turns one item into zero or more items. It may read the
	// item's Body (to its end) and give new bodies.
	Apply func(Item) ([]Item, error)
}

// Migrations is the registry of migration steps.
type Migrations []Migration

// MigrationPlan is the steps from one version to another, in order.
type MigrationPlan []Migration

// Plan returns the steps that take source's items from version from to
// version to: none when they are equal; an *Error with CodeBackupNewer
// when from is newer, CodeInvalidArgument when a step is missing.
func (m Migrations) Plan(source string, from, to int) (MigrationPlan, error) {
	if from > to {
		return nil, Errorf(CodeBackupNewer, "schema version %d is newer than this server's %d", from, to)
	}
	var plan MigrationPlan
	for v := from; v < to; v++ {
		found := false
		for _, s := range m {
			if s.Source == source && s.From == v {
				plan, found = append(plan, s), true
				break
			}
		}
		if !found {
			return nil, Errorf(CodeInvalidArgument, "no migration of the %s schema from version %d to %d", source, v, v+1)
		}
	}
	return plan, nil
}

// Apply runs every step on it.
func (p MigrationPlan) Apply(it Item) ([]Item, error) {
	items := []Item{it}
	for _, step := range p {
		var next []Item
		for _, in := range items {
			out, err := step.Apply(in)
			if err != nil {
				return nil, fmt.Errorf("migration %s: %w", step.Name, err)
			}
			next = append(next, out...)
		}
		items = next
	}
	return items, nil
}

// Names returns the steps' Names.
func (p MigrationPlan) Names() []string {
	var out []string
	for _, s := range p {
		out = append(out, fmt.Sprintf("%s %d→%d: %s", s.Source, s.From, s.From+1, s.Name))
	}
	return out
}
