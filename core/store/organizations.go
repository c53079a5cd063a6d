package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdp/eddy/core/auth"
)

// Organization is a tenant: it has admins (members) and workspaces.
type Organization struct {
	// ID is a UUID; Slug is the id the API shows.
	ID, Slug, Name string
	Managed        bool
	CreatedAt      time.Time
	// Role is the asking admin's role in it.
	Role string
}

const orgColumns = `o.id::text, o.slug, o.name, o.managed, o.created_at, m.role`

func scanOrg(row pgx.Row) (Organization, error) {
	var o Organization
	err := row.Scan(&o.ID, &o.Slug, &o.Name, &o.Managed, &o.CreatedAt, &o.Role)
	if errors.Is(err, pgx.ErrNoRows) {
		return o, ErrNotFound
	}
	return o, err
}

// Page is a keyset page: the items after the cursor After, at most Limit.
type Page struct {
	After string
	Limit int
}

// Organizations lists the organizations an admin is a member of, by slug.
func (s *Store) Organizations(ctx context.Context, adminID string, p Page) ([]Organization, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT `+orgColumns+` FROM organizations o JOIN memberships m ON m.organization_id = o.id
		WHERE m.admin_id = $1 AND o.slug > $2 ORDER BY o.slug LIMIT $3`, adminID, p.After, p.Limit)
	if err != nil {
		return nil, fmt.Errorf("organizations: %w", err)
	}
	return collect(rows, scanOrg, "organizations")
}

// collect scans every row with scan.
func collect[T any](rows pgx.Rows, scan func(pgx.Row) (T, error), what string) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// MemberOrganization returns an organization by slug with the admin's role
// in it; ErrNotFound when it does not exist or the admin is not a member.
func (s *Store) MemberOrganization(ctx context.Context, adminID, slug string) (Organization, error) {
	o, err := scanOrg(s.pool.QueryRow(ctx, `
		SELECT `+orgColumns+` FROM organizations o JOIN memberships m ON m.organization_id = o.id
		WHERE m.admin_id = $1 AND o.slug = $2`, adminID, slug))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return o, fmt.Errorf("organization %s: %w", slug, err)
	}
	return o, err
}

// OrganizationBySlug returns an organization whatever the caller (for the
// CLI); Role is "".
func (s *Store) OrganizationBySlug(ctx context.Context, slug string) (Organization, error) {
	o, err := scanOrg(s.pool.QueryRow(ctx, `
		SELECT o.id::text, o.slug, o.name, o.managed, o.created_at, '' FROM organizations o WHERE o.slug = $1`, slug))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return o, fmt.Errorf("organization %s: %w", slug, err)
	}
	return o, err
}

// CreateOrganization creates an organization with ownerID as its owner (""
// for none, from the CLI before any admin exists).
func (s *Store) CreateOrganization(ctx context.Context, who Change, ownerID, slug, name string) (Organization, error) {
	var o Organization
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `
			INSERT INTO organizations (slug, name) VALUES ($1, $2)
			RETURNING id::text, slug, name, managed, created_at`, slug, name).
			Scan(&o.ID, &o.Slug, &o.Name, &o.Managed, &o.CreatedAt)
		if isUniqueViolation(err, "organizations_slug_key") {
			return conflict("organization id %q is taken", slug)
		}
		if err != nil {
			return err
		}
		if ownerID != "" {
			if _, err := tx.Exec(ctx, `INSERT INTO memberships (organization_id, admin_id, role) VALUES ($1, $2, 'owner')`,
				o.ID, ownerID); err != nil {
				return err
			}
			o.Role = auth.RoleOwner
		}
		return s.writeAudit(ctx, tx, who, audit{orgID: o.ID, action: "organization.create", targetType: "organization",
			targetID: slug, after: map[string]any{"id": slug, "name": name}})
	})
	if err != nil {
		return o, fmt.Errorf("create organization: %w", err)
	}
	return o, nil
}

// RenameOrganization changes an organization's name.
func (s *Store) RenameOrganization(ctx context.Context, who Change, org Organization, name string) (Organization, error) {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE organizations SET name = $2, updated_at = now() WHERE id = $1`, org.ID, name); err != nil {
			return err
		}
		return s.writeAudit(ctx, tx, who, audit{orgID: org.ID, action: "organization.update", targetType: "organization",
			targetID: org.Slug, before: map[string]any{"name": org.Name}, after: map[string]any{"name": name}})
	})
	if err != nil {
		return org, fmt.Errorf("rename organization: %w", err)
	}
	org.Name = name
	return org, nil
}

