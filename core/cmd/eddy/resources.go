package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/eddy-cdp/eddy/core/api"
	"github.com/eddy-cdp/eddy/core/auth"
	"github.com/eddy-cdp/eddy/core/collector"
	"github.com/eddy-cdp/eddy/core/config"
	"github.com/eddy-cdp/eddy/core/store"
)

func orgCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "org", Short: "Manage organizations (tenants: they hold admins and workspaces)"}
	var id, name, owner string
	var asJSON bool
	create := &cobra.Command{
		Use:   "create --id ID --name NAME [--owner EMAIL]",
		Short: "Create an organization",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var errs api.FieldErrors
			errs.Slug("--id", id)
			errs.Name("--name", name)
			if owner != "" {
				errs.Email("--owner", owner)
			}
			if err := errs.Err(); err != nil {
				return err
			}
			return withStore(cmd, func(ctx context.Context, m *manager) error {
				var ownerID string
				if owner != "" {
					a, _, err := m.store.AdminByEmail(ctx, owner)
					if errors.Is(err, store.ErrNotFound) {
						return fmt.Errorf("--owner: no admin with email %s (create one with `eddy admin create`)", owner)
					}
					if err != nil {
						return err
					}
					ownerID = a.ID
				}
				o, err := m.store.CreateOrganization(ctx, m.who, ownerID, id, name)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(m.out, api.OrganizationView(o))
				}
				fmt.Fprintf(m.out, "created organization %s (%s)\n", o.Slug, o.Name)
				if owner != "" {
					fmt.Fprintf(m.out, "owner: %s\n", owner)
				} else {
					fmt.Fprintln(m.out, "it has no members yet: add some with `eddy admin create --org "+o.Slug+" --role owner ...`")
				}
				return nil
			})
		},
	}
	f := create.Flags()
	f.StringVar(&id, "id", "", "the organization's id (lower-case letters, digits, '-', '_')")
	f.StringVar(&name, "name", "", "the organization's name, for display")
	f.StringVar(&owner, "owner", "", "email of an existing admin to make owner")
	f.BoolVar(&asJSON, "json", false, "print the created organization as one JSON object")
	cmd.AddCommand(create)
	return cmd
}

func workspaceCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "workspace", Short: "Manage workspaces (where a customer's data lives)"}
	var org, id, name string
	st := store.DefaultSettings()
	var asJSON bool
	create := &cobra.Command{
		Use:   "create --org ORG --id ID --name NAME [--timezone TZ] [--currency CUR] [--session-timeout-minutes N] [--own-domains D,...] [--ignored-referrers D,...]",
		Short: "Create a workspace in an organization",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var errs api.FieldErrors
			errs.Slug("--org", org)
			errs.Slug("--id", id)
			errs.Name("--name", name)
			for _, l := range [][]string{st.OwnDomains, st.IgnoredReferrers} {
				for i := range l {
					l[i] = strings.ToLower(l[i])
				}
			}
			errs.Settings(st, flagName)
			if err := errs.Err(); err != nil {
				return err
			}
			return withStore(cmd, func(ctx context.Context, m *manager) error {
				o, err := m.store.OrganizationBySlug(ctx, org)
				if err != nil {
					return notFound(err, "--org", "organization", org)
				}
				w, err := m.store.CreateWorkspace(ctx, m.who, o, id, name, st)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(m.out, api.WorkspaceView(w))
				}
				fmt.Fprintf(m.out, "created workspace %s (%s) in organization %s\n", w.Slug, w.Name, w.OrgSlug)
				fmt.Fprintf(m.out, "settings: timezone %s, currency %s, session timeout %d min\n",
					w.Settings.Timezone, w.Settings.Currency, w.Settings.SessionTimeoutMinutes)
				return nil
			})
		},
	}
	f := create.Flags()
	f.StringVar(&org, "org", "", "id of the organization the workspace belongs to")
	f.StringVar(&id, "id", "", "the workspace's id, unique in the installation (lower-case letters, digits, '-', '_')")
	f.StringVar(&name, "name", "", "the workspace's name, for display")
	f.StringVar(&st.Timezone, "timezone", st.Timezone, "IANA time zone, such as Europe/Paris")
	f.StringVar(&st.Currency, "currency", st.Currency, "ISO 4217 currency code, such as EUR")
	f.IntVar(&st.SessionTimeoutMinutes, "session-timeout-minutes", st.SessionTimeoutMinutes, "inactivity after which a visit ends (1..1440)")
	f.StringSliceVar(&st.OwnDomains, "own-domains", st.OwnDomains, "the workspace's sites, comma-separated: referrals from them (and their subdomains) never start a new visit")
	f.StringSliceVar(&st.IgnoredReferrers, "ignored-referrers", st.IgnoredReferrers, "third-party sites whose referrals continue a visit, such as payment pages, comma-separated")
	f.BoolVar(&asJSON, "json", false, "print the created workspace as one JSON object")
	cmd.AddCommand(create)
	return cmd
}

// workspace resolves the --workspace flag.
func (m *manager) workspace(ctx context.Context, slug string) (store.Workspace, error) {
	w, err := m.store.WorkspaceBySlug(ctx, slug)
	if err != nil {
		return w, notFound(err, "--workspace", "workspace", slug)
	}
	return w, nil
}

func sourceCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "source", Short: "Manage sources (what sends events, each with its write key)"}
	var workspace, id, name string
	var asJSON bool
	create := &cobra.Command{
		Use:   "create --workspace WS --id ID [--name NAME]",
		Short: "Create a source and print its write key (shown only once)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var errs api.FieldErrors
			errs.Slug("--workspace", workspace)
			errs.Slug("--id", id)
			if name == "" {
				name = id
			}
			errs.Name("--name", name)
			if err := errs.Err(); err != nil {
				return err
			}
			return withStore(cmd, func(ctx context.Context, m *manager) error {
				w, err := m.workspace(ctx, workspace)
				if err != nil {
					return err
				}
				key := auth.NewSecret(auth.WriteKeyPrefix)
				src, err := m.store.CreateSource(ctx, m.who, w, id, name, key)
				if err != nil {
					return err
				}
				announceKeysChanged(ctx, m.cfg, m.warn)
				if asJSON {
					v := api.SourceView(w, src)
					v.WriteKey = key
					return printJSON(m.out, v)
				}
				fmt.Fprintf(m.out, "created source %s (%s) in workspace %s\n", src.Slug, src.Name, w.Slug)
				fmt.Fprintf(m.out, "write key: %s\n", key)
				fmt.Fprintln(m.out, "  (shown only now; Eddy keeps only its hash)")
				return nil
			})
		},
	}
	f := create.Flags()
	f.StringVar(&workspace, "workspace", "", "id of the workspace the source sends to")
	f.StringVar(&id, "id", "", "the source's id in its workspace (lower-case letters, digits, '-', '_')")
	f.StringVar(&name, "name", "", "the source's name, for display (default: its id)")
	f.BoolVar(&asJSON, "json", false, "print the created source, with its write key, as one JSON object")
	cmd.AddCommand(create)
	return cmd
}

// announceKeysChanged tells running collectors to reload their write keys
// now. Without Redis it only warns: they reload on their own within their
// interval.
func announceKeysChanged(ctx context.Context, cfg *config.Config, warn io.Writer) {
	fail := func(err error) {
		fmt.Fprintf(warn, "eddy: warning: could not tell running collectors about the change (Redis: %v); "+
			"they pick it up on their next reload, within 10 seconds\n", err)
	}
	opts, err := redis.ParseURL(cfg.Env.RedisURL)
	if err != nil {
		fail(fmt.Errorf("EDDY_REDIS_URL: %w", err))
		return
	}
	// The warning below says what went wrong; go-redis need not say it too.
	redis.SetLogger(quietRedisLogger{})
	opts.DialTimeout = 2 * time.Second
	opts.DialerRetries = 1
	opts.MaxRetries = -1
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Publish(ctx, collector.KeysChangedChannel(cfg.Queue.Prefix), "1").Err(); err != nil {
		fail(err)
	}
}

// quietRedisLogger drops go-redis's internal messages.
type quietRedisLogger struct{}

func (quietRedisLogger) Printf(context.Context, string, ...any) {}

func apikeyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "apikey", Short: "Manage API keys (programs' access to one workspace)"}
	var workspace, name, scopeList string
	var asJSON bool
	create := &cobra.Command{
		Use:   "create --workspace WS --name NAME --scopes read,write,admin",
		Short: "Create an API key and print it (shown only once)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var errs api.FieldErrors
			errs.Slug("--workspace", workspace)
			errs.Name("--name", name)
			var requested []string
			for s := range strings.SplitSeq(scopeList, ",") {
				if s = strings.TrimSpace(s); s != "" {
					requested = append(requested, s)
				}
			}
			scopes, err := auth.ParseScopes(requested)
			if err != nil {
				errs.Add("--scopes", "%v", err)
			}
			if err := errs.Err(); err != nil {
				return err
			}
			return withStore(cmd, func(ctx context.Context, m *manager) error {
				w, err := m.workspace(ctx, workspace)
				if err != nil {
					return err
				}
				key := auth.NewSecret(auth.APIKeyPrefix)
				k, err := m.store.CreateAPIKey(ctx, m.who, w, name, scopes, store.HashSecret(key), auth.DisplayPrefix(key))
				if err != nil {
					return err
				}
				if asJSON {
					v := api.APIKeyView(w, k)
					v.Key = key
					return printJSON(m.out, v)
				}
				fmt.Fprintf(m.out, "created API key %q (id %s) for workspace %s with scopes %s\n",
					k.Name, k.ID, w.Slug, strings.Join(k.Scopes, ","))
				fmt.Fprintf(m.out, "key: %s\n", key)
				fmt.Fprintln(m.out, "  (shown only now; Eddy keeps only its hash)")
				return nil
			})
		},
	}
	f := create.Flags()
	f.StringVar(&workspace, "workspace", "", "id of the workspace the key acts on")
	f.StringVar(&name, "name", "", "the key's name, for display")
	f.StringVar(&scopeList, "scopes", "", "comma-separated scopes: read, write, admin")
	f.BoolVar(&asJSON, "json", false, "print the created key, with the secret, as one JSON object")
	cmd.AddCommand(create)
	return cmd
}
