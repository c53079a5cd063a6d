package api

import (
	"encoding/json"
	"time"

	"github.com/eddy-cdp/eddy/core/identity"
	"github.com/eddy-cdp/eddy/core/live"
	"github.com/eddy-cdp/eddy/core/store"
)

// Views are the JSON the API writes; openapi.yaml describes each.

type AdminJSON struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

func AdminView(a store.Admin) AdminJSON {
	return AdminJSON{ID: a.ID, Email: a.Email, Name: a.Name, CreatedAt: a.CreatedAt}
}

type OrganizationJSON struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Managed   bool      `json:"managed"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
}

func OrganizationView(o store.Organization) OrganizationJSON {
	return OrganizationJSON{ID: o.Slug, Name: o.Name, Managed: o.Managed, Role: o.Role, CreatedAt: o.CreatedAt}
}

type memberJSON struct {
	AdminID  string    `json:"admin_id"`
	Email    string    `json:"email"`
	Name     string    `json:"name"`
	Role     string    `json:"role"`
	JoinedAt time.Time `json:"joined_at"`
}

func memberView(m store.Member) memberJSON {
	return memberJSON{AdminID: m.AdminID, Email: m.Email, Name: m.Name, Role: m.Role, JoinedAt: m.JoinedAt}
}

type invitationJSON struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Role      string    `json:"role"`
	Status    string    `json:"status"`
	InvitedBy *string   `json:"invited_by"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// Token is set only in the response that creates the invitation.
	Token string `json:"token,omitempty"`
}

func invitationView(i store.Invitation) invitationJSON {
	return invitationJSON{ID: i.ID, Email: i.Email, Role: i.Role, Status: i.Status, InvitedBy: nullString(i.InvitedBy),
		CreatedAt: i.CreatedAt, ExpiresAt: i.ExpiresAt}
}

type WorkspaceJSON struct {
	ID             string         `json:"id"`
	OrganizationID string         `json:"organization_id"`
	Name           string         `json:"name"`
	Managed        bool           `json:"managed"`
	Settings       store.Settings `json:"settings"`
	CreatedAt      time.Time      `json:"created_at"`
	UpdatedAt      time.Time      `json:"updated_at"`
}

func WorkspaceView(w store.Workspace) WorkspaceJSON {
	return WorkspaceJSON{ID: w.Slug, OrganizationID: w.OrgSlug, Name: w.Name, Managed: w.Managed, Settings: w.Settings,
		CreatedAt: w.CreatedAt, UpdatedAt: w.UpdatedAt}
}

