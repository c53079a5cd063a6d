package session

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/eddy-cdp/eddy/core/consent"
	"github.com/eddy-cdp/eddy/core/event"
)

// FromEntry builds the Event of a stored entry, decoding from its JSON only
// what sessions need:
//
//   - ids, type and the corrected time from the entry; anonymousId, userId,
//     event (track) or name (page, screen) from the message;
//   - the context: the batch's context under the message's, the message's
//     top-level keys winning as in storage; page.url, page.referrer and
//     page.search (for page calls properties.url, referrer and search when
//     the context has none), userAgent, device.type (device.model iPad…
//     means a tablet), os.name, location.country and city, ip (else the
//     address the collector saw);
//   - the campaign: utm values from context.campaign (Segment's name is
//     utm_campaign), or when it is absent from the page's query string;
//     an ad click id (gclid, fbclid... see ClickIDParams) from the query;
//   - e-commerce: product_id, sku, name, price, quantity of Product Added
//     and Removed; properties.products of Cart Viewed and Order Completed;
//     order_id, total (else revenue) and currency of Order Completed;
//   - consent: context.consent.categoryPreferences, as the consent gate
//     left it (see consentOf).
//
// A property or context field of an unexpected JSON type reads as absent
// rather than failing: the event still counts in its session. An event
// without anonymousId gets an empty AnonymousID; it has no device to be
// sessionized on, and the caller skips it.
func FromEntry(en *event.Entry) (Event, error) {
	var m message
	if err := decodeMessage(en.Payload, &m); err != nil {
		return Event{}, fmt.Errorf("decode message %s: %w", en.MessageID, err)
	}
	ctx := m.Context
	if len(en.Context) > 0 {
		var batch messageContext
		if err := decodeContext(en.Context, &batch); err != nil {
			return Event{}, fmt.Errorf("decode batch context of message %s: %w", en.MessageID, err)
		}
		ctx = ctx.over(batch)
	}
	e := Event{
		WorkspaceID: en.WorkspaceID,
		MessageID:   en.MessageID,
		AnonymousID: string(m.AnonymousID),
		UserID:      string(m.UserID),
		Type:        en.Type,
		Name:        string(m.Name),
		Timestamp:   en.Timestamp.UTC(),
		UserAgent:   deref(ctx.UserAgent),
		Location:    Location{IP: deref(ctx.IP)},
	}
	if l := ctx.Location; l != nil {
		e.Location.Country, e.Location.City = l.Country, l.City
	}
	if en.Type == TypeTrack {
		e.Name = string(m.Event)
	}
	e.Consent = consentOf(ctx.Consent)
	if e.Location.IP == "" {
		e.Location.IP = en.IP
	}

	props := &m.Properties
	var search string
	if p := ctx.Page; p != nil {
		e.URL, e.Referrer, search = p.URL, p.Referrer, p.Search
	}
	if en.Type == TypePage {
		e.URL = first(e.URL, string(props.URL))
		e.Referrer = first(e.Referrer, string(props.Referrer))
		search = first(search, string(props.Search))
	}
	if c := ctx.Campaign; c != nil {
		e.Campaign = Campaign{Source: c.Source, Medium: c.Medium, Name: c.Name, Term: c.Term, Content: c.Content}
	}
	if search == "" {
		if _, q, ok := strings.Cut(e.URL, "?"); ok {
			search, _, _ = strings.Cut(q, "#")
		}
	}
	readQuery(strings.TrimPrefix(search, "?"), &e.Campaign, ctx.Campaign == nil)

	if d := ctx.Device; d != nil {
		e.Device.Type = DeviceType(d.Type)
		if strings.HasPrefix(d.Model, "iPad") {
			e.Device.Type = Tablet
		}
	}
	if os := ctx.OS; os != nil {
		e.Device.OS = os.Name
	}

	switch e.Name {
	case ProductAdded, ProductRemoved, "Added Product", "Removed Product":
		e.Products = []Product{props.product.product()}
	case CartViewed, OrderCompleted, "Viewed Cart", "Completed Order":
		var list []product
		if len(props.Products) > 0 && event.Decode(props.Products, &list) == nil {
			e.Products = make([]Product, len(list))
			for i := range list {
				e.Products[i] = list[i].product()
			}
		}
		e.OrderID, e.Currency = string(props.OrderID), string(props.Currency)
		e.Total = float64(props.Revenue)
		if props.Total != nil {
			e.Total = float64(*props.Total)
		}
	}
	return e, nil
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// readQuery fills c from a query string: the first click id by
// ClickIDParams' order, and the utm values when withUTM.
func readQuery(q string, c *Campaign, withUTM bool) {
	rank := len(ClickIDParams)
	for q != "" {
		var kv string
		kv, q, _ = strings.Cut(q, "&")
		k, v, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "utm_") && !strings.Contains(k, "clid") && !strings.Contains(k, "braid") && k != "li_fat_id" {
			continue // the common case: no unescaping, no allocation
		}
		if u, err := url.QueryUnescape(v); err == nil {
			v = u
		}
		var field *string
		switch k {
		case "utm_source":
			field = &c.Source
		case "utm_medium":
			field = &c.Medium
		case "utm_campaign":
			field = &c.Name
		case "utm_term":
			field = &c.Term
		case "utm_content":
			field = &c.Content
		}
		switch {
		case field != nil:
			if withUTM {
				*field = v
			}
		default:
			for i, p := range ClickIDParams[:rank] {
				if k == p && v != "" {
					c.ClickIDParam, c.ClickID, rank = p, v, i
					break
				}
			}
		}
	}
}

