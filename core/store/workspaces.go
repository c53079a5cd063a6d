package store

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdp/eddy/core/auth"
	"github.com/eddy-cdp/eddy/core/consent"
	"github.com/eddy-cdp/eddy/core/session"
)

// WorkspaceSpec is a workspace as plugins.yaml declares it.
type WorkspaceSpec struct {
	// Slug identifies the workspace; Name is for display.
	Slug, Name string
	// Organization is the slug of the organization the workspace belongs to;
	// it is created (managed) when missing. "" means "default".
	Organization string
	// Sources are the workspace's sources.
	Sources []SourceSpec
	// Privacy, when set, replaces the workspace's privacy policy; nil
	// leaves it as it is (the default, or what the API set).
	Privacy *consent.Policy
}

// SourceSpec is a source as plugins.yaml declares it.
type SourceSpec struct {
	// Slug identifies the source within its workspace; Name is for display.
	Slug, Name string
	// WriteKey is the secret clients send; only its hash is stored.
	WriteKey string
}

// DefaultOrganization is the slug of the organization that plugins.yaml
// workspaces belong to unless they name another.
const DefaultOrganization = "default"

// SourceKey is a write key the collector accepts, and where it leads.
type SourceKey struct {
	// KeyHash is the write key's HashSecret.
	KeyHash string
	// WorkspaceID and SourceID are UUIDs.
	WorkspaceID, WorkspaceSlug, SourceID, SourceSlug string
}

// HashSecret returns the hex SHA-256 of a secret: the form in which write
// keys, API keys and tokens are stored and looked up. A fast hash is right for
// them (not for passwords): they are long and random, so no guessing helps.
func HashSecret(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// writeKeyPrefix returns the few leading characters of a write key kept for
// display: for a key Eddy issued, its prefix and four random characters;
// otherwise six, or fewer for a short key so that most of it stays secret.
func writeKeyPrefix(key string) string {
	if p := auth.DisplayPrefix(key); p != "" {
		return p
	}
	return key[:min(6, len(key)/4)]
}

// SyncWorkspaces makes the managed workspaces and sources match specs (the
// plugins.yaml view), in one transaction: it creates or updates each
// workspace and source and marks it managed, stores a changed write key's
// new hash (the old key stops working), revokes managed sources missing from
// specs and restores revoked ones that are back. It deletes nothing and
// leaves unmanaged rows alone; running it again with the same specs changes
// nothing.
func (s *Store) SyncWorkspaces(ctx context.Context, specs []WorkspaceSpec) error {
	if err := validateSpecs(specs); err != nil {
		return fmt.Errorf("sync workspaces: %w", err)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		return s.syncWorkspaces(ctx, tx, specs)
	})
	if err != nil {
		return fmt.Errorf("sync workspaces: %w", err)
	}
	return nil
}

func validateSpecs(specs []WorkspaceSpec) error {
	workspaces := make(map[string]bool)
	keys := make(map[string]string) // write key -> "workspace/source"
	for _, w := range specs {
		if w.Slug == "" {
			return errors.New("a workspace has no slug")
		}
		if workspaces[w.Slug] {
			return fmt.Errorf("workspace %s is declared twice", w.Slug)
		}
		workspaces[w.Slug] = true
		sources := make(map[string]bool)
		if w.Privacy != nil {
			if errs := w.Privacy.WithDefaults().Validate(); len(errs) > 0 {
				return fmt.Errorf("workspace %s: %w", w.Slug, errors.Join(fieldErrors(errs)...))
			}
		}
		for _, src := range w.Sources {
			if src.Slug == "" {
				return fmt.Errorf("a source of workspace %s has no slug", w.Slug)
			}
			if sources[src.Slug] {
				return fmt.Errorf("source %s/%s is declared twice", w.Slug, src.Slug)
			}
			sources[src.Slug] = true
			if src.WriteKey == "" {
				return fmt.Errorf("source %s/%s has no write key", w.Slug, src.Slug)
			}
			if other, ok := keys[src.WriteKey]; ok {
				return fmt.Errorf("sources %s and %s/%s have the same write key", other, w.Slug, src.Slug)
			}
			keys[src.WriteKey] = w.Slug + "/" + src.Slug
		}
	}
	return nil
}

