package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/eddy-cdp/eddy/internal/testenv"
)

type orgJSON struct {
	ID, Name, Role string
	Managed        bool
}

func TestOrganizations(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	ada := p.newAdmin("ada@example.com")

	var org orgJSON
	ada.must(http.StatusCreated, "POST", "/organizations", map[string]any{"id": "acme", "name": "Acme Inc."}, &org)
	if org != (orgJSON{ID: "acme", Name: "Acme Inc.", Role: "owner"}) {
		t.Fatalf("created %+v", org)
	}
	ada.expect(http.StatusConflict, "conflict", "POST", "/organizations", map[string]any{"id": "acme", "name": "Again"})
	// Ids are unique for everyone, not per admin.
	eve := p.newAdmin("eve@example.com")
	eve.expect(http.StatusConflict, "conflict", "POST", "/organizations", map[string]any{"id": "acme", "name": "Mine"})
	// An organization one is not in is not found, exactly like a missing one.
	missing := eve.expect(http.StatusNotFound, "not_found", "GET", "/organizations/nope", nil)
	hidden := eve.expect(http.StatusNotFound, "not_found", "GET", "/organizations/acme", nil)
	if string(missing.body) != string(hidden.body) {
		t.Fatalf("a hidden organization answers %s, a missing one %s", hidden.body, missing.body)
	}
	eve.expect(http.StatusNotFound, "not_found", "PATCH", "/organizations/acme", map[string]any{"name": "Mine"})

	var list struct {
		Data       []orgJSON
		NextCursor string `json:"next_cursor"`
	}
	ada.org("beta")
	ada.org("gamma")
	ada.must(http.StatusOK, "GET", "/organizations?limit=2", nil, &list)
	if len(list.Data) != 2 || list.Data[0].ID != "acme" || list.Data[1].ID != "beta" || list.NextCursor == "" {
		t.Fatalf("first page %+v", list)
	}
	next := list.NextCursor
	list.NextCursor = ""
	ada.must(http.StatusOK, "GET", "/organizations?limit=2&cursor="+next, nil, &list)
	if len(list.Data) != 1 || list.Data[0].ID != "gamma" || list.NextCursor != "" {
		t.Fatalf("second page %+v", list)
	}

	// Renaming: owners and admins; members and viewers may not.
	roles := map[string]*client{
		"admin":  p.member("acme", "admin@example.com", "admin"),
		"member": p.member("acme", "member@example.com", "member"),
		"viewer": p.member("acme", "viewer@example.com", "viewer"),
	}
	ada.must(http.StatusOK, "PATCH", "/organizations/acme", map[string]any{"name": "Acme 2"}, &org)
	if org.Name != "Acme 2" || org.Role != "owner" {
		t.Fatalf("renamed %+v", org)
	}
	roles["admin"].must(http.StatusOK, "PATCH", "/organizations/acme", map[string]any{"name": "Acme 3"}, &org)
	if org.Role != "admin" {
		t.Fatalf("admin sees role %q", org.Role)
	}
	for _, role := range []string{"member", "viewer"} {
		roles[role].expect(http.StatusForbidden, "forbidden", "PATCH", "/organizations/acme", map[string]any{"name": "Nope"})
		roles[role].must(http.StatusOK, "GET", "/organizations/acme", nil, &org)
		if org.Name != "Acme 3" || org.Role != role {
			t.Fatalf("%s reads %+v", role, org)
		}
		// Members and viewers may not create workspaces either.
		roles[role].expect(http.StatusForbidden, "forbidden", "POST", "/organizations/acme/workspaces",
			map[string]any{"id": "ws-" + role, "name": "X"})
		roles[role].expect(http.StatusForbidden, "forbidden", "GET", "/organizations/acme/invitations", nil)
		roles[role].expect(http.StatusForbidden, "forbidden", "GET", "/organizations/acme/audit-log", nil)
		roles[role].must(http.StatusOK, "GET", "/organizations/acme/members", nil, nil)
		roles[role].must(http.StatusOK, "GET", "/organizations/acme/workspaces", nil, nil)
	}
}

type invitationJSON struct {
	ID, Email, Role, Status, Token string
	InvitedBy                      *string `json:"invited_by"`
}

type acceptJSON struct {
	Admin        struct{ ID, Email, Name string }
	Organization orgJSON
}

