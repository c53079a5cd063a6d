package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"

	"github.com/eddy-cdp/eddy/core/apierror"
	"github.com/eddy-cdp/eddy/core/auth"
	"github.com/eddy-cdp/eddy/core/store"
)

// principal is who is calling: an admin with a console session, or an API
// key acting on its workspace.
type principal struct {
	admin *store.Admin
	// session is the console session's token (from the cookie).
	session string

	key       *store.APIKey
	keySpace  store.Workspace
	keyLabel  string
	keyScopes []string

	// role is the admin's role in the organization of the workspace or
	// organization the request acts on, once access.go has found it.
	role string
}

// can tells whether the caller holds a permission on the workspace or
// organization the request acts on (after access.go resolved it).
func (p *principal) can(perm auth.Permission) bool {
	if p.key != nil {
		return auth.ScopesAllow(p.keyScopes, perm)
	}
	return auth.RoleAllows(p.role, perm)
}

func (p *principal) actor() store.Actor {
	if p.admin != nil {
		return store.Actor{Type: "admin", ID: p.admin.ID, Label: p.admin.Email}
	}
	return store.Actor{Type: "api_key", ID: p.key.ID, Label: p.keyLabel}
}

const (
	sessionCookie = "eddy_session"
	csrfHeader    = "X-CSRF-Token"
	// Sessions last at most sessionTTL, and end after sessionIdle unused.
	sessionTTL  = 7 * 24 * time.Hour
	sessionIdle = 24 * time.Hour
)

// findPrincipal authenticates the request, if it carries credentials: a
// bearer API key wins over a session cookie. It returns nil, nil for an
// anonymous request and an apierror for bad credentials.
func (a *API) findPrincipal(c *gin.Context) (*principal, error) {
	if h := c.GetHeader("Authorization"); h != "" {
		scheme, token, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Bearer") || token == "" {
			return nil, unauthenticated("Authorization must be \"Bearer <api key>\"")
		}
		k, ws, err := a.store.APIKeyByHash(c.Request.Context(), store.HashSecret(strings.TrimSpace(token)))
		if errors.Is(err, store.ErrNotFound) {
			return nil, unauthenticated("the API key is unknown or revoked")
		}
		if err != nil {
			return nil, err
		}
		return &principal{key: &k, keySpace: ws, keyLabel: k.Name + " (" + k.Prefix + "…)", keyScopes: k.Scopes}, nil
	}
	token, err := c.Cookie(sessionCookie)
	if err != nil || token == "" {
		return nil, nil
	}
	admin, err := a.store.SessionAdmin(c.Request.Context(), store.HashSecret(token), sessionIdle)
	if errors.Is(err, store.ErrNotFound) {
		return nil, unauthenticated("the session has ended; log in again")
	}
	if err != nil {
		return nil, err
	}
	return &principal{admin: &admin, session: token}, nil
}

func unauthenticated(msg string) *apierror.Error {
	return apierror.New(http.StatusUnauthorized, "unauthenticated", "%s", msg)
}

// authenticate requires a caller.
func (a *API) authenticate(c *gin.Context) {
	p, err := a.findPrincipal(c)
	if err != nil {
		a.fail(c, err)
		return
	}
	if p == nil {
		a.fail(c, unauthenticated("log in, or send Authorization: Bearer <api key>"))
		return
	}
	c.Set(ctxPrincipal, p)
}

// optionalAuth notes the caller when there is one.
func (a *API) optionalAuth(c *gin.Context) {
	p, err := a.findPrincipal(c)
	if err != nil {
		a.fail(c, err)
		return
	}
	if p != nil {
		c.Set(ctxPrincipal, p)
	}
}

func caller(c *gin.Context) *principal {
	p, _ := c.Get(ctxPrincipal)
	pr, _ := p.(*principal)
	return pr
}

// csrfToken derives a session's CSRF token from its session token: only the
// holder of the session (which the browser's HttpOnly cookie hides from
// scripts) can know it, and nothing more needs storing.
func csrfToken(session string) string {
	sum := sha256.Sum256([]byte("eddy csrf\x00" + session))
	return hex.EncodeToString(sum[:])
}

