package api

import (
	"errors"

	"github.com/gin-gonic/gin"

	"github.com/eddy-cdp/eddy/core/auth"
	"github.com/eddy-cdp/eddy/core/store"
)

// organization resolves the :org of the path for the caller and checks perm.
// An organization the caller is not a member of is "not found", exactly as
// one that does not exist; API keys never reach organizations.
func (a *API) organization(c *gin.Context, perm auth.Permission) (store.Organization, bool) {
	p := caller(c)
	slug, ok := a.slugParam(c, "org")
	if !ok {
		return store.Organization{}, false
	}
	if p.admin == nil {
		a.fail(c, keysStayInTheirWorkspace())
		return store.Organization{}, false
	}
	org, err := a.store.MemberOrganization(c.Request.Context(), p.admin.ID, slug)
	if err != nil {
		a.fail(c, err)
		return org, false
	}
	p.role = org.Role
	if !auth.RoleAllows(org.Role, perm) {
		a.fail(c, forbidden("your role in %s (%s) does not allow this", org.Slug, org.Role))
		return org, false
	}
	return org, true
}

// workspace resolves the :ws of the path for the caller and checks perm. A
// workspace beyond the caller's reach (another workspace than an API key's,
// or of an organization the admin is not in) is "not found".
func (a *API) workspace(c *gin.Context, perm auth.Permission) (store.Workspace, bool) {
	p := caller(c)
	slug, ok := a.slugParam(c, "ws")
	if !ok {
		return store.Workspace{}, false
	}
	if p.key != nil {
		if slug != p.keySpace.Slug {
			a.fail(c, store.ErrNotFound)
			return store.Workspace{}, false
		}
		if !auth.ScopesAllow(p.keyScopes, perm) {
			a.fail(c, forbidden("this API key's scopes (%v) do not allow this", p.keyScopes))
			return store.Workspace{}, false
		}
		return p.keySpace, true
	}
	ctx := c.Request.Context()
	ws, err := a.store.WorkspaceBySlug(ctx, slug)
	if err != nil {
		a.fail(c, err)
		return ws, false
	}
	m, err := a.store.Member(ctx, ws.OrgID, p.admin.ID)
	if errors.Is(err, store.ErrNotFound) {
		a.fail(c, store.ErrNotFound)
		return ws, false
	}
	if err != nil {
		a.fail(c, err)
		return ws, false
	}
	p.role = m.Role
	if !auth.RoleAllows(m.Role, perm) {
		a.fail(c, forbidden("your role in %s (%s) does not allow this", ws.OrgSlug, m.Role))
		return ws, false
	}
	return ws, true
}

// keysStayInTheirWorkspace is the answer to an API key on an organization
// route.
func keysStayInTheirWorkspace() error {
	return forbidden("API keys act on their workspace only; organization routes need an admin session")
}
