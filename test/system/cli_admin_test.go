package system

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdp/eddy/core/auth"
	"github.com/eddy-cdp/eddy/core/store"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

// manage runs a management command of the eddy binary with this env's
// configuration, stdin as its standard input and extraEnv last. The
// caller's EDDY_ADMIN_* and EDDY_HTTP_ADDR never leak in.
func (e *env) manage(stdin string, extraEnv []string, args ...string) (string, string, error) {
	e.t.Helper()
	cfgPath := filepath.Join(e.t.TempDir(), "plugins.yaml")
	testenv.Must(e.t, os.WriteFile(cfgPath, []byte(e.yaml), 0o600), "write config")
	cmd := exec.Command(eddyBinary, args...)
	cmd.Env = append(os.Environ(), "EDDY_CONFIG="+cfgPath, "EDDY_DATABASE_URL="+e.dbURL, "EDDY_REDIS_URL="+e.redisURL,
		"EDDY_ENV=test", "EDDY_ADMIN_EMAIL=", "EDDY_ADMIN_PASSWORD=", "EDDY_HTTP_ADDR=")
	cmd.Env = append(cmd.Env, extraEnv...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// mustManage runs a management command that must succeed.
func (e *env) mustManage(stdin string, extraEnv []string, args ...string) string {
	e.t.Helper()
	out, errOut, err := e.manage(stdin, extraEnv, args...)
	if err != nil {
		e.t.Fatalf("eddy %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// openStore opens the env's database as the tests' own view of it.
func (e *env) openStore() *store.Store {
	e.t.Helper()
	st, err := store.Open(context.Background(), e.dbURL)
	testenv.Must(e.t, err, "open store")
	e.t.Cleanup(st.Close)
	return st
}

// decodeObject parses out as exactly one JSON object into a map (to check
// its fields) and into v.
func decodeObject(t *testing.T, out string, v any) map[string]any {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(out))
	testenv.Must(t, dec.Decode(&m), "decode %q", out)
	if dec.More() {
		t.Fatalf("more than one JSON value in %q", out)
	}
	if v != nil {
		testenv.Must(t, json.Unmarshal([]byte(out), v), "decode %q", out)
	}
	return m
}

func keysOf(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func wantKeys(t *testing.T, m map[string]any, want ...string) {
	t.Helper()
	sort.Strings(want)
	if got := keysOf(m); !slices.Equal(got, want) {
		t.Fatalf("JSON fields %v, want %v (object %v)", got, want, m)
	}
}

// checkLogin checks that password is the admin's, as the API's login does.
func checkLogin(t *testing.T, st *store.Store, email, password string) store.Admin {
	t.Helper()
	a, hash, err := st.AdminByEmail(context.Background(), email)
	testenv.Must(t, err, "admin %s", email)
	if !auth.CheckPassword(password, hash) {
		t.Fatalf("the password %q does not log %s in", password, email)
	}
	return a
}

func TestCLIAdminCreate(t *testing.T) {
	e := newEnv(t, "")
	st := e.openStore()
	ctx := context.Background()

	// A generated password, with --json.
	out := e.mustManage("", nil, "admin", "create", "--email", "ada@example.com", "--name", "Ada Lovelace", "--json")
	var ada struct {
		ID, Email, Name, Password string
		CreatedAt                 time.Time `json:"created_at"`
	}
	m := decodeObject(t, out, &ada)
	wantKeys(t, m, "id", "email", "name", "created_at", "password")
	if ada.Email != "ada@example.com" || ada.Name != "Ada Lovelace" || ada.ID == "" || ada.CreatedAt.IsZero() {
		t.Fatalf("admin = %+v", ada)
	}
	if len(ada.Password) < 20 || auth.CheckPasswordPolicy(ada.Password) != nil {
		t.Fatalf("generated password %q: want at least 20 characters that pass the policy", ada.Password)
	}
	if a := checkLogin(t, st, "ada@example.com", ada.Password); a.ID != ada.ID {
		t.Fatalf("admin id %s, JSON said %s", a.ID, ada.ID)
	}

	// A generated password, for people.
	out = e.mustManage("", nil, "admin", "create", "--email", "grace@example.com", "--name", "Grace")
	pw := regexp.MustCompile(`(?m)^password: (\S+)$`).FindStringSubmatch(out)
	if !strings.Contains(out, "created admin grace@example.com") || pw == nil {
		t.Fatalf("output %q: want the admin and a password line", out)
	}
	checkLogin(t, st, "grace@example.com", pw[1])

	// From EDDY_ADMIN_PASSWORD: never printed.
	out = e.mustManage("", []string{"EDDY_ADMIN_PASSWORD=from the environment"},
		"admin", "create", "--email", "bob@example.com", "--name", "Bob", "--json")
	wantKeys(t, decodeObject(t, out, nil), "id", "email", "name", "created_at")
	checkLogin(t, st, "bob@example.com", "from the environment")

	// From the first line of stdin (which wins over the environment), joining
	// an organization.
	e.mustManage("", nil, "org", "create", "--id", "acme", "--name", "Acme")
	out = e.mustManage("carol's long password\nnot this line\n", []string{"EDDY_ADMIN_PASSWORD=not this one either"},
		"admin", "create", "--email", "carol@example.com", "--name", "Carol", "--password-stdin", "--org", "acme", "--role", "admin", "--json")
	var carol struct {
		ID            string
		Organizations []struct{ ID, Name, Role string }
	}
	m = decodeObject(t, out, &carol)
	wantKeys(t, m, "id", "email", "name", "created_at", "organizations")
	if len(carol.Organizations) != 1 || carol.Organizations[0] != (struct{ ID, Name, Role string }{"acme", "Acme", "admin"}) {
		t.Fatalf("organizations = %+v", carol.Organizations)
	}
	checkLogin(t, st, "carol@example.com", "carol's long password")
	org, err := st.OrganizationBySlug(ctx, "acme")
	testenv.Must(t, err, "acme")
	member, err := st.Member(ctx, org.ID, carol.ID)
	testenv.Must(t, err, "carol's membership")
	if member.Role != auth.RoleAdmin {
		t.Fatalf("carol's role = %q, want admin", member.Role)
	}

	// The same email again, in other case.
	_, errOut, err := e.manage("", nil, "admin", "create", "--email", "ADA@example.com", "--name", "Ada again")
	if err == nil || !strings.Contains(errOut, "an admin with email ADA@example.com exists") {
		t.Fatalf("duplicate admin: err %v, stderr %q", err, errOut)
	}
	if n, err := st.CountAdmins(ctx); err != nil || n != 4 {
		t.Fatalf("%d admins (%v), want 4", n, err)
	}
}

func TestCLIOrgAndWorkspaceCreate(t *testing.T) {
	e := newEnv(t, "")
	st := e.openStore()
	ctx := context.Background()
	var ada struct{ ID string }
	decodeObject(t, e.mustManage("", nil, "admin", "create", "--email", "ada@example.com", "--name", "Ada", "--json"), &ada)

	out := e.mustManage("", nil, "org", "create", "--id", "acme", "--name", "Acme Inc", "--owner", "ada@example.com", "--json")
	var org struct {
		ID, Name, Role string
		Managed        bool
		CreatedAt      time.Time `json:"created_at"`
	}
	wantKeys(t, decodeObject(t, out, &org), "id", "name", "managed", "role", "created_at")
	if org.ID != "acme" || org.Name != "Acme Inc" || org.Managed || org.Role != auth.RoleOwner || org.CreatedAt.IsZero() {
		t.Fatalf("organization = %+v", org)
	}
	acme, err := st.OrganizationBySlug(ctx, "acme")
	testenv.Must(t, err, "acme")
	member, err := st.Member(ctx, acme.ID, ada.ID)
	testenv.Must(t, err, "ada's membership")
	if member.Role != auth.RoleOwner {
		t.Fatalf("ada's role = %q, want owner", member.Role)
	}

	out = e.mustManage("", nil, "workspace", "create", "--org", "acme", "--id", "acme-shop", "--name", "Acme shop",
		"--timezone", "Europe/Paris", "--currency", "EUR", "--session-timeout-minutes", "45",
		"--own-domains", "Acme.Example,blog.acme.example", "--ignored-referrers", "pay.example", "--json")
	var ws struct {
		ID             string
		OrganizationID string `json:"organization_id"`
		Name           string
		Managed        bool
		Settings       store.Settings
	}
	wantKeys(t, decodeObject(t, out, &ws), "id", "organization_id", "name", "managed", "settings", "created_at", "updated_at")
	wantSettings := store.Settings{Timezone: "Europe/Paris", Currency: "EUR", SessionTimeoutMinutes: 45,
		OwnDomains: []string{"acme.example", "blog.acme.example"}, IgnoredReferrers: []string{"pay.example"}}
	if ws.ID != "acme-shop" || ws.OrganizationID != "acme" || ws.Name != "Acme shop" || ws.Managed || !ws.Settings.Equal(wantSettings) {
		t.Fatalf("workspace = %+v", ws)
	}
	stored, err := st.WorkspaceBySlug(ctx, "acme-shop")
	testenv.Must(t, err, "stored workspace")
	if stored.OrgSlug != "acme" || !stored.Settings.Equal(wantSettings) {
		t.Fatalf("stored workspace = %+v", stored)
	}

	// Defaults, for people.
	out = e.mustManage("", nil, "workspace", "create", "--org", "acme", "--id", "acme-blog", "--name", "Blog")
	if !strings.Contains(out, "created workspace acme-blog (Blog) in organization acme") ||
		!strings.Contains(out, "timezone UTC, currency USD, session timeout 30 min") {
		t.Fatalf("output %q", out)
	}

	// An organization without an owner, for people.
	out = e.mustManage("", nil, "org", "create", "--id", "lonely", "--name", "Lonely")
	if !strings.Contains(out, "created organization lonely (Lonely)") || !strings.Contains(out, "no members yet") {
		t.Fatalf("output %q", out)
	}

	// The audit log names the CLI and the command.
	entries, err := st.AuditLog(ctx, acme.ID, store.AuditFilter{Limit: 10})
	testenv.Must(t, err, "audit log")
	var got []string
	for _, en := range entries {
		if en.ActorType != "cli" || !strings.HasPrefix(en.ActorName, "eddy ") {
			t.Errorf("audit entry %s by %s %q, want the CLI", en.Action, en.ActorType, en.ActorName)
		}
		got = append(got, en.Action+" "+en.TargetID+" by "+strings.SplitN(en.ActorName, " (", 2)[0])
	}
	want := []string{"workspace.create acme-blog by eddy workspace create", "workspace.create acme-shop by eddy workspace create",
		"organization.create acme by eddy org create"}
	if !slices.Equal(got, want) {
		t.Fatalf("audit log %q, want %q", got, want)
	}
}

// A source created with the CLI works at once in a running collector: the
// CLI announces the new key on Redis and the collector reloads its keys,
// without waiting for its periodic reload.
func TestCLISourceCreateAnnouncesWriteKey(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	beforeServe := time.Now()
	base := e.serve(e.config(e.dbURL, e.redisURL), "collector")
	afterServe := time.Now()

	channel := e.prefix + ":keys-changed"
	sub := e.rdb.Subscribe(ctx, channel)
	defer sub.Close()
	_, err := sub.Receive(ctx) // the subscription's confirmation
	testenv.Must(t, err, "subscribe")
	// The collector subscribes in the background once it runs.
	testenv.Eventually(t, 10*time.Second, "the collector subscribes to "+channel, func() bool {
		n, err := e.rdb.PubSubNumSub(ctx, channel).Result()
		return err == nil && n[channel] >= 2
	})

	// The collector reloads every 10 s after it starts (some time between
	// beforeServe and afterServe); an attempt during which such a reload may
	// have happened proves nothing, and is made again.
	const interval = 10 * time.Second
	mayHaveReloaded := func(from, to time.Time) bool {
		// A second of slack each side, for the ticker's goroutine starting late.
		for k := time.Duration(1); beforeServe.Add(k * interval).Before(to.Add(time.Second)); k++ {
			if afterServe.Add(k*interval + time.Second).After(from) {
				return true
			}
		}
		return false
	}
	for attempt := 1; ; attempt++ {
		from := time.Now()
		id := fmt.Sprintf("app%d", attempt)
		out := e.mustManage("", nil, "source", "create", "--workspace", "shop", "--id", id, "--name", "Mobile app", "--json")
		var src struct {
			ID             string
			WorkspaceID    string `json:"workspace_id"`
			Name           string
			Managed        bool
			WriteKeyPrefix string     `json:"write_key_prefix"`
			RevokedAt      *time.Time `json:"revoked_at"`
			WriteKey       string     `json:"write_key"`
		}
		wantKeys(t, decodeObject(t, out, &src),
			"id", "workspace_id", "name", "managed", "write_key_prefix", "revoked_at", "created_at", "updated_at", "write_key")
		if src.ID != id || src.WorkspaceID != "shop" || src.Name != "Mobile app" || src.Managed || src.RevokedAt != nil ||
			!strings.HasPrefix(src.WriteKey, auth.WriteKeyPrefix) || src.WriteKeyPrefix != auth.DisplayPrefix(src.WriteKey) {
			t.Fatalf("source = %+v", src)
		}
		select {
		case <-sub.Channel():
		case <-time.After(10 * time.Second):
			t.Fatal("eddy source create announced nothing on " + channel)
		}
		// Leave the collector a moment to reload, then send once: a rejected
		// key would make it reload on its own, hiding a missed announcement.
		time.Sleep(time.Second)
		req, err := http.NewRequest(http.MethodPost, base+"/v1/track",
			strings.NewReader(`{"userId":"u1","event":"Hello","messageId":"cli-`+id+`"}`))
		testenv.Must(t, err, "request")
		req.SetBasicAuth(src.WriteKey, "")
		req.Header.Set("Content-Type", "application/json")
		code, _, body := do(t, req)
		if code != http.StatusOK {
			t.Fatalf("the collector answered %d %s to the new write key a second after its announcement", code, body)
		}
		if !mayHaveReloaded(from, time.Now()) {
			break
		}
		if attempt == 3 {
			t.Fatal("every attempt overlapped the collector's periodic reload; the announcement is unproven")
		}
		t.Logf("attempt %d overlapped the periodic reload; again", attempt)
	}

	// For people; and without Redis the source is still created, with a
	// warning.
	out, errOut, err := e.manage("", []string{"EDDY_REDIS_URL=redis://127.0.0.1:1/0"},
		"source", "create", "--workspace", "shop", "--id", "offline")
	if err != nil || !regexp.MustCompile(`(?m)^write key: eddy_wk_\S{43}$`).MatchString(out) ||
		!strings.Contains(errOut, "warning: could not tell running collectors") {
		t.Fatalf("source create without Redis: err %v\nstdout %q\nstderr %q", err, out, errOut)
	}
	if _, err := e.openStore().Source(ctx, store.Workspace{ID: mustWorkspace(t, e, "shop").ID, Slug: "shop"}, "offline"); err != nil {
		t.Fatalf("the source created without Redis: %v", err)
	}
}

func mustWorkspace(t *testing.T, e *env, slug string) store.Workspace {
	t.Helper()
	w, err := e.openStore().WorkspaceBySlug(context.Background(), slug)
	testenv.Must(t, err, "workspace %s", slug)
	return w
}

func TestCLIAPIKeyCreate(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	st := e.openStore()
	e.mustManage("", nil, "workspace", "create", "--org", "default", "--id", "keys", "--name", "Keys")

	out := e.mustManage("", nil, "apikey", "create", "--workspace", "keys", "--name", "ci", "--scopes", "write, read,write", "--json")
	var k struct {
		ID, Name, Prefix, Key string
		WorkspaceID           string `json:"workspace_id"`
		Scopes                []string
		CreatedBy             string     `json:"created_by"`
		LastUsedAt            *time.Time `json:"last_used_at"`
		RevokedAt             *time.Time `json:"revoked_at"`
	}
	wantKeys(t, decodeObject(t, out, &k),
		"id", "workspace_id", "name", "prefix", "scopes", "created_by", "created_at", "last_used_at", "revoked_at", "key")
	if k.ID == "" || k.Name != "ci" || k.WorkspaceID != "keys" || !slices.Equal(k.Scopes, []string{"read", "write"}) ||
		!strings.HasPrefix(k.Key, auth.APIKeyPrefix) || k.Prefix != auth.DisplayPrefix(k.Key) ||
		!strings.HasPrefix(k.CreatedBy, "eddy apikey create") || k.LastUsedAt != nil || k.RevokedAt != nil {
		t.Fatalf("api key = %+v", k)
	}
	var scopes []string
	var name, prefix, workspace string
	err := st.Pool().QueryRow(ctx, `
		SELECT k.scopes, k.name, k.key_prefix, w.slug FROM api_keys k JOIN workspaces w ON w.id = k.workspace_id
		WHERE k.key_hash = $1`, store.HashSecret(k.Key)).Scan(&scopes, &name, &prefix, &workspace)
	testenv.Must(t, err, "the key's row in api_keys")
	if !slices.Equal(scopes, []string{"read", "write"}) || name != "ci" || prefix != k.Prefix || workspace != "keys" {
		t.Fatalf("api_keys row: scopes %v, name %q, prefix %q, workspace %q", scopes, name, prefix, workspace)
	}
	if _, w, err := st.APIKeyByHash(ctx, store.HashSecret(k.Key)); err != nil || w.Slug != "keys" {
		t.Fatalf("the key does not authenticate: %v (workspace %q)", err, w.Slug)
	}

	out = e.mustManage("", nil, "apikey", "create", "--workspace", "keys", "--name", "admin key", "--scopes", "admin")
	key := regexp.MustCompile(`(?m)^key: (eddy_sk_\S{43})$`).FindStringSubmatch(out)
	if key == nil || !strings.Contains(out, "scopes admin") {
		t.Fatalf("output %q: want the key and its scopes", out)
	}
	if k, _, err := st.APIKeyByHash(ctx, store.HashSecret(key[1])); err != nil || !slices.Equal(k.Scopes, []string{"admin"}) {
		t.Fatalf("the printed key: %v, scopes %v", err, k.Scopes)
	}
}

func TestCLIManagementRefusesBadInput(t *testing.T) {
	e := newEnv(t, "")
	e.mustManage("", nil, "workspace", "create", "--org", "default", "--id", "ws", "--name", "WS")
	e.mustManage("", nil, "source", "create", "--workspace", "ws", "--id", "web")
	unmigrated := testenv.Database(t)
	missing := mustParseURL(e.dbURL)
	missing.Path += "_missing"
	tests := []struct {
		name  string
		stdin string
		env   []string
		args  []string
		want  string
	}{
		{"bad org id", "", nil, []string{"org", "create", "--id", "Acme!", "--name", "Acme"}, `--id: must be 1 to 63 lower-case letters`},
		{"bad workspace id", "", nil, []string{"workspace", "create", "--org", "default", "--id", "-x", "--name", "X"}, `--id: must be`},
		{"missing flags", "", nil, []string{"org", "create"}, "--id: is required; --name: is required"},
		{"taken org id", "", nil, []string{"org", "create", "--id", "default", "--name", "Again"}, `organization id "default" is taken`},
		{"taken workspace id", "", nil, []string{"workspace", "create", "--org", "default", "--id", "ws", "--name", "X"}, `workspace id "ws" is taken`},
		{"taken source id", "", nil, []string{"source", "create", "--workspace", "ws", "--id", "web"}, `source id "web" is taken in workspace ws`},
		{"unknown organization", "", nil, []string{"workspace", "create", "--org", "nope", "--id", "x", "--name", "X"}, `--org: no organization "nope"`},
		{"unknown owner", "", nil, []string{"org", "create", "--id", "x", "--name", "X", "--owner", "ghost@example.com"}, "--owner: no admin with email ghost@example.com"},
		{"unknown workspace for a source", "", nil, []string{"source", "create", "--workspace", "nope", "--id", "web"}, `--workspace: no workspace "nope"`},
		{"unknown workspace for a key", "", nil, []string{"apikey", "create", "--workspace", "nope", "--name", "k", "--scopes", "read"}, `--workspace: no workspace "nope"`},
		{"unknown scope", "", nil, []string{"apikey", "create", "--workspace", "ws", "--name", "k", "--scopes", "read,delete"}, `--scopes: "delete" is not a scope`},
		{"no scope", "", nil, []string{"apikey", "create", "--workspace", "ws", "--name", "k"}, "--scopes: must list at least one of read, write, admin"},
		{"bad timezone", "", nil, []string{"workspace", "create", "--org", "default", "--id", "x", "--name", "X", "--timezone", "Mars/Olympus"}, "--timezone: must be an IANA time zone"},
		{"lower-case currency", "", nil, []string{"workspace", "create", "--org", "default", "--id", "x", "--name", "X", "--currency", "eur"}, "--currency: must be an ISO 4217 currency code in capitals"},
		{"unknown currency", "", nil, []string{"workspace", "create", "--org", "default", "--id", "x", "--name", "X", "--currency", "XYZ"}, "--currency: must be"},
		{"session timeout", "", nil, []string{"workspace", "create", "--org", "default", "--id", "x", "--name", "X", "--session-timeout-minutes", "1441"}, "--session-timeout-minutes: must be from 1 to 1440"},
		{"own domain", "", nil, []string{"workspace", "create", "--org", "default", "--id", "x", "--name", "X", "--own-domains", "https://shop.example/"}, `--own-domains: "https://shop.example/" is not a host name such as shop.com`},
		{"bad email", "", nil, []string{"admin", "create", "--email", "Ada <ada@example.com>", "--name", "Ada"}, "--email: must be a plain email address"},
		{"no name", "", nil, []string{"admin", "create", "--email", "ada@example.com"}, "--name: is required"},
		{"short password", "", []string{"EDDY_ADMIN_PASSWORD=short"}, []string{"admin", "create", "--email", "ada@example.com", "--name", "Ada"}, "EDDY_ADMIN_PASSWORD: the password must be at least 12 characters"},
		{"weak password", "password1234\n", nil, []string{"admin", "create", "--email", "ada@example.com", "--name", "Ada", "--password-stdin"}, "--password-stdin: the password is a well-known default password"},
		{"empty stdin", "", nil, []string{"admin", "create", "--email", "ada@example.com", "--name", "Ada", "--password-stdin"}, "--password-stdin: standard input holds no password"},
		{"role without org", "", nil, []string{"admin", "create", "--email", "ada@example.com", "--name", "Ada", "--role", "owner"}, "--role: needs --org"},
		{"unknown role", "", nil, []string{"admin", "create", "--email", "ada@example.com", "--name", "Ada", "--org", "default", "--role", "boss"}, `--role: must be one of owner, admin, member, viewer`},
		{"org without role", "", nil, []string{"admin", "create", "--email", "ada@example.com", "--name", "Ada", "--org", "default"}, "--role: is required"},
		{"admin for an unknown org", "", nil, []string{"admin", "create", "--email", "ada@example.com", "--name", "Ada", "--org", "nope", "--role", "owner"}, `--org: no organization "nope"`},
		{"stray argument", "", nil, []string{"org", "create", "--id", "x", "--name", "X", "extra"}, `unknown command "extra"`},
		{"database not migrated", "", []string{"EDDY_DATABASE_URL=" + unmigrated}, []string{"org", "create", "--id", "x", "--name", "X"}, "run `eddy migrate` first"},
		{"no database", "", []string{"EDDY_DATABASE_URL=" + missing.String()}, []string{"admin", "bootstrap"}, "does not exist: run `eddy migrate` first"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, err := e.manage(tt.stdin, tt.env, tt.args...)
			if err == nil || !strings.Contains(errOut, tt.want) {
				t.Fatalf("eddy %s: err %v, stdout %q, stderr %q; want a failure saying %q", strings.Join(tt.args, " "), err, out, errOut, tt.want)
			}
			if out != "" {
				t.Errorf("a failure printed %q on stdout", out)
			}
		})
	}
	// Nothing was created by the failures.
	st := e.openStore()
	ctx := context.Background()
	if n, err := st.CountAdmins(ctx); err != nil || n != 0 {
		t.Errorf("%d admins (%v) after failed creations", n, err)
	}
	var orgs []string
	rows, err := st.Pool().Query(ctx, `SELECT slug FROM organizations ORDER BY slug`)
	testenv.Must(t, err, "organizations")
	orgs, err = pgx.CollectRows(rows, pgx.RowTo[string])
	testenv.Must(t, err, "organizations")
	if len(orgs) != 1 || orgs[0] != "default" {
		t.Errorf("organizations %v after failed creations, want default alone", orgs)
	}
}

// bootstrapPassword finds the generated password in bootstrap's output.
var bootstrapPassword = regexp.MustCompile(`(?m)^  password: (\S+)$`)

func TestBootstrapCreatesTheFirstOwner(t *testing.T) {
	e := newEnv(t, "")
	st := e.openStore()
	ctx := context.Background()
	// An organization made before any admin exists (the CLI allows it).
	e.mustManage("", nil, "org", "create", "--id", "acme", "--name", "Acme")

	out, errOut, err := e.manage("", []string{"EDDY_HTTP_ADDR=127.0.0.1:18080"}, "admin", "bootstrap")
	if err != nil || errOut != "" {
		t.Fatalf("bootstrap: %v\nstdout %q\nstderr %q", err, out, errOut)
	}
	pw := bootstrapPassword.FindStringSubmatch(out)
	if pw == nil || !strings.Contains(out, "email:    admin@eddy.local") || !strings.Contains(out, "http://127.0.0.1:18080/") ||
		!strings.Contains(out, "default, acme") && !strings.Contains(out, "acme, default") {
		t.Fatalf("bootstrap printed %q: want the console URL, email, password and organizations", out)
	}
	if len(pw[1]) < 20 {
		t.Fatalf("generated password %q is shorter than 20 characters", pw[1])
	}
	a := checkLogin(t, st, "admin@eddy.local", pw[1])
	for _, slug := range []string{"default", "acme"} {
		o, err := st.OrganizationBySlug(ctx, slug)
		testenv.Must(t, err, "organization %s", slug)
		m, err := st.Member(ctx, o.ID, a.ID)
		if err != nil || m.Role != auth.RoleOwner {
			t.Fatalf("the first admin in %s: %+v, %v; want owner", slug, m, err)
		}
	}
	// plugins.yaml's workspace exists before serve ever ran, in the
	// organization the admin owns.
	if w := mustWorkspace(t, e, "shop"); w.OrgSlug != "default" || !w.Managed {
		t.Fatalf("workspace shop = %+v, want managed in default", w)
	}

	// The login works through the API.
	base := e.serve(e.config(e.dbURL, e.redisURL), "api")
	req, err := http.NewRequest(http.MethodPost, base+"/api/v1/auth/login",
		strings.NewReader(fmt.Sprintf(`{"email":"admin@eddy.local","password":%q}`, pw[1])))
	testenv.Must(t, err, "request")
	req.Header.Set("Content-Type", "application/json")
	if code, _, body := do(t, req); code != http.StatusOK {
		t.Fatalf("login with the printed credentials: %d %s", code, body)
	}

	// Again: nothing to do, in one line.
	for _, extra := range [][]string{nil, {"EDDY_ADMIN_EMAIL=other@example.com", "EDDY_ADMIN_PASSWORD=another long password"}} {
		out, errOut, err = e.manage("", extra, "admin", "bootstrap")
		if err != nil || out != "admins exist; nothing to do\n" || errOut != "" {
			t.Fatalf("second bootstrap: %v\nstdout %q\nstderr %q", err, out, errOut)
		}
	}
	out = e.mustManage("", nil, "admin", "bootstrap", "--json")
	var again struct {
		Created bool
		Message string
	}
	wantKeys(t, decodeObject(t, out, &again), "created", "message")
	if again.Created {
		t.Fatalf("second bootstrap --json: %s", out)
	}
	if n, err := st.CountAdmins(ctx); err != nil || n != 1 {
		t.Fatalf("%d admins (%v), want 1", n, err)
	}
}

func TestBootstrapWithGivenCredentials(t *testing.T) {
	e := newEnv(t, "")
	st := e.openStore()
	out, errOut, err := e.manage("", []string{"EDDY_ADMIN_EMAIL=ops@example.com", "EDDY_ADMIN_PASSWORD=the operator's password"},
		"admin", "bootstrap", "--json")
	if err != nil || errOut != "" {
		t.Fatalf("bootstrap: %v\nstdout %q\nstderr %q", err, out, errOut)
	}
	var got struct {
		Created       bool
		Admin         struct{ ID, Email string }
		Organizations []string
		ConsoleURL    string `json:"console_url"`
	}
	wantKeys(t, decodeObject(t, out, &got), "created", "admin", "organizations", "console_url")
	if !got.Created || got.Admin.Email != "ops@example.com" || !slices.Equal(got.Organizations, []string{"default"}) ||
		got.ConsoleURL != "http://localhost:8080/" {
		t.Fatalf("bootstrap --json = %s", out)
	}
	checkLogin(t, st, "ops@example.com", "the operator's password")

	// Outside production a weak password is only warned about.
	e2 := newEnv(t, "")
	out, errOut, err = e2.manage("", []string{"EDDY_ADMIN_PASSWORD=changeme1234", "EDDY_HTTP_ADDR=:9090"}, "admin", "bootstrap")
	if err != nil || !strings.Contains(errOut, "warning: EDDY_ADMIN_PASSWORD: the password is a well-known default password") ||
		!strings.Contains(out, "the value of EDDY_ADMIN_PASSWORD") || strings.Contains(out, "changeme1234") ||
		!strings.Contains(out, "http://localhost:9090/") {
		t.Fatalf("bootstrap with a weak password in development: %v\nstdout %q\nstderr %q", err, out, errOut)
	}
	checkLogin(t, e2.openStore(), "admin@eddy.local", "changeme1234")
}

func TestBootstrapProductionRefusesGeneratedCredentials(t *testing.T) {
	e := newEnv(t, "")
	// Production wants long write keys.
	long := e.writeKey + "-for-production"
	e.yaml, e.writeKey = strings.ReplaceAll(e.yaml, e.writeKey, long), long
	st := e.openStore()
	prod := func(extra ...string) []string { return append([]string{"EDDY_ENV=production"}, extra...) }
	tests := []struct {
		name string
		env  []string
		want string
	}{
		{"nothing given", prod(), "EDDY_ENV=production: set EDDY_ADMIN_EMAIL and EDDY_ADMIN_PASSWORD"},
		{"no password", prod("EDDY_ADMIN_EMAIL=ops@example.com"), "bootstrap does not generate credentials in production"},
		{"no email", prod("EDDY_ADMIN_PASSWORD=a long enough password"), "set EDDY_ADMIN_EMAIL and EDDY_ADMIN_PASSWORD"},
		{"default password", prod("EDDY_ADMIN_EMAIL=ops@example.com", "EDDY_ADMIN_PASSWORD=changeme1234"),
			"EDDY_ADMIN_PASSWORD: the password is a well-known default password; EDDY_ENV=production requires a strong password"},
		{"short password", prod("EDDY_ADMIN_EMAIL=ops@example.com", "EDDY_ADMIN_PASSWORD=hunter2"), "must be at least 12 characters"},
		{"bad email", prod("EDDY_ADMIN_EMAIL=ops", "EDDY_ADMIN_PASSWORD=a long enough password"), "EDDY_ADMIN_EMAIL: must be a plain email address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, err := e.manage("", tt.env, "admin", "bootstrap")
			if err == nil || !strings.Contains(errOut, tt.want) {
				t.Fatalf("err %v, stdout %q, stderr %q; want a failure saying %q", err, out, errOut, tt.want)
			}
		})
	}
	if n, err := st.CountAdmins(context.Background()); err != nil || n != 0 {
		t.Fatalf("%d admins (%v) after refusals", n, err)
	}

	out := e.mustManage("", prod("EDDY_ADMIN_EMAIL=ops@example.com", "EDDY_ADMIN_PASSWORD=a long enough password"), "admin", "bootstrap")
	if !strings.Contains(out, "email:    ops@example.com") || strings.Contains(out, "a long enough password") {
		t.Fatalf("production bootstrap printed %q", out)
	}
	checkLogin(t, st, "ops@example.com", "a long enough password")
}
