package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdp/eddy/core/auth"
)

// BootstrapAdmin creates the installation's first admin and makes them owner
// of every organization, in one transaction, unless an admin exists already
// (then created is false and nothing changes). Concurrent calls take turns,
// so only one creates an admin. It returns the slugs of the organizations
// the admin owns.
func (s *Store) BootstrapAdmin(ctx context.Context, who Change, email, name, passwordHash string) (a Admin, orgs []string, created bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// 1701078137 is "eddy"; 3 names this lock.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(1701078137, 3)`); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM admins)`).Scan(&exists); err != nil || exists {
			return err
		}
		var err error
		if a, err = createAdmin(ctx, tx, email, name, passwordHash); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `
			INSERT INTO memberships (organization_id, admin_id, role)
			SELECT id, $1, $2 FROM organizations
			RETURNING organization_id::text, (SELECT slug FROM organizations o WHERE o.id = organization_id)`, a.ID, auth.RoleOwner)
		if err != nil {
			return err
		}
		type owned struct{ id, slug string }
		var list []owned
		var o owned
		if _, err := pgx.ForEachRow(rows, []any{&o.id, &o.slug}, func() error { list = append(list, o); return nil }); err != nil {
			return err
		}
		for _, o := range list {
			orgs = append(orgs, o.slug)
			if err := s.writeAudit(ctx, tx, who, audit{orgID: o.id, action: "member.add", targetType: "admin",
				targetID: a.Email, after: map[string]any{"role": auth.RoleOwner}}); err != nil {
				return err
			}
		}
		created = true
		return nil
	})
	if err != nil {
		return a, nil, false, fmt.Errorf("bootstrap admin: %w", err)
	}
	return a, orgs, created, nil
}