// Member is an admin's membership in an organization.
type Member struct {
	AdminID, Email, Name, Role string
	JoinedAt                   time.Time
}

func scanMember(row pgx.Row) (Member, error) {
	var m Member
	err := row.Scan(&m.AdminID, &m.Email, &m.Name, &m.Role, &m.JoinedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return m, ErrNotFound
	}
	return m, err
}

const memberSelect = `
	SELECT a.id::text, a.email, a.name, m.role, m.created_at
	FROM memberships m JOIN admins a ON a.id = m.admin_id
	WHERE m.organization_id = $1`

// Members lists an organization's members by email (the cursor is the last
// lower-cased email).
func (s *Store) Members(ctx context.Context, orgID string, p Page) ([]Member, error) {
	rows, err := s.pool.Query(ctx, memberSelect+` AND lower(a.email) > $2 ORDER BY lower(a.email) LIMIT $3`,
		orgID, p.After, p.Limit)
	if err != nil {
		return nil, fmt.Errorf("members: %w", err)
	}
	return collect(rows, scanMember, "members")
}

// AddMember makes an admin a member of an organization with a role (the CLI's
// way; the API's is an invitation). An existing member's role is replaced.
func (s *Store) AddMember(ctx context.Context, who Change, org Organization, adminID, role string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `
			INSERT INTO memberships (organization_id, admin_id, role) VALUES ($1, $2, $3)
			ON CONFLICT (organization_id, admin_id) DO UPDATE SET role = excluded.role`, org.ID, adminID, role); err != nil {
			return fmt.Errorf("add member: %w", err)
		}
		var email string
		if err := tx.QueryRow(ctx, `SELECT email FROM admins WHERE id = $1`, adminID).Scan(&email); err != nil {
			return fmt.Errorf("add member: %w", err)
		}
		return s.writeAudit(ctx, tx, who, audit{orgID: org.ID, action: "member.add", targetType: "admin",
			targetID: email, after: map[string]any{"role": role}})
	})
}

// lockMember locks and returns a membership, and the count of owners.
func lockMember(ctx context.Context, tx pgx.Tx, orgID, adminID string) (Member, int, error) {
	// Lock every owner row too, so that two demotions cannot both pass the
	// "one owner remains" check.
	var owners int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM memberships WHERE organization_id = $1 AND role = 'owner' FOR UPDATE) o`,
		orgID).Scan(&owners); err != nil {
		return Member{}, 0, err
	}
	m, err := scanMember(tx.QueryRow(ctx, memberSelect+` AND m.admin_id = $2 FOR UPDATE OF m`, orgID, adminID))
	return m, owners, err
}

// SetMemberRole changes a member's role. Demoting the last owner is a
// ConflictError.
func (s *Store) SetMemberRole(ctx context.Context, who Change, org Organization, adminID, role string) (Member, error) {
	var m Member
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var owners int
		var err error
		m, owners, err = lockMember(ctx, tx, org.ID, adminID)
		if err != nil {
			return err
		}
		if m.Role == auth.RoleOwner && role != auth.RoleOwner && owners == 1 {
			return conflict("%s is the organization's last owner; make someone else owner first", m.Email)
		}
		if _, err := tx.Exec(ctx, `UPDATE memberships SET role = $3 WHERE organization_id = $1 AND admin_id = $2`,
			org.ID, adminID, role); err != nil {
			return err
		}
		before := m.Role
		m.Role = role
		return s.writeAudit(ctx, tx, who, audit{orgID: org.ID, action: "member.update", targetType: "admin",
			targetID: m.Email, before: map[string]any{"role": before}, after: map[string]any{"role": role}})
	})
	if err != nil {
		return m, fmt.Errorf("set member role: %w", err)
	}
	return m, nil
}

// Member returns one membership of an organization.
func (s *Store) Member(ctx context.Context, orgID, adminID string) (Member, error) {
	m, err := scanMember(s.pool.QueryRow(ctx, memberSelect+` AND m.admin_id = $2`, orgID, adminID))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return m, fmt.Errorf("member: %w", err)
	}
	return m, err
}

// RemoveMember ends a membership. Removing the last owner is a
// ConflictError.
func (s *Store) RemoveMember(ctx context.Context, who Change, org Organization, adminID string) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		m, owners, err := lockMember(ctx, tx, org.ID, adminID)
		if err != nil {
			return err
		}
		if m.Role == auth.RoleOwner && owners == 1 {
			return conflict("%s is the organization's last owner; make someone else owner first", m.Email)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM memberships WHERE organization_id = $1 AND admin_id = $2`, org.ID, adminID); err != nil {
			return err
		}
		return s.writeAudit(ctx, tx, who, audit{orgID: org.ID, action: "member.remove", targetType: "admin",
			targetID: m.Email, before: map[string]any{"role": m.Role}})
	})
	if err != nil {
		return fmt.Errorf("remove member: %w", err)
	}
	return nil
}