func TestInvitationForANewAdmin(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	ada := p.newAdmin("ada@example.com")
	ada.org("acme")

	var inv invitationJSON
	ada.must(http.StatusCreated, "POST", "/organizations/acme/invitations", map[string]any{"email": "new@example.com", "role": "member"}, &inv)
	if !strings.HasPrefix(inv.Token, "eddy_inv_") || inv.Status != "pending" || inv.Role != "member" ||
		inv.InvitedBy == nil || *inv.InvitedBy != "ada@example.com" {
		t.Fatalf("invitation %+v", inv)
	}
	// The token is shown once: never in the list.
	r := ada.must(http.StatusOK, "GET", "/organizations/acme/invitations", nil, nil)
	if strings.Contains(string(r.body), inv.Token) || strings.Contains(string(r.body), `"token"`) {
		t.Fatalf("the invitation list shows a token: %s", r.body)
	}
	// One open invitation per address.
	ada.expect(http.StatusConflict, "conflict", "POST", "/organizations/acme/invitations", map[string]any{"email": "NEW@example.com", "role": "viewer"})

	anon := p.anonymous()
	// A new admin needs a name and a good password.
	anon.do("POST", "/invitations/accept", map[string]any{"token": inv.Token}).wantInvalid(t, "password")
	anon.do("POST", "/invitations/accept", map[string]any{"token": inv.Token, "name": "New"}).wantInvalid(t, "password")
	anon.do("POST", "/invitations/accept", map[string]any{"token": inv.Token, "name": "New", "password": "short"}).wantInvalid(t, "password")
	anon.do("POST", "/invitations/accept", map[string]any{"token": inv.Token, "name": "New", "password": "password1234"}).wantInvalid(t, "password")
	anon.do("POST", "/invitations/accept", map[string]any{"token": inv.Token, "password": "a long enough password"}).wantInvalid(t, "name")
	anon.expect(http.StatusNotFound, "not_found", "POST", "/invitations/accept", map[string]any{"token": "eddy_inv_wrong", "name": "New", "password": "a long enough password"})

	var acc acceptJSON
	anon.must(http.StatusOK, "POST", "/invitations/accept",
		map[string]any{"token": inv.Token, "name": "Newton", "password": "a long enough password"}, &acc)
	if acc.Admin.Email != "new@example.com" || acc.Admin.Name != "Newton" || acc.Organization.ID != "acme" || acc.Organization.Role != "member" {
		t.Fatalf("accepted %+v", acc)
	}
	// Used once.
	anon.expect(http.StatusNotFound, "not_found", "POST", "/invitations/accept",
		map[string]any{"token": inv.Token, "name": "Newton", "password": "a long enough password"})

	// The new admin logs in and is a member.
	newton := p.anonymous()
	newton.must(http.StatusOK, "POST", "/auth/login", map[string]any{"email": "new@example.com", "password": "a long enough password"}, nil)
	var me struct {
		Organizations []struct{ ID, Role string }
	}
	newton.must(http.StatusOK, "GET", "/auth/me", nil, &me)
	if len(me.Organizations) != 1 || me.Organizations[0].ID != "acme" || me.Organizations[0].Role != "member" {
		t.Fatalf("new admin's organizations %+v", me.Organizations)
	}
	var list struct{ Data []invitationJSON }
	ada.must(http.StatusOK, "GET", "/organizations/acme/invitations", nil, &list)
	if len(list.Data) != 1 || list.Data[0].Status != "accepted" {
		t.Fatalf("invitations after accepting %+v", list.Data)
	}
	// Accepted invitations cannot be revoked; members cannot be invited.
	ada.expect(http.StatusConflict, "conflict", "DELETE", "/organizations/acme/invitations/"+inv.ID, nil)
	ada.expect(http.StatusConflict, "conflict", "POST", "/organizations/acme/invitations", map[string]any{"email": "new@example.com", "role": "admin"})
}