// The JSON shapes FromEntry reads.
type (
	message struct {
		AnonymousID event.ID       `json:"anonymousId"`
		UserID      event.ID       `json:"userId"`
		Event       text           `json:"event"`
		Name        text           `json:"name"`
		Properties  properties     `json:"properties"`
		Context     messageContext `json:"context"`
	}
	properties struct {
		product
		URL      text            `json:"url"`
		Referrer text            `json:"referrer"`
		Search   text            `json:"search"`
		Products json.RawMessage `json:"products"`
		OrderID  text            `json:"order_id"`
		Total    *number         `json:"total"`
		Revenue  number          `json:"revenue"`
		Currency text            `json:"currency"`
	}
	product struct {
		ProductID text   `json:"product_id"`
		SKU       text   `json:"sku"`
		Name      text   `json:"name"`
		Price     number `json:"price"`
		Quantity  number `json:"quantity"`
	}
	// The context is written by SDKs: its values have the expected types
	// but for rare odd clients, which decodeContext handles.
	messageContext struct {
		Page      *pageContext     `json:"page"`
		Campaign  *campaignContext `json:"campaign"`
		UserAgent *string          `json:"userAgent"`
		Device    *deviceContext   `json:"device"`
		OS        *osContext       `json:"os"`
		Location  *locationContext `json:"location"`
		IP        *string          `json:"ip"`
		// Consent is kept raw and read by consentOf: an odd consent object
		// must not cost the rest of the context.
		Consent json.RawMessage `json:"consent"`
	}
	pageContext struct {
		URL      string `json:"url"`
		Referrer string `json:"referrer"`
		Search   string `json:"search"`
	}
	campaignContext struct {
		Source  string `json:"source"`
		Medium  string `json:"medium"`
		Name    string `json:"name"`
		Term    string `json:"term"`
		Content string `json:"content"`
	}
	deviceContext struct {
		Type  string `json:"type"`
		Model string `json:"model"`
	}
	osContext struct {
		Name string `json:"name"`
	}
	locationContext struct {
		Country string `json:"country"`
		City    string `json:"city"`
	}
)

func (p product) product() Product {
	return Product{
		ID:       string(p.ProductID),
		SKU:      string(p.SKU),
		Name:     string(p.Name),
		Price:    float64(p.Price),
		Quantity: int(p.Quantity),
	}
}