// Invitation asks someone to join an organization.
type Invitation struct {
	ID, Email, Role string
	// Status is pending, accepted, revoked or expired.
	Status    string
	InvitedBy string // the inviter's email, "" when unknown
	CreatedAt time.Time
	ExpiresAt time.Time
}

const invitationSelect = `
	SELECT i.id::text, i.email, i.role,
	       CASE WHEN i.accepted_at IS NOT NULL THEN 'accepted'
	            WHEN i.revoked_at IS NOT NULL THEN 'revoked'
	            WHEN i.expires_at <= now() THEN 'expired'
	            ELSE 'pending' END,
	       coalesce(a.email, ''), i.created_at, i.expires_at
	FROM invitations i LEFT JOIN admins a ON a.id = i.invited_by
	WHERE i.organization_id = $1`

func scanInvitation(row pgx.Row) (Invitation, error) {
	var i Invitation
	err := row.Scan(&i.ID, &i.Email, &i.Role, &i.Status, &i.InvitedBy, &i.CreatedAt, &i.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return i, ErrNotFound
	}
	return i, err
}

// Invitations lists an organization's invitations by id.
func (s *Store) Invitations(ctx context.Context, orgID string, p Page) ([]Invitation, error) {
	rows, err := s.pool.Query(ctx, invitationSelect+` AND i.id::text > $2 ORDER BY i.id::text LIMIT $3`, orgID, p.After, p.Limit)
	if err != nil {
		return nil, fmt.Errorf("invitations: %w", err)
	}
	return collect(rows, scanInvitation, "invitations")
}

// CreateInvitation invites email to an organization with a role. An open
// invitation for the same address is a ConflictError; an expired one is
// replaced. So is inviting someone who is already a member.
func (s *Store) CreateInvitation(ctx context.Context, who Change, org Organization, inviterID, email, role, tokenHash string, ttl time.Duration) (Invitation, error) {
	var inv Invitation
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var member bool
		if err := tx.QueryRow(ctx, `
			SELECT EXISTS (SELECT 1 FROM memberships m JOIN admins a ON a.id = m.admin_id
			               WHERE m.organization_id = $1 AND lower(a.email) = lower($2))`, org.ID, email).Scan(&member); err != nil {
			return err
		}
		if member {
			return conflict("%s is already a member", email)
		}
		if _, err := tx.Exec(ctx, `
			UPDATE invitations SET revoked_at = now()
			WHERE organization_id = $1 AND lower(email) = lower($2) AND accepted_at IS NULL AND revoked_at IS NULL
			  AND expires_at <= now()`, org.ID, email); err != nil {
			return err
		}
		var id string
		err := tx.QueryRow(ctx, `
			INSERT INTO invitations (organization_id, email, role, token_hash, invited_by, expires_at)
			VALUES ($1, $2, $3, $4, nullif($5, '')::uuid, now() + $6::interval) RETURNING id::text`,
			org.ID, email, role, tokenHash, inviterID, ttl).Scan(&id)
		if isUniqueViolation(err, "invitations_open_key") {
			return conflict("%s already has an open invitation; revoke it to send another", email)
		}
		if err != nil {
			return err
		}
		inv, err = scanInvitation(tx.QueryRow(ctx, invitationSelect+` AND i.id = $2`, org.ID, id))
		if err != nil {
			return err
		}
		return s.writeAudit(ctx, tx, who, audit{orgID: org.ID, action: "invitation.create", targetType: "invitation",
			targetID: id, after: map[string]any{"email": email, "role": role}})
	})
	if err != nil {
		return inv, fmt.Errorf("create invitation: %w", err)
	}
	return inv, nil
}