// checkCSRF requires, on writes authenticated by the session cookie, the
// X-CSRF-Token header that login and /auth/me hand out. API keys are not
// sent by browsers on their own, so bearer requests need none.
func (a *API) checkCSRF(c *gin.Context) {
	p := caller(c)
	switch c.Request.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return
	}
	if p == nil || p.admin == nil {
		return
	}
	got := c.GetHeader(csrfHeader)
	if subtle.ConstantTimeCompare([]byte(got), []byte(csrfToken(p.session))) != 1 {
		apierror.Abort(c, apierror.New(http.StatusForbidden, "csrf",
			"writes with the session cookie need the %s header from login or /auth/me", csrfHeader))
	}
}

// change describes the request as the origin of a change.
func change(c *gin.Context) store.Change {
	ch := store.Change{RequestID: c.GetString(ctxRequestID), IP: c.ClientIP()}
	if p := caller(c); p != nil {
		ch.Actor = p.actor()
	}
	return ch
}

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

func (a *API) login(c *gin.Context) {
	var req loginRequest
	if !a.bind(c, &req) {
		return
	}
	var errs FieldErrors
	errs.Require("email", req.Email)
	errs.Require("password", req.Password)
	if len(req.Email) > maxEmailLen {
		errs.Add("email", "must be at most %d characters", maxEmailLen)
	}
	errs.Text("email", req.Email)
	if len(req.Password) > 4*auth.MaxPasswordLen {
		errs.Add("password", "must be at most %d characters", auth.MaxPasswordLen)
	}
	if errs != nil {
		a.fail(c, errs)
		return
	}
	ctx := c.Request.Context()
	if wait := a.loginBlocked(ctx, req.Email, c.ClientIP()); wait > 0 {
		e := apierror.New(http.StatusTooManyRequests, "rate_limited", "too many failed logins; try again in %s", wait.Round(time.Second))
		e.RetryAfter = int(wait.Seconds() + 0.5)
		apierror.Abort(c, e)
		return
	}
	admin, hash, err := a.store.AdminByEmail(ctx, req.Email)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		a.fail(c, err)
		return
	}
	// CheckPassword spends the same time when the admin does not exist.
	if !auth.CheckPassword(req.Password, hash) {
		a.loginFailed(ctx, req.Email, c.ClientIP())
		a.fail(c, unauthenticated("wrong email or password"))
		return
	}
	a.loginSucceeded(ctx, req.Email)
	token := auth.NewSecret(auth.SessionPrefix)
	if err := a.store.CreateSession(ctx, store.HashSecret(token), admin.ID, sessionTTL); err != nil {
		a.fail(c, err)
		return
	}
	a.setSessionCookie(c, token, int(sessionTTL.Seconds()))
	c.JSON(http.StatusOK, gin.H{"admin": AdminView(admin), "csrf_token": csrfToken(token)})
}

func (a *API) setSessionCookie(c *gin.Context, token string, maxAge int) {
	c.SetSameSite(http.SameSiteLaxMode)
	c.SetCookie(sessionCookie, token, maxAge, "/", "", a.opts.SecureCookies || c.Request.TLS != nil, true)
}

func (a *API) logout(c *gin.Context) {
	p := caller(c)
	if p.admin == nil {
		a.fail(c, forbidden("logout ends a console session; an API key is revoked instead"))
		return
	}
	if err := a.store.DeleteSession(c.Request.Context(), store.HashSecret(p.session)); err != nil {
		a.fail(c, err)
		return
	}
	a.setSessionCookie(c, "", -1)
	c.Status(http.StatusNoContent)
}

func (a *API) me(c *gin.Context) {
	p := caller(c)
	if p.admin == nil {
		a.fail(c, forbidden("/auth/me describes a console session; an API key acts on workspace %s", p.keySpace.Slug))
		return
	}
	orgs, err := a.store.Organizations(c.Request.Context(), p.admin.ID, store.Page{Limit: maxOrganizationsInMe})
	if err != nil {
		a.fail(c, err)
		return
	}
	list := make([]gin.H, 0, len(orgs))
	for _, o := range orgs {
		list = append(list, gin.H{"id": o.Slug, "name": o.Name, "role": o.Role})
	}
	c.JSON(http.StatusOK, gin.H{"admin": AdminView(*p.admin), "organizations": list, "csrf_token": csrfToken(p.session)})
}

// maxOrganizationsInMe bounds /auth/me; GET /organizations pages through all.
const maxOrganizationsInMe = 200

// Failed-login limits live in Redis, so that every API process counts the
// same failures. Counters are per email (hashed: addresses are personal
// data) and per client address, in a fixed window.
func (a *API) loginKeys(email, ip string) (string, string) {
	sum := sha256.Sum256([]byte(strings.ToLower(email)))
	return a.opts.Prefix + ":login:email:" + hex.EncodeToString(sum[:16]), a.opts.Prefix + ":login:ip:" + ip
}

