package session

import (
	"time"

	"github.com/eddy-cdp/eddy/core/consent"
)

// Segment call types.
const (
	TypeTrack    = "track"
	TypePage     = "page"
	TypeScreen   = "screen"
	TypeIdentify = "identify"
	TypeGroup    = "group"
	TypeAlias    = "alias"
)

// Segment e-commerce (v2) event names the cart follows. The v1 names
// ("Added Product", "Removed Product", "Viewed Cart", "Completed Order")
// are accepted too.
const (
	ProductAdded   = "Product Added"
	ProductRemoved = "Product Removed"
	CartViewed     = "Cart Viewed"
	OrderCompleted = "Order Completed"
)

// Event is what the session engine needs of one message. FromEntry builds
// it from a stored entry; tests and replays may build it directly.
type Event struct {
	// WorkspaceID, MessageID and AnonymousID are required: sessions are per
	// workspace and device, and session ids derive from message ids.
	WorkspaceID string
	MessageID   string
	AnonymousID string
	// UserID is the user the event names, if any.
	UserID string
	// Type is the Segment call type (TypeTrack, TypePage, ...).
	Type string
	// Name is the track event's name, or the page or screen name.
	Name string
	// Timestamp is the corrected event time; sessions are cut on it.
	Timestamp time.Time
	// URL is the page's URL (context.page.url) and Referrer its referrer.
	URL      string
	Referrer string
	// Campaign holds the campaign parameters of the visit, if any.
	Campaign Campaign
	// UserAgent is context.userAgent; Device holds device facts the event
	// states itself (context.device.type, context.os.name), which win over
	// what the user agent says.
	UserAgent string
	Device    Device
	// Location is context.location and the client IP.
	Location Location
	// Products is the product of Product Added or Product Removed, or the
	// products of Cart Viewed or Order Completed.
	Products []Product
	// OrderID, Total and Currency describe an Order Completed.
	OrderID  string
	Total    float64
	Currency string
	// Consent is the consent the event states (its
	// context.consent.categoryPreferences), nil when it states none; an
	// empty, non-nil map states that nothing but necessary is granted. The
	// engine reads it and never modifies it.
	Consent consent.Preferences
}

// Campaign holds the campaign parameters of a visit: the utm_* values and
// an ad click id.
type Campaign struct {
	Source  string // utm_source
	Medium  string // utm_medium
	Name    string // utm_campaign
	Term    string // utm_term
	Content string // utm_content
	// ClickIDParam names the click id ("gclid", "fbclid", ...) and ClickID
	// is its value, kept for conversion uploads to the ad network.
	ClickIDParam string
	ClickID      string
}

// ClickIDParams are the ad click ids read from page URLs, in the order in
// which one is chosen when a URL has several.
var ClickIDParams = []string{"gclid", "wbraid", "gbraid", "dclid", "msclkid", "fbclid", "ttclid", "twclid", "li_fat_id"}

// IsZero reports whether c has no campaign parameter.
func (c Campaign) IsZero() bool { return c == Campaign{} }

// same reports whether two visits belong to the same campaign: equal utm
// values, and equal click ids when both carry one (a later page of the
// visit often has the utm values but no longer the click id).
func (c Campaign) same(o Campaign) bool {
	if c.Source != o.Source || c.Medium != o.Medium || c.Name != o.Name || c.Term != o.Term || c.Content != o.Content {
		return false
	}
	return c.ClickIDParam == "" || o.ClickIDParam == "" || c.ClickIDParam == o.ClickIDParam && c.ClickID == o.ClickID
}

// cut returns c with every value cut to MaxTextBytes, without copying.
func (c Campaign) cut() Campaign {
	for _, f := range []*string{&c.Source, &c.Medium, &c.Name, &c.Term, &c.Content, &c.ClickIDParam, &c.ClickID} {
		*f = cut(*f, MaxTextBytes)
	}
	return c
}

// kept returns the copy of c a session keeps: utm values interned, the
// click id (unique per click) copied.
func (c Campaign) kept() Campaign {
	return Campaign{
		Source:       intern(c.Source),
		Medium:       intern(c.Medium),
		Name:         intern(c.Name),
		Term:         intern(c.Term),
		Content:      intern(c.Content),
		ClickIDParam: intern(c.ClickIDParam),
		ClickID:      clip(c.ClickID, MaxTextBytes),
	}
}

// Location is where the visitor was, as the event says.
type Location struct {
	Country string
	City    string
	// IP is context.ip when the client set it, else the address the
	// collector saw; kept as is.
	IP string
}

func (l Location) kept() Location {
	return Location{Country: intern(l.Country), City: intern(l.City), IP: clip(l.IP, MaxTextBytes)}
}

// Product is one product of an e-commerce event.
type Product struct {
	ID       string // product_id
	SKU      string
	Name     string
	Price    float64
	Quantity int // 0 is read as 1
}