// RevokeInvitation cancels an open invitation. One already accepted or
// revoked is a ConflictError.
func (s *Store) RevokeInvitation(ctx context.Context, who Change, org Organization, id string) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		inv, err := scanInvitation(tx.QueryRow(ctx, invitationSelect+` AND i.id = $2 FOR UPDATE OF i`, org.ID, id))
		if err != nil {
			return err
		}
		if inv.Status == "accepted" || inv.Status == "revoked" {
			return conflict("the invitation is already %s", inv.Status)
		}
		if _, err := tx.Exec(ctx, `UPDATE invitations SET revoked_at = now() WHERE organization_id = $1 AND id = $2`, org.ID, id); err != nil {
			return err
		}
		return s.writeAudit(ctx, tx, who, audit{orgID: org.ID, action: "invitation.revoke", targetType: "invitation",
			targetID: id, before: map[string]any{"email": inv.Email, "role": inv.Role}})
	})
	if err != nil {
		return fmt.Errorf("revoke invitation: %w", err)
	}
	return nil
}

// NewAdmin is the account an invitation creates for someone new.
type NewAdmin struct{ Name, PasswordHash string }

// ErrWrongAdmin is returned by AcceptInvitation when the invited address
// belongs to an admin other than the caller (or the caller is anonymous).
var ErrWrongAdmin = errors.New("the invitation is for another admin")

// ErrNeedsAccount is returned by AcceptInvitation when the invited address has
// no admin yet and no NewAdmin was given.
var ErrNeedsAccount = errors.New("the invitation needs a name and password for a new account")

// AcceptInvitation redeems an open invitation's token. When the invited
// email already has an admin, callerID must be that admin; otherwise newAdmin
// creates one. It returns the admin and the organization joined (with the
// role); who's Actor becomes that admin. An unknown, expired, used or revoked token is ErrNotFound.
func (s *Store) AcceptInvitation(ctx context.Context, who Change, tokenHash, callerID string, newAdmin *NewAdmin) (Admin, Organization, error) {
	var a Admin
	var o Organization
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var orgID, invID, email, role string
		err := tx.QueryRow(ctx, `
			SELECT organization_id::text, id::text, email, role FROM invitations
			WHERE token_hash = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > now()
			FOR UPDATE`, tokenHash).Scan(&orgID, &invID, &email, &role)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		a, err = scanAdmin(tx.QueryRow(ctx, `SELECT `+adminColumns+` FROM admins a WHERE lower(a.email) = lower($1)`, email))
		switch {
		case err == nil:
			if a.ID != callerID {
				return ErrWrongAdmin
			}
		case errors.Is(err, ErrNotFound):
			if newAdmin == nil {
				return ErrNeedsAccount
			}
			if a, err = createAdmin(ctx, tx, email, newAdmin.Name, newAdmin.PasswordHash); err != nil {
				return err
			}
		default:
			return err
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO memberships (organization_id, admin_id, role) VALUES ($1, $2, $3)
			ON CONFLICT (organization_id, admin_id) DO NOTHING`, orgID, a.ID, role); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE invitations SET accepted_at = now() WHERE organization_id = $1 AND id = $2`, orgID, invID); err != nil {
			return err
		}
		o, err = scanOrg(tx.QueryRow(ctx, `
			SELECT `+orgColumns+` FROM organizations o JOIN memberships m ON m.organization_id = o.id
			WHERE m.admin_id = $1 AND o.id = $2`, a.ID, orgID))
		if err != nil {
			return err
		}
		who.Actor = Actor{Type: "admin", ID: a.ID, Label: a.Email}
		return s.writeAudit(ctx, tx, who, audit{orgID: orgID, action: "invitation.accept", targetType: "invitation",
			targetID: invID, after: map[string]any{"email": a.Email, "role": o.Role}})
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrWrongAdmin) || errors.Is(err, ErrNeedsAccount) {
			return a, o, err
		}
		return a, o, fmt.Errorf("accept invitation: %w", err)
	}
	return a, o, nil
}
