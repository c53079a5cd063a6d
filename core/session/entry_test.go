package session

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/eddy-cdp/eddy/core/consent"
	"github.com/eddy-cdp/eddy/core/event"
)

// entryOf wraps a message of testdata/ in an Entry as the collector makes
// them: ids, type and corrected time outside, the client's JSON inside.
func entryOf(t *testing.T, file, batchContext string) *event.Entry {
	t.Helper()
	payload, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	var head struct{ Type, MessageID string }
	if err := json.Unmarshal(payload, &head); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	en := &event.Entry{WorkspaceID: testWS, SourceID: "src-1", MessageID: head.MessageID, Type: head.Type, Timestamp: t0, IP: "192.0.2.99", Payload: payload}
	if batchContext != "" {
		if en.Context, err = os.ReadFile(filepath.Join("testdata", batchContext)); err != nil {
			t.Fatal(err)
		}
	}
	return en
}

func TestFromEntry(t *testing.T) {
	base := func(id, typ, anon string) Event {
		return Event{WorkspaceID: testWS, MessageID: id, AnonymousID: anon, Type: typ, Timestamp: t0, Location: Location{IP: "192.0.2.99"}}
	}
	tests := []struct {
		file, batch string
		want        func(e *Event)
	}{
		{"page_campaign.json", "", func(e *Event) {
			*e = base("ajs-next-1", TypePage, "a1b2c3")
			e.Name = "Home"
			e.URL = "https://shop.com/?utm_source=google&utm_medium=cpc&utm_campaign=spring&gclid=Cj0KCQ"
			e.Referrer = "https://www.google.com/"
			e.Campaign = Campaign{Source: "google", Medium: "cpc", Name: "spring", Term: "running shoes", Content: "ad-1", ClickIDParam: "gclid", ClickID: "Cj0KCQ"}
			e.UserAgent = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15"
			e.Location = Location{Country: "France", City: "Lyon", IP: "203.0.113.7"}
		}},
		{"page_query.json", "", func(e *Event) {
			*e = base("m-2", TypePage, "a1b2c3")
			e.URL = "https://shop.com/sale?fbclid=IwAR3x&utm_source=facebook&utm_medium=paid_social&utm_campaign=spring%20sale#top"
			e.Referrer = "https://l.facebook.com/"
			e.Campaign = Campaign{Source: "facebook", Medium: "paid_social", Name: "spring sale", ClickIDParam: "fbclid", ClickID: "IwAR3x"}
			e.UserAgent = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36"
		}},
		{"product_added.json", "", func(e *Event) {
			*e = base("m-3", TypeTrack, "a1b2c3")
			e.Name, e.UserID = ProductAdded, "42"
			e.URL, e.Referrer = "https://shop.com/products/monopoly", "https://shop.com/"
			e.Products = []Product{{ID: "507", SKU: "G-32", Name: "Monopoly: 3rd Edition", Price: 18.99, Quantity: 2}}
		}},
		{"cart_viewed.json", "", func(e *Event) {
			*e = base("m-4", TypeTrack, "a1b2c3")
			e.Name = CartViewed
			e.Products = []Product{
				{ID: "507", SKU: "G-32", Name: "Monopoly: 3rd Edition", Price: 18.99, Quantity: 1},
				{ID: "505", SKU: "P-12", Name: "Uno Card Game", Price: 3.5},
			}
		}},
		{"order_completed.json", "", func(e *Event) {
			*e = base("m-5", TypeTrack, "a1b2c3")
			e.Name, e.UserID = OrderCompleted, "u-42"
			e.OrderID, e.Total, e.Currency = "50314b8e9bcf000000000000", 27.5, "USD"
			e.Products = []Product{
				{ID: "507f1f77bcf86cd799439011", SKU: "45790-32", Name: "Monopoly: 3rd Edition", Price: 19, Quantity: 1},
				{ID: "505bd76785ebb509fc183733", SKU: "46493-32", Name: "Uno Card Game", Price: 3.5, Quantity: 1},
			}
		}},
		{"order_revenue_only.json", "", func(e *Event) {
			*e = base("m-6", TypeTrack, "a1b2c3")
			e.Name = OrderCompleted
			e.OrderID, e.Total, e.Currency = "o-7", 12.5, "EUR"
		}},
		{"screen_ios.json", "", func(e *Event) {
			*e = base("m-7", TypeScreen, "D8A1B5C0-6F3E-4C6A-9B1E-2F7A1C3D4E5F")
			e.Name = "Product Detail"
			e.Device = Device{Type: Tablet, OS: "iPadOS"}
			e.Location.IP = "198.51.100.4"
		}},
		{"identify_odd_types.json", "", func(e *Event) {
			*e = base("m-8", TypeIdentify, "")
			e.UserID = "u-42"
		}},
		{"page_consent.json", "", func(e *Event) {
			*e = base("ajs-next-2", TypePage, "a1b2c3")
			e.Name = "Home"
			e.URL = "https://shop.com/?utm_source=google&utm_medium=cpc&utm_campaign=spring&gclid=Cj0KCQ"
			e.Referrer = "https://www.google.com/"
			e.Campaign = Campaign{Source: "google", Medium: "cpc", Name: "spring", Term: "running shoes", Content: "ad-1", ClickIDParam: "gclid", ClickID: "Cj0KCQ"}
			e.UserAgent = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15"
			e.Location = Location{Country: "France", City: "Lyon", IP: "203.0.113.7"}
			e.Consent = consent.Preferences{"analytics": true, "marketing": false, "personalization": true}
		}},
		{"message_context.json", "batch_context.json", func(e *Event) {
			*e = base("m-9", TypePage, "a1b2c3")
			e.URL = "https://shop.com/from-message" // the message's page wins whole: no referrer
			e.UserAgent = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
			e.Location.IP = "192.0.2.1"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := FromEntry(entryOf(t, tt.file, tt.batch))
			if err != nil {
				t.Fatal(err)
			}
			var want Event
			tt.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("FromEntry =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

// FromEntry reads consent as consent.Parse does (the message's context key
// wins over the batch's, even when null), leniently: what the gate left
// is read, an odd value reads as no consent and costs nothing else.
func TestFromEntryConsent(t *testing.T) {
	const prefs = `{"categoryPreferences":{"analytics":true,"marketing":false}}`
	want := consent.Preferences{"analytics": true, "marketing": false}
	tests := []struct {
		name, context, batch string
		want                 consent.Preferences
	}{
		{"none", `{"ip":"203.0.113.1"}`, "", nil},
		{"in the message", `{"consent":` + prefs + `}`, "", want},
		{"in the batch", `{"ip":"203.0.113.1"}`, `{"consent":` + prefs + `}`, want},
		{"the message's wins", `{"consent":{"categoryPreferences":{"analytics":false}}}`, `{"consent":` + prefs + `}`, consent.Preferences{"analytics": false}},
		{"the message's null hides the batch's", `{"consent":null}`, `{"consent":` + prefs + `}`, nil},
		{"empty: everything withdrawn", `{"consent":{"categoryPreferences":{}}}`, "", consent.Preferences{}},
		{"no valid purpose: everything withdrawn", `{"consent":{"categoryPreferences":{"Bad Name":true,"x":"yes"}}}`, "", consent.Preferences{}},
		{"invalid purposes and values dropped", `{"consent":{"categoryPreferences":{"analytics":true,"marketing":false,"Bad":true,"ads":1}}}`, "", want},
		{"no categoryPreferences", `{"consent":{"other":1}}`, "", nil},
		{"null categoryPreferences", `{"consent":{"categoryPreferences":null}}`, "", nil},
		{"categoryPreferences not an object", `{"consent":{"categoryPreferences":[true]}}`, "", nil},
		{"consent not an object", `{"consent":"yes"}`, "", nil},
		{"beside an odd context value", `{"page":"not an object","consent":` + prefs + `}`, "", want},
		{"in an odd batch context", `{}`, `{"page":1,"consent":` + prefs + `}`, want},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload := `{"type":"track","event":"Clicked","messageId":"m-1","anonymousId":"a1","context":` + tt.context + `}`
			en := &event.Entry{WorkspaceID: testWS, MessageID: "m-1", Type: TypeTrack, Timestamp: t0, Payload: []byte(payload)}
			if tt.batch != "" {
				en.Context = []byte(tt.batch)
			}
			e, err := FromEntry(en)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(e.Consent, tt.want) {
				t.Fatalf("consent %v (nil: %v), want %v (nil: %v)", e.Consent, e.Consent == nil, tt.want, tt.want == nil)
			}
			// Where consent.Parse accepts the message, both read the same.
			if prefs, present, err := consent.Parse(en.Payload, en.Context); err == nil {
				if !present {
					prefs = nil
				}
				if !reflect.DeepEqual(e.Consent, prefs) {
					t.Fatalf("consent %v, consent.Parse reads %v (present: %v)", e.Consent, prefs, present)
				}
			}
			if e.Name != "Clicked" || e.AnonymousID != "a1" {
				t.Fatalf("the rest of the event was not read: %+v", e)
			}
		})
	}
}

func TestFromEntryRefusesMalformedJSON(t *testing.T) {
	for _, tt := range []struct{ payload, context string }{
		{`{"type":"page",`, ""},
		{`{"type":"page"}`, `[1]`},
	} {
		en := &event.Entry{WorkspaceID: testWS, MessageID: "m", Type: TypePage, Timestamp: t0, Payload: []byte(tt.payload), Context: []byte(tt.context)}
		if _, err := FromEntry(en); err == nil {
			t.Errorf("FromEntry(%s, context %s) succeeded", tt.payload, tt.context)
		}
	}
}

// The fixtures, applied in order, make one session with the state they
// describe.
func TestFromEntryFeedsASession(t *testing.T) {
	ws := newTestWorkspace(t, nil)
	v := ws.NewVisitor("a1b2c3")
	var changes []Change
	for i, file := range []string{"page_campaign.json", "product_added.json", "cart_viewed.json", "order_completed.json"} {
		en := entryOf(t, file, "")
		en.Timestamp = t0.Add(minutes(float64(i)))
		e, err := FromEntry(en)
		if err != nil {
			t.Fatal(err)
		}
		if changes, err = v.Apply(&e, changes[:0]); err != nil {
			t.Fatal(err)
		}
	}
	s := changes[0].Session
	if v.Len() != 1 || s.Channel.Group != PaidSearch || s.Campaign.ClickID != "Cj0KCQ" || s.Device.Browser != "Safari" ||
		s.OrderCount != 1 || s.Revenue() != 27.5 || !s.Cart.IsEmpty() || s.UserID != "u-42" || s.Location.City != "Lyon" {
		t.Fatalf("session %s channel %+v device %+v orders %d revenue %v cart %+v user %s",
			describe([]Session{s}), s.Channel, s.Device, s.OrderCount, s.Revenue(), s.Cart.Items(), s.UserID)
	}
}