// over lays c over the batch's context b: c's top-level keys win.
func (c messageContext) over(b messageContext) messageContext {
	if c.Page == nil {
		c.Page = b.Page
	}
	if c.Campaign == nil {
		c.Campaign = b.Campaign
	}
	if c.UserAgent == nil {
		c.UserAgent = b.UserAgent
	}
	if c.Device == nil {
		c.Device = b.Device
	}
	if c.OS == nil {
		c.OS = b.OS
	}
	if c.Location == nil {
		c.Location = b.Location
	}
	if c.IP == nil {
		c.IP = b.IP
	}
	if c.Consent == nil {
		c.Consent = b.Consent
	}
	return c
}

// consentOf reads the preferences of a context.consent object as
// consent.Parse would, leniently: the consent gate has accepted the message
// and written its effective consent there, so only the valid purposes'
// true and false values are kept. It returns nil when the object states no
// preferences (null, not an object, no categoryPreferences), and an empty
// map when categoryPreferences is an object that grants nothing: that
// withdraws every purpose, which must not read as "unknown".
func consentOf(raw json.RawMessage) consent.Preferences {
	if len(raw) == 0 {
		return nil
	}
	var c struct {
		CategoryPreferences consent.Preferences `json:"categoryPreferences"`
	}
	if event.Decode(raw, &c) == nil { // the usual case: only booleans, as the gate writes them
		for purpose := range c.CategoryPreferences {
			if !consent.ValidPurpose(purpose) {
				delete(c.CategoryPreferences, purpose)
			}
		}
		return c.CategoryPreferences
	}
	if prefs := consent.Lenient(raw); prefs != nil {
		return prefs
	}
	var loose struct {
		CategoryPreferences json.RawMessage `json:"categoryPreferences"`
	}
	if event.Decode(raw, &loose) == nil {
		if cp := bytes.TrimSpace(loose.CategoryPreferences); len(cp) > 0 && cp[0] == '{' {
			return consent.Preferences{} // no valid purpose with a boolean: nothing granted
		}
	}
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// decodeMessage decodes a message. Properties' values decode whatever
// their type (text, number); when a context value has an odd type (a page
// that is not an object...), the context is decoded key by key and what
// does not fit reads as absent, so the event still counts in its session.
func decodeMessage(b []byte, m *message) error {
	if event.Decode(b, m) == nil {
		return nil
	}
	var loose struct {
		message
		Context map[string]json.RawMessage `json:"context"`
	}
	if err := event.Decode(b, &loose); err != nil {
		return err
	}
	*m = loose.message
	m.Context = looseContext(loose.Context)
	return nil
}

// decodeContext decodes a batch's context like decodeMessage.
func decodeContext(b []byte, c *messageContext) error {
	if event.Decode(b, c) == nil {
		return nil
	}
	var loose map[string]json.RawMessage
	if err := event.Decode(b, &loose); err != nil {
		return err
	}
	*c = looseContext(loose)
	return nil
}

func looseContext(raw map[string]json.RawMessage) messageContext {
	var c messageContext
	fit(raw["page"], &c.Page)
	fit(raw["campaign"], &c.Campaign)
	fit(raw["userAgent"], &c.UserAgent)
	fit(raw["device"], &c.Device)
	fit(raw["os"], &c.OS)
	fit(raw["location"], &c.Location)
	fit(raw["ip"], &c.IP)
	c.Consent = raw["consent"]
	return c
}

// fit sets *dst to the value raw holds when it has the type T.
func fit[T any](raw json.RawMessage, dst **T) {
	var v T
	if len(raw) > 0 && string(raw) != "null" && event.Decode(raw, &v) == nil {
		*dst = &v
	}
}

// text decodes a JSON string, or a number as its text; anything else
// reads as "".
type text string

func (t *text) UnmarshalJSON(b []byte) error {
	switch {
	case len(b) > 1 && b[0] == '"' && bytes.IndexByte(b, '\\') < 0:
		*t = text(b[1 : len(b)-1]) // no escape: the common case, without a decoder
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*t = text(s)
	case len(b) > 0 && (b[0] == '-' || '0' <= b[0] && b[0] <= '9'):
		*t = text(b)
	default:
		*t = ""
	}
	return nil
}

// number decodes a JSON number or a numeric string; anything else reads
// as 0.
type number float64

func (n *number) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		f = 0
	}
	*n = number(f)
	return nil
}
