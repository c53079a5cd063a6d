package session

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/core/consent"
)

const (
	testWS   = "ws-1"
	testAnon = "anon-1"
)

// t0 is the start of every test stream.
var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// newTestWorkspace returns a workspace with the default rules, shop.com as
// its own domain, and edit applied.
func newTestWorkspace(t testing.TB, edit func(*Rules)) *Workspace {
	t.Helper()
	r := DefaultRules()
	r.OwnDomains = []string{"shop.com"}
	if edit != nil {
		edit(&r)
	}
	ws, err := NewWorkspace(testWS, r)
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

type opt func(*Event)

// ev builds an event of the test visitor at t0+at.
func ev(id, typ string, at time.Duration, opts ...opt) Event {
	e := Event{WorkspaceID: testWS, AnonymousID: testAnon, MessageID: id, Type: typ, Timestamp: t0.Add(at)}
	for _, o := range opts {
		o(&e)
	}
	return e
}

// pv is a page view of url at t0+at.
func pv(id string, at time.Duration, url string, opts ...opt) Event {
	return ev(id, TypePage, at, append([]opt{func(e *Event) { e.URL = url }}, opts...)...)
}

// tr is a track event named name at t0+at.
func tr(id string, at time.Duration, name string, opts ...opt) Event {
	return ev(id, TypeTrack, at, append([]opt{func(e *Event) { e.Name = name }}, opts...)...)
}

func referrer(r string) opt { return func(e *Event) { e.Referrer = r } }

func utm(source, medium, name string) opt {
	return func(e *Event) { e.Campaign.Source, e.Campaign.Medium, e.Campaign.Name = source, medium, name }
}

func click(param, id string) opt {
	return func(e *Event) { e.Campaign.ClickIDParam, e.Campaign.ClickID = param, id }
}

func user(id string) opt { return func(e *Event) { e.UserID = id } }

// consents sets the event's consent to a fresh map, as FromEntry makes one
// per event.
func consents(p consent.Preferences) opt {
	return func(e *Event) { e.Consent = maps.Clone(p) }
}

func products(ps ...Product) opt { return func(e *Event) { e.Products = ps } }

func order(id string, total float64, ps ...Product) opt {
	return func(e *Event) { e.OrderID, e.Total, e.Currency, e.Products = id, total, "EUR", ps }
}

// applyAll applies events in the order given and returns every change.
func applyAll(t testing.TB, v *Visitor, events ...Event) []Change {
	t.Helper()
	var out []Change
	for i := range events {
		var err error
		if out, err = v.Apply(&events[i], out); err != nil {
			t.Fatalf("apply %s: %v", events[i].MessageID, err)
		}
	}
	return out
}

// counts returns the event count of each open session, oldest first.
func counts(v *Visitor) []int {
	var n []int
	for _, s := range v.Sessions() {
		n = append(n, s.Events)
	}
	return n
}

func kinds(changes []Change) string {
	var k []string
	for _, c := range changes {
		k = append(k, c.Kind.String())
	}
	return strings.Join(k, ",")
}

// checkErr fails unless err is want (nil for no error).
func checkErr(t testing.TB, err, want error) {
	t.Helper()
	if !errors.Is(err, want) || (want == nil) != (err == nil) {
		t.Fatalf("error = %v, want %v", err, want)
	}
}

func minutes(m float64) time.Duration { return time.Duration(m * float64(time.Minute)) }

func describe(ss []Session) string {
	var b strings.Builder
	for _, s := range ss {
		fmt.Fprintf(&b, "[%s %v..%v events=%d pages=%d landing=%s current=%s channel=%s]",
			s.ID, s.Start.Sub(t0), s.LastEvent.Sub(t0), s.Events, s.PageViews, s.LandingPage, s.CurrentPage, s.Channel.Group)
	}
	return b.String()
}

// diff names the first field in which two sessions differ.
func diff(a, b Session) string {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	for i := range va.NumField() {
		fa, fb := fmt.Sprintf("%+v", va.Field(i)), fmt.Sprintf("%+v", vb.Field(i))
		if fa != fb {
			return fmt.Sprintf("%s: %s != %s", va.Type().Field(i).Name, fa, fb)
		}
	}
	return ""
}

// diffAll describes how two lists of sessions differ.
func diffAll(got, want []Session) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d sessions, want %d:\n%s\nwant\n%s", len(got), len(want), describe(got), describe(want))
	}
	for i := range got {
		if d := diff(got[i], want[i]); d != "" {
			return fmt.Sprintf("session %d: %s", i, d)
		}
	}
	return ""
}