func (s *Store) syncWorkspaces(ctx context.Context, tx pgx.Tx, specs []WorkspaceSpec) error {
	// Concurrent syncs (several processes starting together) take turns.
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(1701078137, 2)"); err != nil {
		return err
	}

	var wsSlugs, wsNames, wsOrgs []string
	var privSlugs []string
	var privacies [][]byte
	var srcWorkspaces, srcSlugs, srcNames, srcHashes, srcPrefixes []string
	owner := make(map[string]string) // key hash -> "workspace/source"
	for _, w := range specs {
		wsSlugs = append(wsSlugs, w.Slug)
		wsNames = append(wsNames, w.Name)
		wsOrgs = append(wsOrgs, cmp.Or(w.Organization, DefaultOrganization))
		if w.Privacy != nil {
			b, err := json.Marshal(w.Privacy.WithDefaults())
			if err != nil {
				return fmt.Errorf("encode privacy of workspace %s: %w", w.Slug, err)
			}
			privSlugs = append(privSlugs, w.Slug)
			privacies = append(privacies, b)
		}
		for _, src := range w.Sources {
			hash := HashSecret(src.WriteKey)
			srcWorkspaces = append(srcWorkspaces, w.Slug)
			srcSlugs = append(srcSlugs, src.Slug)
			srcNames = append(srcNames, src.Name)
			srcHashes = append(srcHashes, hash)
			srcPrefixes = append(srcPrefixes, writeKeyPrefix(src.WriteKey))
			owner[hash] = w.Slug + "/" + src.Slug
		}
	}

	_, err := tx.Exec(ctx, `
		INSERT INTO organizations (slug, name, managed)
		SELECT DISTINCT slug, initcap(slug), true FROM unnest($1::text[]) AS o(slug)
		ON CONFLICT (slug) DO NOTHING`, wsOrgs)
	if err != nil {
		return fmt.Errorf("create organizations: %w", err)
	}
	_, err = tx.Exec(ctx, `
		INSERT INTO workspaces (slug, name, managed, organization_id)
		SELECT w.slug, w.name, true, o.id
		FROM unnest($1::text[], $2::text[], $3::text[]) AS w(slug, name, org)
		JOIN organizations o ON o.slug = w.org
		ON CONFLICT (slug) DO UPDATE
		SET name = excluded.name, managed = true, organization_id = excluded.organization_id,
		    deleted_at = NULL, updated_at = now()
		WHERE (workspaces.name, workspaces.managed, workspaces.organization_id, workspaces.deleted_at)
		      IS DISTINCT FROM (excluded.name, true, excluded.organization_id, NULL::timestamptz)`,
		wsSlugs, wsNames, wsOrgs)
	if err != nil {
		return fmt.Errorf("upsert workspaces: %w", err)
	}

	if err := s.syncPrivacy(ctx, tx, privSlugs, privacies); err != nil {
		return err
	}

	// A key may pass from one declared source to another (the uniqueness of
	// hashes is checked at commit), but not to a source that keeps a key
	// stored for an undeclared or unmanaged source.
	rows, err := tx.Query(ctx, `
		SELECT w.slug || '/' || s.slug, s.write_key_hash
		FROM sources s JOIN workspaces w ON w.id = s.workspace_id
		WHERE s.write_key_hash = ANY($1::text[])`, srcHashes)
	if err != nil {
		return fmt.Errorf("check write keys: %w", err)
	}
	declared := make(map[string]bool, len(owner))
	for _, o := range owner {
		declared[o] = true
	}
	var holder, hash string
	_, err = pgx.ForEachRow(rows, []any{&holder, &hash}, func() error {
		if holder != owner[hash] && !declared[holder] {
			return fmt.Errorf("the write key of source %s is already used by source %s", owner[hash], holder)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("check write keys: %w", err)
	}

	_, err = tx.Exec(ctx, `
		INSERT INTO sources (workspace_id, slug, name, write_key_hash, write_key_prefix, managed)
		SELECT w.id, u.slug, u.name, u.hash, u.prefix, true
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
		     AS u(workspace_slug, slug, name, hash, prefix)
		JOIN workspaces w ON w.slug = u.workspace_slug
		ON CONFLICT (workspace_id, slug) DO UPDATE
		SET name = excluded.name, write_key_hash = excluded.write_key_hash,
		    write_key_prefix = excluded.write_key_prefix, managed = true,
		    revoked_at = NULL, updated_at = now()
		WHERE (sources.name, sources.write_key_hash, sources.write_key_prefix, sources.managed, sources.revoked_at)
		      IS DISTINCT FROM (excluded.name, excluded.write_key_hash, excluded.write_key_prefix, true, NULL::timestamptz)`,
		srcWorkspaces, srcSlugs, srcNames, srcHashes, srcPrefixes)
	if err != nil {
		return fmt.Errorf("upsert sources: %w", err)
	}

	_, err = tx.Exec(ctx, `
		UPDATE sources s SET revoked_at = now(), updated_at = now()
		FROM workspaces w
		WHERE w.id = s.workspace_id AND s.managed AND s.revoked_at IS NULL
		  AND NOT EXISTS (
		      SELECT 1 FROM unnest($1::text[], $2::text[]) AS k(workspace_slug, slug)
		      WHERE k.workspace_slug = w.slug AND k.slug = s.slug)`,
		srcWorkspaces, srcSlugs)
	if err != nil {
		return fmt.Errorf("revoke sources: %w", err)
	}
	return nil
}

// syncPrivacy stores the privacy policies plugins.yaml declares, and
// records in the audit log each change of allow_necessary_only, so that
// turning necessary-only processing on or off is visible wherever it was
// done.
func (s *Store) syncPrivacy(ctx context.Context, tx pgx.Tx, slugs []string, privacies [][]byte) error {
	if len(slugs) == 0 {
		return nil
	}
	// The previous policies first: the update below replaces them. The
	// caller holds the sync lock, so nothing changes them in between.
	rows, err := tx.Query(ctx, `
		SELECT w.slug, w.organization_id::text, w.privacy, p.privacy
		FROM workspaces w JOIN unnest($1::text[], $2::jsonb[]) AS p(slug, privacy) ON p.slug = w.slug
		WHERE w.privacy IS DISTINCT FROM p.privacy`, slugs, privacies)
	if err != nil {
		return fmt.Errorf("sync privacy: %w", err)
	}
	type changed struct {
		slug, orgID   string
		before, after []byte
	}
	var changes []changed
	var c changed
	_, err = pgx.ForEachRow(rows, []any{&c.slug, &c.orgID, &c.before, &c.after}, func() error {
		changes = append(changes, changed{c.slug, c.orgID, bytes.Clone(c.before), bytes.Clone(c.after)})
		return nil
	})
	if err != nil {
		return fmt.Errorf("sync privacy: %w", err)
	}
	if len(changes) == 0 {
		return nil
	}
	_, err = tx.Exec(ctx, `
		UPDATE workspaces w SET privacy = p.privacy, updated_at = now()
		FROM unnest($1::text[], $2::jsonb[]) AS p(slug, privacy)
		WHERE w.slug = p.slug AND w.privacy IS DISTINCT FROM p.privacy`, slugs, privacies)
	if err != nil {
		return fmt.Errorf("sync privacy: %w", err)
	}
	who := Change{Actor: Actor{Type: "system", Label: "plugins.yaml"}}
	for _, c := range changes {
		before, err := decodePrivacy(c.before)
		if err != nil {
			return err
		}
		after, err := decodePrivacy(c.after)
		if err != nil {
			return err
		}
		if err := s.writeNecessaryOnlyAudit(ctx, tx, who, c.orgID, c.slug, before, after); err != nil {
			return err
		}
	}
	return nil
}

// necessaryOnlyAction is the audit action of turning necessary-only
// processing on or off, recorded besides the settings change.
const necessaryOnlyAction = "workspace.privacy.necessary_only"

func (s *Store) writeNecessaryOnlyAudit(ctx context.Context, tx pgx.Tx, who Change, orgID, slug string, before, after consent.Policy) error {
	if before.AllowNecessaryOnly == after.AllowNecessaryOnly {
		return nil
	}
	return s.writeAudit(ctx, tx, who, audit{orgID: orgID, action: necessaryOnlyAction, targetType: "workspace",
		targetID: slug, workspace: slug,
		before: map[string]bool{"allow_necessary_only": before.AllowNecessaryOnly},
		after:  map[string]bool{"allow_necessary_only": after.AllowNecessaryOnly}})
}

// decodePrivacy reads a stored policy; NULL is the default policy.
func decodePrivacy(b []byte) (consent.Policy, error) {
	if b == nil {
		return consent.DefaultPolicy(), nil
	}
	var p consent.Policy
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("decode privacy policy: %w", err)
	}
	return p.WithDefaults(), nil
}