type SourceJSON struct {
	ID             string     `json:"id"`
	WorkspaceID    string     `json:"workspace_id"`
	Name           string     `json:"name"`
	Managed        bool       `json:"managed"`
	WriteKeyPrefix string     `json:"write_key_prefix"`
	RevokedAt      *time.Time `json:"revoked_at"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	// WriteKey is set only in the responses that create or rotate the key.
	WriteKey string `json:"write_key,omitempty"`
}

func SourceView(w store.Workspace, s store.Source) SourceJSON {
	return SourceJSON{ID: s.Slug, WorkspaceID: w.Slug, Name: s.Name, Managed: s.Managed, WriteKeyPrefix: s.WriteKeyPrefix,
		RevokedAt: nullTime(s.RevokedAt), CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt}
}

type APIKeyJSON struct {
	ID          string     `json:"id"`
	WorkspaceID string     `json:"workspace_id"`
	Name        string     `json:"name"`
	Prefix      string     `json:"prefix"`
	Scopes      []string   `json:"scopes"`
	CreatedBy   string     `json:"created_by"`
	CreatedAt   time.Time  `json:"created_at"`
	LastUsedAt  *time.Time `json:"last_used_at"`
	RevokedAt   *time.Time `json:"revoked_at"`
	// Key is set only in the response that creates the key.
	Key string `json:"key,omitempty"`
}

func APIKeyView(w store.Workspace, k store.APIKey) APIKeyJSON {
	return APIKeyJSON{ID: k.ID, WorkspaceID: w.Slug, Name: k.Name, Prefix: k.Prefix, Scopes: k.Scopes, CreatedBy: k.CreatedBy,
		CreatedAt: k.CreatedAt, LastUsedAt: nullTime(k.LastUsedAt), RevokedAt: nullTime(k.RevokedAt)}
}

type auditJSON struct {
	ID    string    `json:"id"`
	At    time.Time `json:"at"`
	Actor struct {
		Type  string  `json:"type"`
		ID    *string `json:"id"`
		Label string  `json:"label"`
	} `json:"actor"`
	Action string `json:"action"`
	Target struct {
		Type string `json:"type"`
		ID   string `json:"id"`
	} `json:"target"`
	WorkspaceID *string         `json:"workspace_id"`
	Before      json.RawMessage `json:"before"`
	After       json.RawMessage `json:"after"`
	RequestID   *string         `json:"request_id"`
	IP          *string         `json:"ip"`
}

func auditView(e store.AuditEntry) auditJSON {
	v := auditJSON{ID: jsonInt(e.ID), At: e.At, Action: e.Action, WorkspaceID: nullString(e.Workspace),
		Before: nullJSON(e.Before), After: nullJSON(e.After), RequestID: nullString(e.RequestID), IP: nullString(e.IP)}
	v.Actor.Type, v.Actor.ID, v.Actor.Label = e.ActorType, nullString(e.ActorID), e.ActorName
	v.Target.Type, v.Target.ID = e.TargetType, e.TargetID
	return v
}

type eventJSON struct {
	MessageID         string          `json:"message_id"`
	SourceID          *string         `json:"source_id"`
	Type              string          `json:"type"`
	Event             *string         `json:"event"`
	Name              *string         `json:"name"`
	AnonymousID       *string         `json:"anonymous_id"`
	UserID            *string         `json:"user_id"`
	GroupID           *string         `json:"group_id"`
	PreviousID        *string         `json:"previous_id"`
	Timestamp         time.Time       `json:"timestamp"`
	OriginalTimestamp *time.Time      `json:"original_timestamp"`
	SentAt            *time.Time      `json:"sent_at"`
	ReceivedAt        time.Time       `json:"received_at"`
	IP                *string         `json:"ip"`
	Properties        json.RawMessage `json:"properties"`
	Context           json.RawMessage `json:"context"`
	Traits            json.RawMessage `json:"traits"`
	Integrations      json.RawMessage `json:"integrations"`
}

func eventView(e store.StoredEvent) eventJSON {
	return eventJSON{MessageID: e.MessageID, SourceID: nullString(e.SourceSlug), Type: e.Type, Event: nullString(e.Event),
		Name: nullString(e.Name), AnonymousID: nullString(e.AnonymousID), UserID: nullString(e.UserID),
		GroupID: nullString(e.GroupID), PreviousID: nullString(e.PreviousID), Timestamp: e.Timestamp,
		OriginalTimestamp: nullTime(e.OriginalTimestamp), SentAt: nullTime(e.SentAt), ReceivedAt: e.ReceivedAt,
		IP: nullString(e.IP), Properties: nullJSON(e.Properties), Context: nullJSON(e.Context),
		Traits: nullJSON(e.Traits), Integrations: nullJSON(e.Integrations)}
}

func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// nullJSON writes absent JSON as null (a nil RawMessage would be an error).
func nullJSON(b json.RawMessage) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("null")
	}
	return b
}

func jsonInt(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// The session view is shared with the apps that receive session changes.
type sessionJSON = live.SessionView

func sessionView(s store.StoredSession) sessionJSON { return live.View(s) }

type lastOrderJSON struct {
	ID       string    `json:"id"`
	At       time.Time `json:"at"`
	Value    float64   `json:"value"`
	Currency string    `json:"currency"`
}

type profileIdentityJSON struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

type profileJSON struct {
	ID                string                     `json:"id"`
	UserID            *string                    `json:"user_id"`
	FirstSeen         *time.Time                 `json:"first_seen"`
	LastSeen          *time.Time                 `json:"last_seen"`
	SessionsCount     int64                      `json:"sessions_count"`
	OrdersCount       int64                      `json:"orders_count"`
	Revenue           float64                    `json:"revenue"`
	AverageOrderValue float64                    `json:"average_order_value"`
	LastOrder         *lastOrderJSON             `json:"last_order"`
	Traits            map[string]json.RawMessage `json:"traits"`
	Consent           map[string]bool            `json:"consent"`
	Identities        []profileIdentityJSON      `json:"identities"`
	// LiveSessions are the profile's open sessions; SessionsCount counts
	// the closed ones.
	LiveSessions []sessionJSON `json:"live_sessions"`
}

// profileView renders a profile with its open sessions.
func profileView(p identity.Profile, open []store.StoredSession) profileJSON {
	v := profileJSON{ID: p.ID, UserID: nullString(p.UserID), FirstSeen: nullTime(p.FirstSeen), LastSeen: nullTime(p.LastSeen),
		SessionsCount: p.Sessions, OrdersCount: p.Orders, Revenue: p.Revenue(), AverageOrderValue: p.AverageOrderValue(),
		Traits: make(map[string]json.RawMessage, len(p.Traits)), Consent: make(map[string]bool, len(p.Consent)),
		Identities: make([]profileIdentityJSON, len(p.Identities)), LiveSessions: make([]sessionJSON, len(open))}
	for i, s := range open {
		v.LiveSessions[i] = sessionView(s)
	}
	if o := p.LastOrder; o.ID != "" {
		v.LastOrder = &lastOrderJSON{ID: o.ID, At: o.At.UTC(), Value: o.Value, Currency: o.Currency}
	}
	for _, t := range p.Traits {
		v.Traits[t.Key] = nullJSON(t.Value)
	}
	for _, c := range p.Consent {
		v.Consent[c.Purpose] = c.Granted
	}
	for i, id := range p.Identities {
		v.Identities[i] = profileIdentityJSON{Kind: string(id.Kind), Value: id.Value}
	}
	return v
}