func TestInvitationForAnExistingAdmin(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	ada := p.newAdmin("ada@example.com")
	ada.org("acme")
	bob := p.newAdmin("bob@example.com")
	carol := p.newAdmin("carol@example.com")

	var inv invitationJSON
	ada.must(http.StatusCreated, "POST", "/organizations/acme/invitations", map[string]any{"email": "bob@example.com", "role": "admin"}, &inv)

	// Anonymous: with or without a password, the existing account is not
	// taken over (docs: "an existing admin must be logged in as the
	// invited email").
	anon := p.anonymous()
	anon.expect(http.StatusForbidden, "forbidden", "POST", "/invitations/accept", map[string]any{"token": inv.Token})
	anon.expect(http.StatusForbidden, "forbidden", "POST", "/invitations/accept",
		map[string]any{"token": inv.Token, "name": "Mallory", "password": "a long enough password"})
	// Logged in as someone else.
	carol.expect(http.StatusForbidden, "forbidden", "POST", "/invitations/accept", map[string]any{"token": inv.Token})
	// bob's password is unchanged.
	p.anonymous().must(http.StatusOK, "POST", "/auth/login", map[string]any{"email": "bob@example.com", "password": passwordOf("bob@example.com")}, nil)

	// As bob, with the CSRF token.
	if r := bob.send("POST", "/invitations/accept", map[string]any{"token": inv.Token}, map[string]string{"X-CSRF-Token": ""}); r.status != http.StatusForbidden || r.errorCode() != "csrf" {
		t.Fatalf("accept with the cookie, without CSRF token: %d %s", r.status, r.body)
	}
	var acc acceptJSON
	bob.must(http.StatusOK, "POST", "/invitations/accept", map[string]any{"token": inv.Token}, &acc)
	if acc.Admin.Email != "bob@example.com" || acc.Organization.Role != "admin" {
		t.Fatalf("accepted %+v", acc)
	}
	bob.must(http.StatusOK, "GET", "/organizations/acme", nil, nil)
	bob.expect(http.StatusNotFound, "not_found", "POST", "/invitations/accept", map[string]any{"token": inv.Token})
	carol.expect(http.StatusNotFound, "not_found", "GET", "/organizations/acme", nil)
}

func TestRevokedAndExpiredInvitations(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	ada := p.newAdmin("ada@example.com")
	ada.org("acme")
	invite := func(email, role string) invitationJSON {
		var inv invitationJSON
		ada.must(http.StatusCreated, "POST", "/organizations/acme/invitations", map[string]any{"email": email, "role": role}, &inv)
		return inv
	}
	accept := map[string]any{"name": "Someone", "password": "a long enough password"}
	anon := p.anonymous()

	revoked := invite("rev@example.com", "viewer")
	ada.must(http.StatusNoContent, "DELETE", "/organizations/acme/invitations/"+revoked.ID, nil, nil)
	ada.expect(http.StatusConflict, "conflict", "DELETE", "/organizations/acme/invitations/"+revoked.ID, nil)
	accept["token"] = revoked.Token
	anon.expect(http.StatusNotFound, "not_found", "POST", "/invitations/accept", accept)
	// A revoked invitation's address can be invited again.
	again := invite("rev@example.com", "viewer")
	if again.Token == revoked.Token {
		t.Fatal("a new invitation reuses the token")
	}

	expired := invite("exp@example.com", "member")
	_, err := p.store.Pool().Exec(context.Background(), `UPDATE invitations SET expires_at = now() - interval '1 second' WHERE id = $1`, expired.ID)
	testenv.Must(t, err, "expire invitation")
	accept["token"] = expired.Token
	anon.expect(http.StatusNotFound, "not_found", "POST", "/invitations/accept", accept)
	var list struct{ Data []invitationJSON }
	ada.must(http.StatusOK, "GET", "/organizations/acme/invitations", nil, &list)
	status := map[string]string{}
	for _, i := range list.Data {
		status[i.ID] = i.Status
	}
	if status[revoked.ID] != "revoked" || status[expired.ID] != "expired" || status[again.ID] != "pending" {
		t.Fatalf("statuses %v", status)
	}
	// An expired invitation is replaced by a new one.
	replacement := invite("exp@example.com", "member")
	accept["token"] = replacement.Token
	anon.must(http.StatusOK, "POST", "/invitations/accept", accept, nil)

	// Unknown and malformed invitation ids.
	ada.expect(http.StatusNotFound, "not_found", "DELETE", "/organizations/acme/invitations/"+uuid.NewString(), nil)
	ada.do("DELETE", "/organizations/acme/invitations/not-a-uuid", nil).wantInvalid(t, "invitation_id")
}

func TestWhoMayInvite(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	owner := p.newAdmin("owner@example.com")
	owner.org("acme")
	admin := p.member("acme", "admin@example.com", "admin")
	member := p.member("acme", "member@example.com", "member")

	admin.expect(http.StatusForbidden, "forbidden", "POST", "/organizations/acme/invitations", map[string]any{"email": "x@example.com", "role": "owner"})
	admin.must(http.StatusCreated, "POST", "/organizations/acme/invitations", map[string]any{"email": "x@example.com", "role": "admin"}, nil)
	owner.must(http.StatusCreated, "POST", "/organizations/acme/invitations", map[string]any{"email": "y@example.com", "role": "owner"}, nil)
	member.expect(http.StatusForbidden, "forbidden", "POST", "/organizations/acme/invitations", map[string]any{"email": "z@example.com", "role": "viewer"})
	for _, tc := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"email": "not an email", "role": "viewer"}, "email"},
		{map[string]any{"email": "Zed <z@example.com>", "role": "viewer"}, "email"},
		{map[string]any{"role": "viewer"}, "email"},
		{map[string]any{"email": "z@example.com", "role": "superuser"}, "role"},
		{map[string]any{"email": "z@example.com", "role": "Owner"}, "role"},
		{map[string]any{"email": "z@example.com"}, "role"},
	} {
		owner.do("POST", "/organizations/acme/invitations", tc.body).wantInvalid(t, tc.field)
	}
}

