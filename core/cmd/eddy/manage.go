package main

// What the management commands (admin, org, workspace, source, apikey)
// share: the database and the audit-log actor. They check their flags with
// the API's rules (api.FieldErrors) and print what they create in the API's
// JSON shapes, so that both accept and show exactly the same.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/spf13/cobra"

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

// flagName is the flag that sets a workspace setting, given its JSON name:
// session_timeout_minutes is --session-timeout-minutes.
func flagName(jsonName string) string { return "--" + strings.ReplaceAll(jsonName, "_", "-") }
