package api

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/eddy-cdp/eddy/core/auth"
	"github.com/eddy-cdp/eddy/core/store"
)

func (a *API) listOrganizations(c *gin.Context) {
	admin := caller(c).admin
	if admin == nil {
		a.fail(c, keysStayInTheirWorkspace())
		return
	}
	paged(a, c,
		func(ctx context.Context, p store.Page) ([]store.Organization, error) {
			return a.store.Organizations(ctx, admin.ID, p)
		},
		func(v store.Organization) any { return OrganizationView(v) },
		func(v store.Organization) string { return v.Slug })
}

type createOrganizationRequest struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

func (a *API) createOrganization(c *gin.Context) {
	p := caller(c)
	if p.admin == nil {
		a.fail(c, keysStayInTheirWorkspace())
		return
	}
	var req createOrganizationRequest
	if !a.bind(c, &req) {
		return
	}
	var errs FieldErrors
	errs.Slug("id", req.ID)
	errs.Name("name", req.Name)
	if errs != nil {
		a.fail(c, errs)
		return
	}
	org, err := a.store.CreateOrganization(c.Request.Context(), change(c), p.admin.ID, req.ID, req.Name)
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, OrganizationView(org))
}

func (a *API) getOrganization(c *gin.Context) {
	org, ok := a.organization(c, auth.ReadOrganization)
	if !ok {
		return
	}
	c.JSON(http.StatusOK, OrganizationView(org))
}

type updateOrganizationRequest struct {
	Name string `json:"name"`
}

func (a *API) updateOrganization(c *gin.Context) {
	org, ok := a.organization(c, auth.ManageOrganization)
	if !ok {
		return
	}
	var req updateOrganizationRequest
	if !a.bind(c, &req) {
		return
	}
	var errs FieldErrors
	errs.Name("name", req.Name)
	if errs != nil {
		a.fail(c, errs)
		return
	}
	org, err := a.store.RenameOrganization(c.Request.Context(), change(c), org, req.Name)
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, OrganizationView(org))
}

func (a *API) listMembers(c *gin.Context) {
	org, ok := a.organization(c, auth.ReadOrganization)
	if !ok {
		return
	}
	paged(a, c,
		func(ctx context.Context, p store.Page) ([]store.Member, error) {
			return a.store.Members(ctx, org.ID, p)
		},
		func(v store.Member) any { return memberView(v) },
		func(v store.Member) string { return strings.ToLower(v.Email) })
}

// memberChange resolves the member a PATCH or DELETE targets and checks the
// caller may touch them: managers may change others, only an owner may touch
// an owner or make one, and anyone may remove themself.
func (a *API) memberChange(c *gin.Context, newRole string) (store.Organization, store.Member, bool) {
	p := caller(c)
	self := p.admin != nil && c.Param("admin_id") == p.admin.ID
	perm := auth.ManageOrganization
	if self && newRole == "" {
		perm = auth.ReadOrganization // leaving
	}
	org, ok := a.organization(c, perm)
	if !ok {
		return org, store.Member{}, false
	}
	id, ok := a.uuidParam(c, "admin_id")
	if !ok {
		return org, store.Member{}, false
	}
	m, err := a.store.Member(c.Request.Context(), org.ID, id)
	if err != nil {
		a.fail(c, err)
		return org, m, false
	}
	if (m.Role == auth.RoleOwner || newRole == auth.RoleOwner) && org.Role != auth.RoleOwner && !(self && newRole == "") {
		a.fail(c, forbidden("only an owner may change an owner or make one"))
		return org, m, false
	}
	return org, m, true
}

type updateMemberRequest struct {
	Role string `json:"role"`
}

func (a *API) updateMember(c *gin.Context) {
	var req updateMemberRequest
	if !a.bind(c, &req) {
		return
	}
	var errs FieldErrors
	errs.OneOf("role", req.Role, auth.Roles)
	if errs != nil {
		a.fail(c, errs)
		return
	}
	org, m, ok := a.memberChange(c, req.Role)
	if !ok {
		return
	}
	m, err := a.store.SetMemberRole(c.Request.Context(), change(c), org, m.AdminID, req.Role)
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, memberView(m))
}

func (a *API) removeMember(c *gin.Context) {
	org, m, ok := a.memberChange(c, "")
	if !ok {
		return
	}
	if err := a.store.RemoveMember(c.Request.Context(), change(c), org, m.AdminID); err != nil {
		a.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// invitationTTL is how long an invitation can be accepted.
const invitationTTL = 7 * 24 * time.Hour

func (a *API) listInvitations(c *gin.Context) {
	org, ok := a.organization(c, auth.ManageOrganization)
	if !ok {
		return
	}
	paged(a, c,
		func(ctx context.Context, p store.Page) ([]store.Invitation, error) {
			return a.store.Invitations(ctx, org.ID, p)
		},
		func(v store.Invitation) any { return invitationView(v) },
		func(v store.Invitation) string { return v.ID })
}

type createInvitationRequest struct {
	Email string `json:"email"`
	Role  string `json:"role"`
}

func (a *API) createInvitation(c *gin.Context) {
	org, ok := a.organization(c, auth.ManageOrganization)
	if !ok {
		return
	}
	var req createInvitationRequest
	if !a.bind(c, &req) {
		return
	}
	var errs FieldErrors
	errs.Email("email", req.Email)
	errs.OneOf("role", req.Role, auth.Roles)
	if errs != nil {
		a.fail(c, errs)
		return
	}
	if req.Role == auth.RoleOwner && org.Role != auth.RoleOwner {
		a.fail(c, forbidden("only an owner may invite an owner"))
		return
	}
	token := auth.NewSecret(auth.InvitationPrefix)
	inv, err := a.store.CreateInvitation(c.Request.Context(), change(c), org, caller(c).admin.ID, req.Email, req.Role,
		store.HashSecret(token), invitationTTL)
	if err != nil {
		a.fail(c, err)
		return
	}
	v := invitationView(inv)
	v.Token = token
	c.JSON(http.StatusCreated, v)
}

func (a *API) revokeInvitation(c *gin.Context) {
	org, ok := a.organization(c, auth.ManageOrganization)
	if !ok {
		return
	}
	id, ok := a.uuidParam(c, "invitation_id")
	if !ok {
		return
	}
	if err := a.store.RevokeInvitation(c.Request.Context(), change(c), org, id); err != nil {
		a.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (a *API) auditLog(c *gin.Context) {
	org, ok := a.organization(c, auth.ManageOrganization)
	if !ok {
		return
	}
	var before int64
	limit, ok := a.pageParams(c, &before)
	if !ok {
		return
	}
	f := store.AuditFilter{Workspace: c.Query("workspace"), Action: c.Query("action"), BeforeID: before, Limit: limit + 1}
	var errs FieldErrors
	if f.Workspace != "" && !slugPattern.MatchString(f.Workspace) {
		errs.Add("workspace", "is not a workspace id")
	}
	if len(f.Action) > 100 {
		errs.Add("action", "is not an action (such as workspace.create)")
	}
	errs.Text("action", f.Action)
	if errs != nil {
		a.fail(c, errs)
		return
	}
	entries, err := a.store.AuditLog(c.Request.Context(), org.ID, f)
	if err != nil {
		a.fail(c, err)
		return
	}
	list(c, entries, limit, func(e store.AuditEntry) any { return auditView(e) }, func(e store.AuditEntry) any { return e.ID })
}