// loginBlocked returns how long logins for email or from ip are refused; 0
// when they are not. Without Redis, logins are not limited (the slow-down
// still applies): a Redis outage must not lock every admin out.
func (a *API) loginBlocked(ctx context.Context, email, ip string) time.Duration {
	ek, ik := a.loginKeys(email, ip)
	pipe := a.opts.Redis.Pipeline()
	eCount, iCount := pipe.Get(ctx, ek), pipe.Get(ctx, ik)
	eTTL, iTTL := pipe.PTTL(ctx, ek), pipe.PTTL(ctx, ik)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		a.log.WarnContext(ctx, "failed-login limits unavailable", "err", err)
		return 0
	}
	var wait time.Duration
	if n, _ := eCount.Int(); n >= a.opts.MaxLoginFailuresPerEmail {
		wait = max(wait, eTTL.Val())
	}
	if n, _ := iCount.Int(); n >= a.opts.MaxLoginFailuresPerIP {
		wait = max(wait, iTTL.Val())
	}
	return wait
}

// loginFailed counts a failure and then waits, longer with each failure for
// the same email, so that guessing gets slow long before it gets blocked.
func (a *API) loginFailed(ctx context.Context, email, ip string) {
	ek, ik := a.loginKeys(email, ip)
	pipe := a.opts.Redis.TxPipeline()
	eCount := pipe.Incr(ctx, ek)
	pipe.ExpireNX(ctx, ek, a.opts.LoginWindow)
	pipe.Incr(ctx, ik)
	pipe.ExpireNX(ctx, ik, a.opts.LoginWindow)
	fails := int64(1)
	if _, err := pipe.Exec(ctx); err != nil {
		a.log.WarnContext(ctx, "count failed login", "err", err)
	} else {
		fails = eCount.Val()
	}
	delay := a.opts.LoginDelay << min(fails-1, 16)
	t := time.NewTimer(min(delay, a.opts.MaxLoginDelay))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// loginSucceeded clears the email's failures.
func (a *API) loginSucceeded(ctx context.Context, email string) {
	ek, _ := a.loginKeys(email, "")
	if err := a.opts.Redis.Del(ctx, ek).Err(); err != nil {
		a.log.WarnContext(ctx, "clear failed logins", "err", err)
	}
}

type acceptRequest struct {
	Token    string `json:"token"`
	Name     string `json:"name"`
	Password string `json:"password"`
}

func (a *API) acceptInvitation(c *gin.Context) {
	var req acceptRequest
	if !a.bind(c, &req) {
		return
	}
	var errs FieldErrors
	errs.Require("token", req.Token)
	if len(req.Token) > 200 {
		errs.Add("token", "is not an invitation token")
	}
	var newAdmin *store.NewAdmin
	if req.Password != "" || req.Name != "" {
		errs.Name("name", req.Name)
		if err := auth.CheckPasswordPolicy(req.Password); err != nil {
			errs.Add("password", "%v", err)
		}
	}
	if errs != nil {
		a.fail(c, errs)
		return
	}
	if req.Password != "" {
		hash, err := auth.HashPassword(req.Password)
		if err != nil {
			a.fail(c, err)
			return
		}
		newAdmin = &store.NewAdmin{Name: req.Name, PasswordHash: hash}
	}
	callerID := ""
	if p := caller(c); p != nil && p.admin != nil {
		callerID = p.admin.ID
	}
	admin, org, err := a.store.AcceptInvitation(c.Request.Context(), change(c), store.HashSecret(req.Token), callerID, newAdmin)
	switch {
	case errors.Is(err, store.ErrNotFound):
		a.fail(c, apierror.New(http.StatusNotFound, "not_found", "the invitation is unknown, expired, revoked or already used"))
	case errors.Is(err, store.ErrWrongAdmin):
		a.fail(c, forbidden("the invitation is for an existing admin: log in as that admin to accept it"))
	case errors.Is(err, store.ErrNeedsAccount):
		a.fail(c, FieldErrors{{Field: "password", Message: "is required to create the invited admin's account (with name)"}})
	case err != nil:
		a.fail(c, fmt.Errorf("accept invitation: %w", err))
	default:
		c.JSON(http.StatusOK, gin.H{"admin": AdminView(admin), "organization": OrganizationView(org)})
	}
}