type memberJSON struct {
	AdminID string `json:"admin_id"`
	Email   string
	Role    string
}

func TestMemberRoles(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	owner := p.newAdmin("owner@example.com")
	owner.org("acme")
	admin := p.member("acme", "admin@example.com", "admin")
	member := p.member("acme", "member@example.com", "member")
	viewer := p.member("acme", "viewer@example.com", "viewer")
	id := map[*client]string{owner: owner.adminID(), admin: admin.adminID(), member: member.adminID(), viewer: viewer.adminID()}
	path := func(c *client) string { return "/organizations/acme/members/" + id[c] }
	role := func(r string) map[string]any { return map[string]any{"role": r} }

	var list struct{ Data []memberJSON }
	viewer.must(http.StatusOK, "GET", "/organizations/acme/members", nil, &list)
	if len(list.Data) != 4 || list.Data[0].Email != "admin@example.com" || list.Data[2].Role != "owner" {
		t.Fatalf("members %+v", list.Data)
	}

	// An admin may not touch an owner nor make one.
	admin.expect(http.StatusForbidden, "forbidden", "PATCH", path(owner), role("admin"))
	admin.expect(http.StatusForbidden, "forbidden", "DELETE", path(owner), nil)
	admin.expect(http.StatusForbidden, "forbidden", "PATCH", path(member), role("owner"))
	// Members and viewers change no one's role.
	viewer.expect(http.StatusForbidden, "forbidden", "PATCH", path(member), role("viewer"))
	member.expect(http.StatusForbidden, "forbidden", "PATCH", path(viewer), role("member"))
	member.expect(http.StatusForbidden, "forbidden", "PATCH", path(member), role("admin"))
	member.expect(http.StatusForbidden, "forbidden", "DELETE", path(viewer), nil)
	// An admin manages members.
	var m memberJSON
	admin.must(http.StatusOK, "PATCH", path(member), role("viewer"), &m)
	if m.Role != "viewer" || m.Email != "member@example.com" {
		t.Fatalf("updated %+v", m)
	}
	admin.must(http.StatusOK, "PATCH", path(member), role("member"), nil)
	admin.do("PATCH", path(member), role("root")).wantInvalid(t, "role")

	// The last owner can be neither demoted nor removed, even by themself.
	owner.expect(http.StatusConflict, "conflict", "PATCH", path(owner), role("admin"))
	owner.expect(http.StatusConflict, "conflict", "DELETE", path(owner), nil)
	// With a second owner, they can.
	owner.must(http.StatusOK, "PATCH", path(admin), role("owner"), nil)
	admin.must(http.StatusOK, "PATCH", path(owner), role("admin"), nil)
	admin.expect(http.StatusConflict, "conflict", "DELETE", path(admin), nil)

	// Anyone may leave.
	member.must(http.StatusNoContent, "DELETE", path(member), nil, nil)
	member.expect(http.StatusNotFound, "not_found", "GET", "/organizations/acme", nil)
	viewer.must(http.StatusNoContent, "DELETE", path(viewer), nil, nil)
	// Gone members are not found; nor is a stranger; a non-UUID is a 400.
	admin.expect(http.StatusNotFound, "not_found", "PATCH", path(member), role("viewer"))
	admin.expect(http.StatusNotFound, "not_found", "DELETE", "/organizations/acme/members/"+uuid.NewString(), nil)
	admin.do("DELETE", "/organizations/acme/members/not-a-uuid", nil).wantInvalid(t, "admin_id")
	// Leaving is for members: an outsider may not "leave" to probe.
	viewer.expect(http.StatusNotFound, "not_found", "DELETE", path(viewer), nil)

	admin.must(http.StatusOK, "GET", "/organizations/acme/members", nil, &list)
	if len(list.Data) != 2 {
		t.Fatalf("members after leaving %+v", list.Data)
	}
}