func fieldErrors(fes []consent.FieldError) []error {
	out := make([]error, len(fes))
	for i, fe := range fes {
		out[i] = fe
	}
	return out
}

// SourceKeys returns the write keys of all sources not revoked, ordered by
// workspace and source slug.
func (s *Store) SourceKeys(ctx context.Context) ([]SourceKey, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT s.write_key_hash, w.id::text, w.slug, s.id::text, s.slug
		FROM sources s JOIN workspaces w ON w.id = s.workspace_id
		WHERE s.revoked_at IS NULL AND w.deleted_at IS NULL
		ORDER BY w.slug, s.slug`)
	if err != nil {
		return nil, fmt.Errorf("source keys: %w", err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowToStructByPos[SourceKey])
	if err != nil {
		return nil, fmt.Errorf("source keys: %w", err)
	}
	return keys, nil
}

// Settings are a workspace's settings.
type Settings struct {
	// Timezone is an IANA time zone name, e.g. "Europe/Paris".
	Timezone string `json:"timezone"`
	// Currency is an ISO 4217 code, e.g. "EUR".
	Currency string `json:"currency"`
	// SessionTimeoutMinutes is the inactivity after which a visit ends.
	SessionTimeoutMinutes int `json:"session_timeout_minutes"`
	// OwnDomains are the workspace's sites: a referrer on one of them or a
	// subdomain is internal navigation, never a new visit.
	OwnDomains []string `json:"own_domains"`
	// IgnoredReferrers are third-party sites whose referrals continue the
	// visit (payment pages); session.DefaultRules' list until set.
	IgnoredReferrers []string `json:"ignored_referrers"`
	// Privacy is the workspace's consent policy and data minimisation;
	// consent.DefaultPolicy until set.
	Privacy consent.Policy `json:"privacy"`
}

// Equal reports whether two settings are the same.
func (s Settings) Equal(o Settings) bool {
	return s.Timezone == o.Timezone && s.Currency == o.Currency && s.SessionTimeoutMinutes == o.SessionTimeoutMinutes &&
		slices.Equal(s.OwnDomains, o.OwnDomains) && slices.Equal(s.IgnoredReferrers, o.IgnoredReferrers) &&
		s.Privacy.Equal(o.Privacy)
}

// DefaultSettings returns a new workspace's settings.
func DefaultSettings() Settings {
	return Settings{Timezone: "UTC", Currency: "USD", SessionTimeoutMinutes: 30,
		OwnDomains: []string{}, IgnoredReferrers: session.DefaultRules().IgnoredReferrers,
		Privacy: consent.DefaultPolicy()}
}

// referrers returns the stored ignored referrers, the default list when
// never set.
func referrers(stored []string) []string {
	if stored == nil {
		return session.DefaultRules().IgnoredReferrers
	}
	return stored
}

// Workspace is a workspace: where a customer's data lives.
type Workspace struct {
	// ID and OrgID are UUIDs; Slug and OrgSlug the ids the API shows.
	ID, Slug, OrgID, OrgSlug, Name string
	Managed                        bool
	Settings                       Settings
	CreatedAt, UpdatedAt           time.Time
}

const workspaceSelect = `
	SELECT w.id::text, w.slug, o.id::text, o.slug, w.name, w.managed,
	       w.timezone, w.currency, w.session_timeout_minutes, w.own_domains, w.ignored_referrers,
	       w.privacy, w.created_at, w.updated_at
	FROM workspaces w JOIN organizations o ON o.id = w.organization_id
	WHERE w.deleted_at IS NULL`

func scanWorkspace(row pgx.Row) (Workspace, error) {
	var w Workspace
	var privacy []byte
	err := row.Scan(&w.ID, &w.Slug, &w.OrgID, &w.OrgSlug, &w.Name, &w.Managed,
		&w.Settings.Timezone, &w.Settings.Currency, &w.Settings.SessionTimeoutMinutes,
		&w.Settings.OwnDomains, &w.Settings.IgnoredReferrers, &privacy, &w.CreatedAt, &w.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return w, ErrNotFound
	}
	if err != nil {
		return w, err
	}
	if w.Settings.Privacy, err = decodePrivacy(privacy); err != nil {
		return w, fmt.Errorf("workspace %s: %w", w.Slug, err)
	}
	w.Settings.IgnoredReferrers = referrers(w.Settings.IgnoredReferrers)
	if w.Settings.OwnDomains == nil {
		w.Settings.OwnDomains = []string{}
	}
	return w, err
}

// WorkspaceBySlug returns a live (not deleted) workspace by its slug, whoever
// asks: callers check access.
func (s *Store) WorkspaceBySlug(ctx context.Context, slug string) (Workspace, error) {
	w, err := scanWorkspace(s.pool.QueryRow(ctx, workspaceSelect+` AND w.slug = $1`, slug))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return w, fmt.Errorf("workspace %s: %w", slug, err)
	}
	return w, err
}

// Workspaces lists an organization's live workspaces by slug.
func (s *Store) Workspaces(ctx context.Context, orgID string, p Page) ([]Workspace, error) {
	rows, err := s.pool.Query(ctx, workspaceSelect+` AND w.organization_id = $1 AND w.slug > $2 ORDER BY w.slug LIMIT $3`,
		orgID, p.After, p.Limit)
	if err != nil {
		return nil, fmt.Errorf("workspaces: %w", err)
	}
	return collect(rows, scanWorkspace, "workspaces")
}

// CreateWorkspace creates a workspace in an organization. A slug in use (even
// by a deleted workspace, whose data may remain) is a ConflictError.
func (s *Store) CreateWorkspace(ctx context.Context, who Change, org Organization, slug, name string, st Settings) (Workspace, error) {
	var w Workspace
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var id string
		err := tx.QueryRow(ctx, `
			INSERT INTO workspaces (slug, name, organization_id, timezone, currency, session_timeout_minutes,
			                        own_domains, ignored_referrers, privacy)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id::text`,
			slug, name, org.ID, st.Timezone, st.Currency, st.SessionTimeoutMinutes,
			nonNil(st.OwnDomains), referrers(st.IgnoredReferrers), privacyJSON(st.Privacy)).Scan(&id)
		if isUniqueViolation(err, "workspaces_slug_key") {
			return conflict("workspace id %q is taken", slug)
		}
		if err != nil {
			return err
		}
		if w, err = scanWorkspace(tx.QueryRow(ctx, workspaceSelect+` AND w.id = $1`, id)); err != nil {
			return err
		}
		if err := s.writeAudit(ctx, tx, who, audit{orgID: org.ID, action: "workspace.create", targetType: "workspace",
			targetID: slug, workspace: slug, after: workspaceAudit(w)}); err != nil {
			return err
		}
		return s.writeNecessaryOnlyAudit(ctx, tx, who, org.ID, slug, consent.DefaultPolicy(), w.Settings.Privacy)
	})
	if err != nil {
		return w, fmt.Errorf("create workspace: %w", err)
	}
	return w, nil
}

func workspaceAudit(w Workspace) map[string]any {
	return map[string]any{"name": w.Name, "settings": w.Settings}
}

// UpdateWorkspace replaces a workspace's name and settings (a change that
// changes nothing is not written or audited). A managed
// workspace's name comes from plugins.yaml: changing it is a ConflictError.
func (s *Store) UpdateWorkspace(ctx context.Context, who Change, w Workspace, name string, st Settings) (Workspace, error) {
	if w.Managed && name != w.Name {
		return w, conflict("workspace %s is declared in plugins.yaml; change its name there", w.Slug)
	}
	if name == w.Name && st.Equal(w.Settings) {
		return w, nil // nothing to change, nor to audit
	}
	var out Workspace
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		out, err = scanWorkspace(tx.QueryRow(ctx, `
			WITH u AS (
			    UPDATE workspaces SET name = $2, timezone = $3, currency = $4, session_timeout_minutes = $5,
			                          own_domains = $6, ignored_referrers = $7, privacy = $8, updated_at = now()
			    WHERE id = $1 AND deleted_at IS NULL
			    RETURNING *
			)
			SELECT u.id::text, u.slug, o.id::text, o.slug, u.name, u.managed,
			       u.timezone, u.currency, u.session_timeout_minutes, u.own_domains, u.ignored_referrers,
			       u.privacy, u.created_at, u.updated_at
			FROM u JOIN organizations o ON o.id = u.organization_id`,
			w.ID, name, st.Timezone, st.Currency, st.SessionTimeoutMinutes, nonNil(st.OwnDomains), referrers(st.IgnoredReferrers),
			privacyJSON(st.Privacy)))
		if err != nil {
			return err
		}
		if err := s.writeAudit(ctx, tx, who, audit{orgID: w.OrgID, action: "workspace.update", targetType: "workspace",
			targetID: w.Slug, workspace: w.Slug, before: workspaceAudit(w), after: workspaceAudit(out)}); err != nil {
			return err
		}
		return s.writeNecessaryOnlyAudit(ctx, tx, who, w.OrgID, w.Slug, w.Settings.Privacy, out.Settings.Privacy)
	})
	if err != nil {
		return w, fmt.Errorf("update workspace: %w", err)
	}
	return out, nil
}

// privacyJSON encodes a policy for storage, unset fields as their defaults.
func privacyJSON(p consent.Policy) []byte {
	b, err := json.Marshal(p.WithDefaults())
	if err != nil {
		// A policy is lists, maps and strings: it always encodes.
		panic(fmt.Sprintf("encode privacy policy: %v", err))
	}
	return b
}

func nonNil(ss []string) []string {
	if ss == nil {
		return []string{}
	}
	return ss
}

// DeleteWorkspace deletes a workspace: it disappears from the API and its
// write keys and API keys stop working at once. Its stored data stays until
// purged. A managed workspace is a ConflictError.
func (s *Store) DeleteWorkspace(ctx context.Context, who Change, w Workspace) error {
	if w.Managed {
		return conflict("workspace %s is declared in plugins.yaml; remove it there", w.Slug)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE workspaces SET deleted_at = now(), updated_at = now() WHERE id = $1 AND deleted_at IS NULL`, w.ID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrNotFound
		}
		return s.writeAudit(ctx, tx, who, audit{orgID: w.OrgID, action: "workspace.delete", targetType: "workspace",
			targetID: w.Slug, workspace: w.Slug, before: workspaceAudit(w)})
	})
	if err != nil {
		return fmt.Errorf("delete workspace: %w", err)
	}
	return nil
}
