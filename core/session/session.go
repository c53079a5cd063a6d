package session

import (
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/eddy-cdp/eddy/core/consent"
)

// Session is one visit of a device: the state the engine keeps and the
// copy a Change carries.
type Session struct {
	// ID is derived from the session's earliest event (see ID).
	ID          ID
	WorkspaceID string
	AnonymousID string
	// UserID is the user id of the session's latest event that had one.
	UserID string
	// ProfileID is the identity profile, filled by the caller through
	// Visitor.SetProfileID; the engine only carries it.
	ProfileID string
	// Consent is the consent of the session's latest event that stated one
	// (Event.Consent), nil while none did: an event without consent leaves
	// it as it is, and a late event never overrides a later one's. An empty
	// map grants nothing but necessary. It holds at most
	// consent.MaxMessagePurposes valid purposes, the first by name when an
	// event stated more (a purpose left out is not granted). The map is
	// shared between sessions: read it, never modify it.
	Consent consent.Preferences
	// Start is the time of the earliest event, LastEvent of the latest.
	Start     time.Time
	LastEvent time.Time
	// Events counts the events; PageViews the page and screen calls.
	Events    int
	PageViews int
	// LandingPage is the URL of the earliest page view (a screen's name for
	// screen calls), CurrentPage the latest's, ExitPage the CurrentPage of a
	// closed session. Referrer is the landing page view's referrer. All are
	// cut to MaxURLBytes.
	LandingPage string
	CurrentPage string
	ExitPage    string
	Referrer    string
	// Campaign holds the campaign parameters the session started with and
	// Channel the grouping derived from them and the referrer.
	Campaign Campaign
	Channel  Channel
	// Device and Location are those of the earliest event that had them.
	Device   Device
	Location Location
	// Cart is the cart as of the session's latest e-commerce event.
	Cart Cart
	// Orders lists the first MaxOrders orders by time; OrderCount counts
	// them all, an order id counting once.
	Orders     []Order
	OrderCount int
	// Bounced is decided when the session closes: exactly one page view and
	// no track event. It is false while the session is open.
	Bounced bool
	// Closed is set when the session closes; it then changes no more.
	Closed bool

	interactions int   // track events
	revenue      int64 // millionths, see toMicros
	startOrd     uint64
	landingAt    mark
	currentAt    mark
	sourceAt     mark   // the event that set Campaign and refHost
	refHost      string // the external referrer host of that event
	userAt       mark
	consentAt    mark // set exactly when Consent is not nil
	deviceAt     mark
	locationAt   mark
}

// Duration is the time from the first to the last event.
func (s *Session) Duration() time.Duration { return s.LastEvent.Sub(s.Start) }

// Converted reports whether the session has an order.
func (s *Session) Converted() bool { return s.OrderCount > 0 }

// Revenue is the sum of the orders' totals (Order Completed's total, else
// its revenue), whatever their currency: converting is the caller's job.
func (s *Session) Revenue() float64 { return fromMicros(s.revenue) }

// copy returns s with its slices copied, safe to hand to another goroutine.
func (s *Session) copy() Session {
	c := *s
	c.Cart = s.Cart.clone()
	c.Orders = slices.Clone(s.Orders)
	return c
}

// ID identifies a session. It has the layout of a UUIDv7 so that ids sort
// by start time and index well: the first 48 bits are the Unix time in
// milliseconds of the session's earliest event, the other 74 free bits
// come from SHA-256(workspace id, anonymous id, message id of that event).
//
// The id is thus reproducible: replaying the same events rebuilds the same
// ids, in any order, which is how a worker that takes over a shard rebuilds
// its sessions. Ties between events at the same instant are broken by a
// hash of their message ids. The flip side: when a late event becomes a
// session's earliest, the id changes (reported as a merge, see Merged).
type ID [16]byte

func newID(workspaceID, anonymousID, messageID string, t time.Time) ID {
	h := sha256.New()
	for _, s := range []string{workspaceID, anonymousID, messageID} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	var id ID
	ms := max(t.UnixMilli(), 0)
	binary.BigEndian.PutUint64(id[0:8], uint64(ms)<<16)
	id[6] = 0x70 | sum[0]&0x0f
	id[7] = sum[1]
	id[8] = 0x80 | sum[2]&0x3f
	copy(id[9:], sum[3:10])
	return id
}

// String returns the id in the canonical UUID form.
func (id ID) String() string { return uuid.UUID(id).String() }

// MarshalText writes the canonical UUID form.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// IsZero reports whether id is the zero id.
func (id ID) IsZero() bool { return id == ID{} }

// mark places an event in a visitor's total order: by time, then by a hash
// of the message id, so that every choice made "by the earliest" or "by the
// latest" event gives the same answer whatever the arrival order.
type mark struct {
	at  int64  // Unix nanoseconds
	ord uint64 // never 0 for a real event: 0 means unset
}

func markOf(e *Event) mark {
	// FNV-1a, inline: hash/fnv would allocate on every event.
	h := uint64(14695981039346656037)
	for i := 0; i < len(e.MessageID); i++ {
		h ^= uint64(e.MessageID[i])
		h *= 1099511628211
	}
	return mark{at: e.Timestamp.UnixNano(), ord: h | 1}
}

func (m mark) set() bool { return m.ord != 0 }

// before reports whether m comes before o; an unset mark comes before all.
func (m mark) before(o mark) bool {
	return m.at < o.at || m.at == o.at && m.ord < o.ord
}

// ChangeKind says what happened to a session.
type ChangeKind int

// The changes a Visitor reports.
const (
	// Started: a new session.
	Started ChangeKind = iota + 1
	// Updated: an event joined the session.
	Updated
	// Merged: the session absorbed another, whose id (Change.Absorbed) no
	// longer exists: an event bridged the gap between two sessions, or a
	// late event became the session's earliest and so changed its id (as
	// though the late event had started a session that absorbed the old).
	Merged
	// Closed: the session ended; its state is final.
	Closed
)

func (k ChangeKind) String() string {
	switch k {
	case Started:
		return "started"
	case Updated:
		return "updated"
	case Merged:
		return "merged"
	case Closed:
		return "closed"
	}
	return "unknown"
}

// Change is one change of a session, with a copy of its state after it.
type Change struct {
	Kind    ChangeKind
	Session Session
	// Absorbed is the id of the session that Merged removed.
	Absorbed ID
}
