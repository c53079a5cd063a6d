package main

// What the management commands (admin, org, workspace, source, apikey)
// share: the database, the audit-log actor, checks of flags, and the JSON
// shapes of what they create.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"net/url"
	"os"
	"os/user"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/spf13/cobra"
	"golang.org/x/text/currency"

	"github.com/eddy-cdp/eddy/core/config"
	"github.com/eddy-cdp/eddy/core/store"
)

// manager is what a management command works with.
type manager struct {
	cfg   *config.Config
	store *store.Store
	// who is the audit log's actor: the CLI, with the command and the user.
	who  store.Change
	out  io.Writer
	warn io.Writer
}

// withStore loads the configuration, opens the database (it does not
// migrate) and runs f with a context cancelled by SIGINT or SIGTERM. Store
// errors come back as messages for people.
func withStore(cmd *cobra.Command, f func(ctx context.Context, m *manager) error) error {
	cfg, _, err := loadConfig()
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	st, err := openStore(ctx, cfg.Env.DatabaseURL)
	if err != nil {
		return err
	}
	defer st.Close()
	m := &manager{cfg: cfg, store: st, who: cliChange(cmd), out: cmd.OutOrStdout(), warn: cmd.ErrOrStderr()}
	return storeError(f(ctx, m))
}

// openStore opens the database and checks that it answers and holds Eddy's
// tables, so that a database never migrated gets a clear message.
func openStore(ctx context.Context, databaseURL string) (*store.Store, error) {
	where := redactURL(databaseURL)
	st, err := store.Open(ctx, databaseURL)
	if err != nil {
		return nil, fmt.Errorf("EDDY_DATABASE_URL %s: %w", where, err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var migrated bool
	err = st.Pool().QueryRow(pctx, `SELECT to_regclass('admins') IS NOT NULL`).Scan(&migrated)
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "3D000": // invalid_catalog_name
		st.Close()
		return nil, fmt.Errorf("the database at %s does not exist: run `eddy migrate` first (it creates it)", where)
	case err != nil:
		st.Close()
		return nil, fmt.Errorf("cannot reach the database at %s: %w", where, err)
	case !migrated:
		st.Close()
		return nil, fmt.Errorf("the database at %s lacks Eddy's tables: run `eddy migrate` first", where)
	}
	return st, nil
}

// storeError turns a store error into a message for the person at the
// terminal.
func storeError(err error) error {
	var conflict *store.ConflictError
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &conflict):
		return errors.New(conflict.Msg)
	case errors.As(err, &pgErr) && pgErr.Code == "42P01": // undefined_table
		return fmt.Errorf("%w (run `eddy migrate` to bring the database up to date)", err)
	}
	return err
}

// redactURL hides a URL's password.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// cliChange is the audit-log origin of a change made by cmd: "eddy source
// create (ada@laptop)", with the user and host as far as they are known.
func cliChange(cmd *cobra.Command) store.Change {
	label := cmd.CommandPath()
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	host, _ := os.Hostname()
	switch {
	case name != "" && host != "":
		label += " (" + name + "@" + host + ")"
	case name != "":
		label += " (" + name + ")"
	case host != "":
		label += " (on " + host + ")"
	}
	return store.Change{Actor: store.Actor{Type: "cli", Label: label}}
}

// flagErrors collects what is wrong with a command's flags, each naming its
// flag (or environment variable).
type flagErrors []string

func (e *flagErrors) add(flag, format string, args ...any) {
	*e = append(*e, flag+": "+fmt.Sprintf(format, args...))
}

func (e flagErrors) err() error {
	if len(e) == 0 {
		return nil
	}
	return errors.New(strings.Join(e, "; "))
}

// The checks below are those of the REST API (core/api/request.go and
// workspaces.go), so that the CLI accepts exactly what the API does.

const (
	maxNameLen  = 200
	maxEmailLen = 254
)

var slugPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

func (e *flagErrors) slug(flag, v string) {
	switch {
	case v == "":
		e.add(flag, "is required")
	case !slugPattern.MatchString(v):
		e.add(flag, "must be 1 to 63 lower-case letters, digits, '-' or '_', starting with a letter or digit (got %q)", v)
	}
}

func (e *flagErrors) name(flag, v string) {
	switch {
	case v == "":
		e.add(flag, "is required")
	case !utf8.ValidString(v):
		e.add(flag, "must be valid UTF-8")
	case utf8.RuneCountInString(v) > maxNameLen:
		e.add(flag, "must be at most %d characters", maxNameLen)
	case strings.IndexFunc(v, unicode.IsControl) >= 0:
		e.add(flag, "must not contain control characters")
	}
}

