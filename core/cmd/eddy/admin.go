package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/eddy-cdp/eddy/core/api"
	"github.com/eddy-cdp/eddy/core/auth"
	"github.com/eddy-cdp/eddy/core/server"
	"github.com/eddy-cdp/eddy/core/store"
)

func adminCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "admin", Short: "Create admins (the people who use the console and the management API)"}
	cmd.AddCommand(adminCreateCmd(), adminBootstrapCmd())
	return cmd
}

// Environment variables that give an admin's credentials.
const (
	envAdminEmail    = "EDDY_ADMIN_EMAIL"
	envAdminPassword = "EDDY_ADMIN_PASSWORD"
)

func adminCreateCmd() *cobra.Command {
	var email, name, org, role string
	var passwordStdin, asJSON bool
	cmd := &cobra.Command{
		Use:   "create --email EMAIL --name NAME [--password-stdin] [--org ORG --role ROLE]",
		Short: "Create an admin",
		Long: `Create an admin. The password is read from the first line of standard
input with --password-stdin, else from EDDY_ADMIN_PASSWORD; without either,
a random one is generated and printed once. With --org and --role the admin
also joins an existing organization.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var errs api.FieldErrors
			errs.Email("--email", email)
			errs.Name("--name", name)
			switch {
			case org != "":
				errs.Slug("--org", org)
				errs.OneOf("--role", role, auth.Roles)
			case role != "":
				errs.Add("--role", "needs --org, the organization to add the admin to")
			}
			if err := errs.Err(); err != nil {
				return err
			}
			password, generated, err := adminPassword(cmd.InOrStdin(), passwordStdin)
			if err != nil {
				return err
			}
			return withStore(cmd, func(ctx context.Context, m *manager) error {
				var o store.Organization
				if org != "" {
					if o, err = m.store.OrganizationBySlug(ctx, org); err != nil {
						return notFound(err, "--org", "organization", org)
					}
				}
				hash, err := auth.HashPassword(password)
				if err != nil {
					return err
				}
				a, err := m.store.CreateAdmin(ctx, email, name, hash)
				if err != nil {
					return err
				}
				var memberships []membershipJSON
				if org != "" {
					if err := m.store.AddMember(ctx, m.who, o, a.ID, role); err != nil {
						return fmt.Errorf("admin %s was created, but not added to organization %s: %w", a.Email, org, storeError(err))
					}
					memberships = append(memberships, membershipJSON{ID: o.Slug, Name: o.Name, Role: role})
				}
				if asJSON {
					v := createdAdminJSON{AdminJSON: api.AdminView(a), Organizations: memberships}
					if generated {
						v.Password = password
					}
					return printJSON(m.out, v)
				}
				fmt.Fprintf(m.out, "created admin %s (id %s)\n", a.Email, a.ID)
				if generated {
					fmt.Fprintf(m.out, "password: %s\n", password)
					fmt.Fprintln(m.out, "  (generated; it is shown only now)")
				}
				for _, ms := range memberships {
					fmt.Fprintf(m.out, "member of organization %s as %s\n", ms.ID, ms.Role)
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&email, "email", "", "the admin's email address, with which they log in")
	f.StringVar(&name, "name", "", "the admin's name, for display")
	f.BoolVar(&passwordStdin, "password-stdin", false, "read the password from the first line of standard input")
	f.StringVar(&org, "org", "", "id of an existing organization to add the admin to")
	f.StringVar(&role, "role", "", "the admin's role in --org: owner, admin, member or viewer")
	f.BoolVar(&asJSON, "json", false, "print the created admin as one JSON object")
	return cmd
}

// createdAdminJSON is an admin as the API shows it, with the generated
// password (only when generated) and the organization joined.
type createdAdminJSON struct {
	api.AdminJSON
	Password      string           `json:"password,omitempty"`
	Organizations []membershipJSON `json:"organizations,omitempty"`
}

type membershipJSON struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Role string `json:"role"`
}

// adminPassword returns the new admin's password: the first line of stdin
// with --password-stdin, else EDDY_ADMIN_PASSWORD, else a generated one
// (generated is then true). A password given must pass the password policy.
func adminPassword(stdin io.Reader, fromStdin bool) (password string, generated bool, err error) {
	from := "--password-stdin"
	switch {
	case fromStdin:
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", false, fmt.Errorf("--password-stdin: read standard input: %w", err)
		}
		password = strings.TrimRight(line, "\r\n")
		if password == "" {
			return "", false, errors.New("--password-stdin: standard input holds no password (give it on the first line)")
		}
	case os.Getenv(envAdminPassword) != "":
		from, password = envAdminPassword, os.Getenv(envAdminPassword)
	default:
		return generatePassword(), true, nil
	}
	if err := auth.CheckPasswordPolicy(password); err != nil {
		return "", false, fmt.Errorf("%s: the password %v", from, err)
	}
	return password, false, nil
}

// passwordAlphabet has no characters easily mistaken for others (0/o, 1/l/i).
const passwordAlphabet = "abcdefghjkmnpqrstuvwxyz23456789"

// generatePassword returns a random password that is easy to read and
// type: four groups of five characters (about 99 bits), such as
// "k7mxq-3vtrb-9hw2e-pzc4n".
func generatePassword() string {
	const groups, size = 4, 5
	var b strings.Builder
	buf := make([]byte, 1)
	for i := 0; i < groups*size; {
		// crypto/rand.Read never fails on supported platforms (Go 1.24+).
		_, _ = rand.Read(buf)
		// Reject bytes past the largest multiple of the alphabet's size, so
		// that every character is equally likely.
		if int(buf[0]) >= 256/len(passwordAlphabet)*len(passwordAlphabet) {
			continue
		}
		if i > 0 && i%size == 0 {
			b.WriteByte('-')
		}
		b.WriteByte(passwordAlphabet[int(buf[0])%len(passwordAlphabet)])
		i++
	}
	return b.String()
}

// Credentials bootstrap generates when the environment gives none.
const bootstrapEmail = "admin@eddy.local"

func adminBootstrapCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "bootstrap",
		Short: "Create the first admin, owner of every organization, if there is no admin yet",
		Long: `Create the first admin when the database has none, so that someone can log
in to the console. It applies plugins.yaml's workspaces first (as serve
does), then makes the admin owner of every organization.

The email comes from EDDY_ADMIN_EMAIL (default admin@eddy.local) and the
password from EDDY_ADMIN_PASSWORD; without it a password is generated and
printed once. With EDDY_ENV=production both must be set, and the password
must pass the password policy. When an admin exists it does nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStore(cmd, func(ctx context.Context, m *manager) error {
				n, err := m.store.CountAdmins(ctx)
				if err != nil {
					return err
				}
				if n > 0 {
					return printNothingToDo(m, asJSON)
				}
				return bootstrap(ctx, m, asJSON)
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the outcome as one JSON object")
	return cmd
}

func printNothingToDo(m *manager, asJSON bool) error {
	if asJSON {
		return printJSON(m.out, bootstrapJSON{Message: "admins exist; nothing to do"})
	}
	fmt.Fprintln(m.out, "admins exist; nothing to do")
	return nil
}

// bootstrapJSON is bootstrap's outcome with --json.
type bootstrapJSON struct {
	Created bool           `json:"created"`
	Message string         `json:"message,omitempty"`
	Admin   *api.AdminJSON `json:"admin,omitempty"`
	// Password is set only when it was generated.
	Password      string   `json:"password,omitempty"`
	Organizations []string `json:"organizations,omitempty"`
	ConsoleURL    string   `json:"console_url,omitempty"`
}

func bootstrap(ctx context.Context, m *manager, asJSON bool) error {
	email, password, generated, err := bootstrapCredentials(m.cfg.Env.Production, m.warn)
	if err != nil {
		return err
	}
	// What serve does when it starts, so that plugins.yaml's organizations
	// exist and the admin owns them.
	if err := m.store.SyncWorkspaces(ctx, server.WorkspaceSpecs(m.cfg)); err != nil {
		return fmt.Errorf("apply workspaces from %s: %w", m.cfg.Path, err)
	}
	hash, err := auth.HashPassword(password)
	if err != nil {
		return err
	}
	a, slugs, created, err := m.store.BootstrapAdmin(ctx, m.who, email, "Admin", hash)
	if err != nil {
		return err
	}
	if !created {
		// Another bootstrap won the race.
		return printNothingToDo(m, asJSON)
	}
	slices.Sort(slugs)
	console := consoleURL(m.cfg.Env.HTTPAddr)
	if asJSON {
		v := bootstrapJSON{Created: true, Organizations: slugs, ConsoleURL: console}
		av := api.AdminView(a)
		v.Admin = &av
		if generated {
			v.Password = password
		}
		return printJSON(m.out, v)
	}
	fmt.Fprintf(m.out, "Created the first admin, owner of organization(s) %s.\n", strings.Join(slugs, ", "))
	fmt.Fprintf(m.out, "Log in to the console at %s with\n", console)
	fmt.Fprintf(m.out, "  email:    %s\n", a.Email)
	if generated {
		fmt.Fprintf(m.out, "  password: %s\n", password)
		fmt.Fprintln(m.out, "The password was generated and is shown only now: keep it somewhere safe.")
	} else {
		fmt.Fprintf(m.out, "  password: the value of %s\n", envAdminPassword)
	}
	return nil
}

// bootstrapCredentials returns the first admin's email and password from
// the environment, generating what is missing (generated tells whether the
// password was). Production refuses to generate, and refuses a password that
// fails the policy; elsewhere such a password is only warned about.
func bootstrapCredentials(production bool, warn io.Writer) (email, password string, generated bool, err error) {
	email, password = os.Getenv(envAdminEmail), os.Getenv(envAdminPassword)
	if production && (email == "" || password == "") {
		return "", "", false, fmt.Errorf("EDDY_ENV=production: set %s and %s to create the first admin; "+
			"bootstrap does not generate credentials in production", envAdminEmail, envAdminPassword)
	}
	if email == "" {
		email = bootstrapEmail
	}
	var errs api.FieldErrors
	errs.Email(envAdminEmail, email)
	if err := errs.Err(); err != nil {
		return "", "", false, err
	}
	if password == "" {
		return email, generatePassword(), true, nil
	}
	if err := auth.CheckPasswordPolicy(password); err != nil {
		if production {
			return "", "", false, fmt.Errorf("%s: the password %v; EDDY_ENV=production requires a strong password", envAdminPassword, err)
		}
		fmt.Fprintf(warn, "eddy: warning: %s: the password %v; accepted outside production only\n", envAdminPassword, err)
	}
	return email, password, false, nil
}

// consoleURL is where the console answers, given EDDY_HTTP_ADDR.
func consoleURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr + "/"
	}
	switch host {
	case "", "0.0.0.0", "::":
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}