func (e *flagErrors) email(flag, v string) {
	if v == "" {
		e.add(flag, "is required")
		return
	}
	addr, err := mail.ParseAddress(v)
	if err != nil || addr.Address != v || len(v) > maxEmailLen {
		e.add(flag, "must be a plain email address such as ada@example.com (at most %d characters; got %q)", maxEmailLen, v)
	}
}

func (e *flagErrors) oneOf(flag, v string, allowed []string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	if v == "" {
		e.add(flag, "is required: one of %s", strings.Join(allowed, ", "))
		return
	}
	e.add(flag, "must be one of %s (got %q)", strings.Join(allowed, ", "), v)
}

// settings checks workspace settings as the API does (settingsPatch.apply).
func (e *flagErrors) settings(st store.Settings) {
	if _, err := time.LoadLocation(st.Timezone); err != nil || st.Timezone == "" || st.Timezone == "Local" || len(st.Timezone) > 64 {
		e.add("--timezone", "must be an IANA time zone such as Europe/Paris or UTC (got %q)", st.Timezone)
	}
	if u, err := currency.ParseISO(st.Currency); err != nil || u.String() != st.Currency {
		e.add("--currency", "must be an ISO 4217 currency code in capitals, such as EUR or USD (got %q)", st.Currency)
	}
	if n := st.SessionTimeoutMinutes; n < 1 || n > 1440 {
		e.add("--session-timeout-minutes", "must be from 1 to 1440 (got %d)", n)
	}
}

// notFound names what a flag pointed at when the store did not find it.
func notFound(err error, flag, what, id string) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%s: no %s %q", flag, what, id)
	}
	return err
}

// printJSON writes v as one JSON object on a line.
func printJSON(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}

// The JSON shapes below are the REST API's (core/api/views.go), so that
// scripts read the same fields from both.

type adminJSON struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

func adminView(a store.Admin) adminJSON {
	return adminJSON{ID: a.ID, Email: a.Email, Name: a.Name, CreatedAt: a.CreatedAt}
}

type orgJSON struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Managed   bool      `json:"managed"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
}

func orgView(o store.Organization) orgJSON {
	return orgJSON{ID: o.Slug, Name: o.Name, Managed: o.Managed, Role: o.Role, CreatedAt: o.CreatedAt}
}

type workspaceJSON struct {
	ID             string         `json:"id"`
	OrganizationID string         `json:"organization_id"`
	Name           string         `json:"name"`
	Managed        bool           `json:"managed"`
	Settings       store.Settings `json:"settings"`
	CreatedAt      time.Time      `json:"created_at"`
	UpdatedAt      time.Time      `json:"updated_at"`
}

func workspaceView(w store.Workspace) workspaceJSON {
	return workspaceJSON{ID: w.Slug, OrganizationID: w.OrgSlug, Name: w.Name, Managed: w.Managed, Settings: w.Settings,
		CreatedAt: w.CreatedAt, UpdatedAt: w.UpdatedAt}
}

type sourceJSON struct {
	ID             string     `json:"id"`
	WorkspaceID    string     `json:"workspace_id"`
	Name           string     `json:"name"`
	Managed        bool       `json:"managed"`
	WriteKeyPrefix string     `json:"write_key_prefix"`
	RevokedAt      *time.Time `json:"revoked_at"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	WriteKey       string     `json:"write_key,omitempty"`
}

func sourceView(w store.Workspace, s store.Source) sourceJSON {
	return sourceJSON{ID: s.Slug, WorkspaceID: w.Slug, Name: s.Name, Managed: s.Managed, WriteKeyPrefix: s.WriteKeyPrefix,
		RevokedAt: nullTime(s.RevokedAt), CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt}
}

type apiKeyJSON struct {
	ID          string     `json:"id"`
	WorkspaceID string     `json:"workspace_id"`
	Name        string     `json:"name"`
	Prefix      string     `json:"prefix"`
	Scopes      []string   `json:"scopes"`
	CreatedBy   string     `json:"created_by"`
	CreatedAt   time.Time  `json:"created_at"`
	LastUsedAt  *time.Time `json:"last_used_at"`
	RevokedAt   *time.Time `json:"revoked_at"`
	Key         string     `json:"key,omitempty"`
}

func apiKeyView(w store.Workspace, k store.APIKey) apiKeyJSON {
	return apiKeyJSON{ID: k.ID, WorkspaceID: w.Slug, Name: k.Name, Prefix: k.Prefix, Scopes: k.Scopes, CreatedBy: k.CreatedBy,
		CreatedAt: k.CreatedAt, LastUsedAt: nullTime(k.LastUsedAt), RevokedAt: nullTime(k.RevokedAt)}
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}
