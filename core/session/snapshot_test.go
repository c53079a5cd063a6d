package session

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/core/consent"
)

// call is one call a worker makes on a visitor: Apply an event, Close at a
// watermark, or SetProfileID.
type call struct {
	e       *Event
	close   time.Time
	profile *string
}

func applyCall(e Event) call          { return call{e: &e} }
func closeCall(at time.Duration) call { return call{close: t0.Add(at)} }
func profileCall(id string) call      { return call{profile: &id} }

func (c call) String() string {
	switch {
	case c.e != nil:
		return fmt.Sprintf("apply %s (%s %s at %v)", c.e.MessageID, c.e.Type, c.e.Name, c.e.Timestamp.Sub(t0))
	case c.profile != nil:
		return fmt.Sprintf("set profile %q", *c.profile)
	}
	return fmt.Sprintf("close at %v", c.close.Sub(t0))
}

// do makes the call on v and returns its changes and error.
func (c call) do(v *Visitor) ([]Change, error) {
	switch {
	case c.e != nil:
		return v.Apply(c.e, nil)
	case c.profile != nil:
		return v.SetProfileID(*c.profile, nil), nil
	}
	return v.Close(c.close, nil), nil
}

// sameAnswers makes each call on a and on b and fails at the first answer
// (changes, error, next close, sessions) that differs.
func sameAnswers(t testing.TB, a, b *Visitor, calls ...call) {
	t.Helper()
	for i, c := range calls {
		ca, ea := c.do(a)
		cb, eb := c.do(b)
		if fmt.Sprint(ea) != fmt.Sprint(eb) {
			t.Fatalf("call %d, %s: error %v, want %v", i, c, eb, ea)
		}
		if !reflect.DeepEqual(cb, ca) {
			t.Fatalf("call %d, %s: changes differ: %s", i, c, diffChanges(cb, ca))
		}
		na, oka := a.NextClose()
		nb, okb := b.NextClose()
		if na != nb || oka != okb {
			t.Fatalf("call %d, %s: next close %v %v, want %v %v", i, c, nb, okb, na, oka)
		}
	}
	if !reflect.DeepEqual(b, a) {
		t.Fatalf("after %d calls: visitors differ: %s", len(calls), diffVisitors(b, a))
	}
}

func diffChanges(got, want []Change) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d changes (%s), want %d (%s)", len(got), kinds(got), len(want), kinds(want))
	}
	for i := range got {
		if got[i].Kind != want[i].Kind || got[i].Absorbed != want[i].Absorbed {
			return fmt.Sprintf("change %d: %s absorbing %s, want %s absorbing %s", i, got[i].Kind, got[i].Absorbed, want[i].Kind, want[i].Absorbed)
		}
		if d := diff(got[i].Session, want[i].Session); d != "" {
			return fmt.Sprintf("change %d: %s", i, d)
		}
	}
	return "none found"
}

// diffVisitors names the first difference between two visitors, private
// state included (diff prints unexported fields too).
func diffVisitors(got, want *Visitor) string {
	switch {
	case got.ws != want.ws:
		return fmt.Sprintf("workspace %p, want %p", got.ws, want.ws)
	case got.anonymousID != want.anonymousID || got.profileID != want.profileID || got.horizon != want.horizon:
		return fmt.Sprintf("anonymous id, profile id, horizon %q %q %d, want %q %q %d",
			got.anonymousID, got.profileID, got.horizon, want.anonymousID, want.profileID, want.horizon)
	case (got.open == nil) != (want.open == nil):
		return fmt.Sprintf("open sessions nil: %v, want %v", got.open == nil, want.open == nil)
	}
	if d := diffAll(got.open, want.open); d != "" {
		return d
	}
	return "none found"
}

// snapshotOf returns v's snapshot, failing the test on an error.
func snapshotOf(t testing.TB, v *Visitor) []byte {
	t.Helper()
	snap, err := v.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// roundTrip restores v from its snapshot and checks that the copy is v,
// private state included, and snapshots as v does.
func roundTrip(t testing.TB, v *Visitor) *Visitor {
	t.Helper()
	snap := snapshotOf(t, v)
	r, err := v.ws.RestoreVisitor(snap)
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if !reflect.DeepEqual(r, v) {
		t.Fatalf("restored visitor differs: %s", diffVisitors(r, v))
	}
	if again := snapshotOf(t, r); !bytes.Equal(again, snap) {
		t.Fatalf("the restored visitor's snapshot differs from the original's:\n%x\n%x", again, snap)
	}
	return r
}

// snapshotCase is a visitor in a state worth snapshotting: the calls that
// build it, a check that they did, and calls that probe its state.
type snapshotCase struct {
	name   string
	setup  []call
	check  func(v *Visitor) string // "" when the state is the one wanted
	future []call
}

func snapshotCases() []snapshotCase {
	p := func(id string, price float64) Product { return Product{ID: id, Price: price} }
	long := func(s string, n int) string { return strings.Repeat(s, n/len(s)+1) }
	ua := func(s string) opt { return func(e *Event) { e.UserAgent = s } }
	loc := func(country, city, ip string) opt {
		return func(e *Event) { e.Location = Location{Country: country, City: city, IP: ip} }
	}
	var many, orders, wide []call
	widest := consent.Preferences{}
	for i := range consent.MaxMessagePurposes + 10 {
		widest[fmt.Sprintf("p%02d%s", i, long("z", 60))[:63]] = i%3 == 0
	}
	for i := range MaxCartChanges + 50 {
		many = append(many, applyCall(tr(fmt.Sprint("m", i), time.Duration(i)*time.Second, ProductAdded,
			products(p(fmt.Sprint("p", i%7), float64(i%5))))))
	}
	for i := range MaxOrders + 5 {
		orders = append(orders, applyCall(tr(fmt.Sprint("o", i), minutes(float64(i)), OrderCompleted, order(fmt.Sprint("order-", i), float64(i)+0.5))))
	}
	orders = append(orders,
		applyCall(tr("dup-late", minutes(30), OrderCompleted, order("order-3", 100))),   // counted once, later: ignored
		applyCall(tr("dup-early", minutes(-1), OrderCompleted, order("order-4", 7))),    // earlier: replaces
		applyCall(tr("no-id", minutes(2.5), OrderCompleted, order("", 1))),              // counts on its own
		applyCall(tr("negative", minutes(3.5), OrderCompleted, order("refund-1", -12))), // negative revenue
	)
	var all []Product
	for i := range MaxCartItems + 10 {
		all = append(all, Product{ID: fmt.Sprint("item-", i), SKU: fmt.Sprint("sku-", i), Name: "Thing", Price: 1.25, Quantity: 1 + i%3})
	}
	for i := range 6 { // one visitor, sessions days apart: an offline batch
		wide = append(wide, applyCall(pv(fmt.Sprint("w", i), time.Duration(i)*26*time.Hour, home+fmt.Sprint("d", i))))
	}
	return []snapshotCase{
		{name: "new visitor"},
		{name: "one page view", setup: []call{applyCall(pv("a", 0, home))}},
		{
			name: "typical visit",
			setup: []call{
				applyCall(pv("a", 0, home, referrer("https://www.google.com/"), ua("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/124.0 Safari/537.36"), loc("France", "Lyon", "203.0.113.9"),
					consents(consent.Preferences{"analytics": true}))),
				applyCall(tr("b", minutes(1), ProductAdded, products(Product{ID: "p1", Price: 9.99}), consents(granted))),
				applyCall(ev("c", TypeIdentify, minutes(2), user("u-1"))),
				applyCall(tr("d", minutes(3), ProductAdded, products(Product{ID: "p2", Price: 0.1, Quantity: 3}))),
				applyCall(tr("e", minutes(4), OrderCompleted, order("o-1", 10.29))),
				applyCall(pv("f", minutes(5), home+"thanks")),
				applyCall(pv("g", minutes(50), home, utm("news", "email", "may"))),
				applyCall(tr("h", minutes(52), ProductAdded, products(Product{ID: "p3", Price: 1}))),
				applyCall(tr("i", minutes(53), ProductRemoved, products(Product{ID: "p3"}))),
				applyCall(pv("j", minutes(60), home+"p", consents(nothing))),
				applyCall(tr("k", minutes(60), "Same Instant")),
			},
			check: func(v *Visitor) string { return wantLen(v, 2) },
		},
		{
			name: "closed sessions kept for ErrTooLate",
			setup: []call{
				applyCall(pv("a", 0, home)), applyCall(pv("b", minutes(10), home+"x")),
				closeCall(minutes(50)), // horizon: 40m
				applyCall(pv("c", minutes(90), home)),
			},
			check: func(v *Visitor) string {
				if v.horizon != t0.Add(minutes(40)).UnixNano() {
					return fmt.Sprintf("horizon %v", time.Unix(0, v.horizon).Sub(t0))
				}
				return wantLen(v, 1)
			},
			future: []call{
				applyCall(tr("late-inside", minutes(5), "Clicked")), // ErrTooLate
				applyCall(tr("late-after", minutes(39), "Clicked")), // ErrTooLate
				applyCall(tr("at-horizon", minutes(40), "Clicked")), // accepted
			},
		},
		{
			name: "closed sessions only",
			setup: []call{
				applyCall(pv("a", 0, home)), closeCall(minutes(41)),
			},
			check: func(v *Visitor) string {
				if v.horizon == 0 || v.open != nil {
					return fmt.Sprintf("horizon %d, %d open", v.horizon, len(v.open))
				}
				return ""
			},
		},
		{
			name: "cart with changes",
			setup: []call{
				applyCall(pv("a", 0, home)),
				applyCall(tr("b", minutes(1), CartViewed, products(p("p1", 10), Product{SKU: "sku-only", Price: 2, Quantity: 2}, Product{Name: "name only"}))),
				applyCall(tr("c", minutes(2), ProductAdded, products(p("p2", 2.5), Product{ID: "p1", Name: "renamed", Price: 11}))),
				applyCall(tr("d", minutes(3), ProductRemoved, products(Product{SKU: "sku-only"}))),
				applyCall(tr("e", minutes(4), ProductAdded, products(Product{ID: "zero", Price: math.Copysign(0, -1), Quantity: 4}))),
				applyCall(tr("too-old", minutes(0.5), ProductAdded, products(p("p9", 1)))), // before the replacement: ignored
				applyCall(tr("f", minutes(2), ProductAdded, products(p("p3", 3)))),         // same instant as c
			},
			check: func(v *Visitor) string {
				c := v.open[0].Cart
				if len(c.base) != 3 || len(c.changes) != 5 || !c.reset.set() {
					return fmt.Sprintf("cart base %d, changes %d", len(c.base), len(c.changes))
				}
				return ""
			},
			future: []call{
				applyCall(tr("late-replace", minutes(2.5), CartViewed, products(p("p7", 7)))),
				applyCall(tr("late-add", minutes(1.5), ProductAdded, products(p("p8", 8)))),
			},
		},
		{
			name:  "cart past MaxCartChanges",
			setup: many,
			check: func(v *Visitor) string {
				if c := v.open[0].Cart; len(c.changes) != MaxCartChanges || len(c.base) == 0 {
					return fmt.Sprintf("cart base %d, changes %d", len(c.base), len(c.changes))
				}
				return ""
			},
			future: []call{applyCall(tr("late", 10*time.Second, ProductAdded, products(p("p1", 1))))},
		},
		{
			name:  "cart at MaxCartItems",
			setup: []call{applyCall(tr("a", 0, CartViewed, products(all...)))},
			check: func(v *Visitor) string {
				if n := len(v.open[0].Cart.base); n != MaxCartItems {
					return fmt.Sprintf("%d cart items", n)
				}
				return ""
			},
		},
		{
			name:  "orders over MaxOrders",
			setup: orders,
			check: func(v *Visitor) string {
				s := v.open[0]
				if len(s.Orders) != MaxOrders || s.OrderCount != MaxOrders+7 {
					return fmt.Sprintf("%d orders listed, %d counted", len(s.Orders), s.OrderCount)
				}
				return ""
			},
			future: []call{
				applyCall(tr("very-early", minutes(-20), OrderCompleted, order("order-14", 3))), // listed now, the 14th earlier
				applyCall(tr("later", minutes(40), OrderCompleted, order("order-99", 1))),
			},
		},
		{
			name: "after a bridge merge",
			setup: []call{
				applyCall(pv("a1", 0, home+"landing", referrer("https://www.google.com/"), user("u-old"))),
				applyCall(tr("a2", minutes(5), ProductAdded, products(p("p1", 10)))),
				applyCall(pv("b1", minutes(40), home+"second", user("u-new"))),
				applyCall(tr("b2", minutes(45), ProductAdded, products(Product{ID: "p2", Price: 5, Quantity: 2}))),
				applyCall(tr("b3", minutes(46), OrderCompleted, order("o1", 20))),
				applyCall(pv("b4", minutes(50), home+"exit")),
				applyCall(tr("bridge", minutes(25), "Scrolled")),
			},
			check: func(v *Visitor) string { return wantLen(v, 1) },
		},
		{
			name: "after a backwards merge",
			setup: []call{
				applyCall(pv("late-landing", minutes(10), home, utm("google", "cpc", "brand"), click("gclid", "Cj0-abc"))),
				applyCall(tr("earliest", minutes(2), "Application Opened")),
			},
			check: func(v *Visitor) string {
				if v.open[0].ID != newID(testWS, testAnon, "earliest", t0.Add(minutes(2))) {
					return "the id did not move to the earliest event"
				}
				return ""
			},
		},
		{
			name: "profile id",
			setup: []call{
				applyCall(pv("a", 0, home)), profileCall("profile-1"), applyCall(pv("b", minutes(60), home)),
			},
			check: func(v *Visitor) string {
				if v.profileID != "profile-1" || v.open[1].ProfileID != "profile-1" {
					return "profile id not set"
				}
				return ""
			},
			future: []call{profileCall("profile-2"), applyCall(pv("c", minutes(200), home))},
		},
		{
			name: "campaign, referrer, device, location",
			setup: []call{
				applyCall(pv("a", 0, home+"?utm_source=fb", utm("facebook", "paid_social", "spring"), click("fbclid", "IwAR-1"), referrer("https://l.facebook.com/"),
					ua("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Safari/604.1"), loc("Germany", "Berlin", "2001:db8::1"),
					func(e *Event) { e.Campaign.Term, e.Campaign.Content = "shoes", "banner-2" })),
				applyCall(ev("b", TypeScreen, minutes(1), func(e *Event) {
					e.Name, e.Device = "Home", Device{Type: "ios", OS: "iOS", Browser: "App"}
				})),
				applyCall(pv("c", minutes(40), home, referrer("https://mail.google.com/"))),
				applyCall(pv("d", minutes(90), home, referrer("https://news.example.org/a"))),
			},
			check: func(v *Visitor) string { return wantLen(v, 3) },
		},
		{name: "several open sessions", setup: wide, check: func(v *Visitor) string { return wantLen(v, 6) }},
		{
			name: "consent",
			setup: []call{
				applyCall(pv("a", 0, home, consents(granted))),
				applyCall(tr("b", minutes(1), "Clicked")),
				applyCall(ev("c", TypeIdentify, minutes(2), user("u-1"), consents(withdrawn))),
				applyCall(tr("late", minutes(1.5), "Clicked", consents(granted))), // earlier than c: ignored
				applyCall(pv("d", minutes(60), home, consents(nothing))),
				applyCall(pv("e", minutes(120), home)),
			},
			check: func(v *Visitor) string {
				if len(v.open) != 3 || !reflect.DeepEqual(v.open[0].Consent, withdrawn) || v.open[1].Consent == nil ||
					len(v.open[1].Consent) != 0 || v.open[2].Consent != nil {
					return fmt.Sprintf("consents %v", consentsOf(v.open))
				}
				return ""
			},
			future: []call{
				applyCall(tr("later", minutes(3), "Clicked", consents(granted))),
				applyCall(tr("none", minutes(121), "Clicked")),
				applyCall(tr("first", minutes(125), "Clicked", consents(withdrawn))),
			},
		},
		{
			name: "values at the caps",
			setup: []call{
				applyCall(pv("a", 0, home+long("é/ü", 700), referrer("https://"+long("\xff", 150)+".com/"), user(long("u", 300)),
					utm(long("s", 200), long("m", 200), long("c", 200)), click("gclid", long("g", 200)), loc(long("C", 200), long("c", 200), long("1", 200)))),
				applyCall(tr("b", minutes(1), ProductAdded, products(Product{ID: long("i", 200), SKU: long("k", 200), Name: long("n", 200), Price: 1e9, Quantity: 1 << 40}))),
				applyCall(tr("c", minutes(2), OrderCompleted, order(long("o", 300), 1e12))),
				profileCall(long("p", 300)),
				applyCall(pv("d", minutes(40), home, referrer("https://WWW.İSTANBUL-"+long("Ⱥ", 120)+".example/"), consents(widest))),
			},
			check: func(v *Visitor) string {
				if len(v.open) != 2 || len(v.open[0].LandingPage) > MaxURLBytes || len(v.open[0].LandingPage) < MaxURLBytes-3 {
					return describe(v.Sessions())
				}
				return ""
			},
		},
	}
}

func wantLen(v *Visitor, n int) string {
	if v.Len() != n {
		return fmt.Sprintf("%d open sessions, want %d: %s", v.Len(), n, describe(v.Sessions()))
	}
	return ""
}

// probes are calls that touch every part of a visitor's timeline near t0:
// late events inside, before, between and after its sessions, a new
// campaign, a cart, an order, then closes.
func probes() []call {
	var calls []call
	for i, at := range []time.Duration{-3 * time.Hour, -minutes(20), minutes(0.5), minutes(7), minutes(20), minutes(33), minutes(47), minutes(70), 3 * time.Hour, 30 * time.Hour, 131 * time.Hour} {
		id := fmt.Sprint("probe-", i)
		switch i % 4 {
		case 0:
			calls = append(calls, applyCall(tr(id, at, "Clicked")))
		case 1:
			calls = append(calls, applyCall(pv(id, at, home+"p", referrer("https://www.bing.com/"), consents(withdrawn))))
		case 2:
			calls = append(calls, applyCall(tr(id, at, ProductAdded, products(Product{ID: "p1", Price: 3}))))
		default:
			calls = append(calls, applyCall(pv(id, at, home, utm("other", "cpc", "x"), consents(nothing))))
		}
	}
	return append(calls,
		applyCall(tr("probe-order", minutes(8), OrderCompleted, order("probe-o", 5))),
		closeCall(2*time.Hour),
		applyCall(tr("probe-after-close", minutes(9), "Clicked")),
		closeCall(200*time.Hour),
	)
}

// A restored visitor is the original, private state included, and answers
// every later call exactly as the original does.
func TestSnapshotRoundTrip(t *testing.T) {
	ws := newTestWorkspace(t, nil)
	for _, tt := range snapshotCases() {
		t.Run(tt.name, func(t *testing.T) {
			v := ws.NewVisitor(testAnon)
			for i, c := range tt.setup {
				if _, err := c.do(v); err != nil {
					t.Fatalf("setup call %d, %s: %v", i, c, err)
				}
			}
			if tt.check != nil {
				if msg := tt.check(v); msg != "" {
					t.Fatalf("setup did not build the state wanted: %s", msg)
				}
			}
			r := roundTrip(t, v)
			t.Logf("%d bytes", len(snapshotOf(t, v)))
			sameAnswers(t, v, r, append(tt.future, probes()...)...)
		})
	}
}

// The horizon of closed sessions survives: a restored visitor refuses late
// events as the original does, where a new visitor would take them.
func TestSnapshotKeepsTooLate(t *testing.T) {
	ws := newTestWorkspace(t, nil)
	v := ws.NewVisitor(testAnon)
	applyAll(t, v, pv("a", 0, home), pv("b", minutes(10), home))
	if closed := v.Close(t0.Add(minutes(50)), nil); len(closed) != 1 || v.Len() != 0 {
		t.Fatalf("closed %d sessions, %d open; want 1 and 0", len(closed), v.Len())
	}
	r := roundTrip(t, v)
	late := tr("late", minutes(20), "Clicked")
	_, err := r.Apply(&late, nil)
	checkErr(t, err, ErrTooLate)
	_, err = ws.NewVisitor(testAnon).Apply(&late, nil)
	checkErr(t, err, nil)
}

// Fields an open session never has (those Close sets) and values the
// engine does not make today still round-trip: the format does not depend
// on how the engine uses it.
func TestSnapshotKeepsEveryField(t *testing.T) {
	v := typicalVisitor(t, newTestWorkspace(t, nil))
	s := &v.open[1]
	s.Closed, s.Bounced, s.ExitPage = true, true, "https://shop.com/exit"
	s.Channel = Channel{Group: "Future Group", Source: strings.Repeat("é", 150), Medium: "m", Campaign: "c"}
	s.Device.Type = "watch"
	o := &v.open[0].Orders[0]
	o.Time, o.Total = o.Time.Add(-time.Hour), math.Copysign(0, -1)
	r := roundTrip(t, v)
	if c := r.open[1].Channel; c.Group != "Future Group" || len(c.Source) != 300 || r.open[1].Device.Type != "watch" || !r.open[1].Closed {
		t.Fatalf("restored %+v", r.open[1])
	}
}

// For random streams of a device, delivered out of order and some too late
// for the grace, with sessions closed as events arrive: a visitor restored
// from snapshots at random points (at least one) gives the same changes,
// errors and state as the visitor never interrupted.
func TestPropertySnapshotAnywhere(t *testing.T) {
	ws := newTestWorkspace(t, nil)
	r := rand.New(rand.NewPCG(7, 8))
	restores := 0
	for i := range 300 {
		anon := fmt.Sprint("v", i)
		events := genStream(r, anon, true)
		arrivals := arrive(r, events, time.Duration(1+r.IntN(3))*ws.Rules().Grace, nil)
		var calls []call
		for _, a := range arrivals {
			calls = append(calls, call{close: a.at})
			if r.IntN(20) == 0 {
				calls = append(calls, profileCall(fmt.Sprint("profile-", r.IntN(3))))
			}
			calls = append(calls, call{e: &a.e})
		}
		calls = append(calls, call{close: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)})
		split := r.IntN(len(calls) + 1)
		a, b := ws.NewVisitor(anon), ws.NewVisitor(anon)
		for j := 0; j <= len(calls); j++ {
			if j == split || r.IntN(10) == 0 {
				b = roundTrip(t, b)
				restores++
				if !reflect.DeepEqual(b, a) {
					t.Fatalf("stream %d, call %d: the restored visitor is not the uninterrupted one: %s", i, j, diffVisitors(b, a))
				}
			}
			if j < len(calls) {
				sameAnswers(t, a, b, calls[j])
			}
		}
		if !reflect.DeepEqual(b.Sessions(), a.Sessions()) {
			t.Fatalf("stream %d: final sessions differ", i)
		}
	}
	t.Logf("%d restores", restores)
}

// typicalVisitors returns n visitors with one realistic visit each, its
// events stating consent or not.
func typicalVisitors(tb testing.TB, ws *Workspace, n int, withConsent bool) []*Visitor {
	tr := newTraffic(42)
	if withConsent {
		tr.withConsent(42)
	}
	vs := make([]*Visitor, n)
	var out []Change
	for i := range vs {
		anon := tr.anonymousID()
		vs[i] = ws.NewVisitor(anon)
		for _, e := range tr.visit(anon, t0) {
			var err error
			if out, err = vs[i].Apply(&e, out[:0]); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return vs
}

// TestSnapshotSize reports the size of a typical visitor's snapshot and
// catches blow-ups.
func TestSnapshotSize(t *testing.T) {
	ws := newTestWorkspace(t, func(r *Rules) { r.OwnDomains = []string{"shop-example.com"} })
	var sizes []int
	for _, v := range typicalVisitors(t, ws, 1000, true) {
		sizes = append(sizes, len(snapshotOf(t, v)))
	}
	slices.Sort(sizes)
	total := 0
	for _, n := range sizes {
		total += n
	}
	mean := total / len(sizes)
	t.Logf("snapshot of a one-session visitor: mean %d bytes, median %d, max %d", mean, sizes[len(sizes)/2], sizes[len(sizes)-1])
	if mean > 1024 {
		t.Fatalf("mean snapshot %d bytes, want at most 1024", mean)
	}
}

// The shard snapshot, across workspaces, with visitors dropped when idle
// and restored several times: the restored shard answers as the
// uninterrupted one.
func TestPropertyShardSnapshot(t *testing.T) {
	ws1 := newTestWorkspace(t, func(r *Rules) { r.OwnDomains = []string{"shop-example.com"} })
	rules := ws1.Rules()
	rules.Timeout, rules.Grace = 15*time.Minute, time.Minute
	ws2, err := NewWorkspace("ws-2", rules)
	if err != nil {
		t.Fatal(err)
	}
	workspaces := map[string]*Workspace{ws1.ID(): ws1, ws2.ID(): ws2}
	tr := newTraffic(9)
	type arrival struct {
		e  Event
		at time.Time
	}
	var arrivals []arrival
	for range 300 {
		anon := tr.anonymousID()
		wsID := []string{testWS, "ws-2"}[tr.r.IntN(2)]
		start := t0.Add(time.Duration(tr.r.Int64N(int64(4 * time.Hour))))
		for range 1 + tr.r.IntN(3) {
			for _, e := range tr.visit(anon, start) {
				e.WorkspaceID = wsID
				at := e.Timestamp
				if tr.r.IntN(8) == 0 {
					at = at.Add(time.Duration(tr.r.Int64N(int64(20 * time.Minute))))
				}
				arrivals = append(arrivals, arrival{e, at})
			}
			start = start.Add(time.Duration(10+tr.r.IntN(120)) * time.Minute)
		}
	}
	slices.SortStableFunc(arrivals, func(a, b arrival) int { return a.at.Compare(b.at) })

	key := func(ws, anon string) string { return ws + "/" + anon }
	straight, restored := map[string]*Visitor{}, map[string]*Visitor{}
	visitor := func(m map[string]*Visitor, e *Event) *Visitor {
		k := key(e.WorkspaceID, e.AnonymousID)
		if m[k] == nil {
			m[k] = workspaces[e.WorkspaceID].NewVisitor(e.AnonymousID)
		}
		return m[k]
	}
	sweep := func(m map[string]*Visitor, now time.Time) (out []Change) {
		for _, k := range slices.Sorted(mapKeys(m)) {
			if out = m[k].Close(now, out); m[k].Len() == 0 {
				delete(m, k)
			}
		}
		return out
	}
	splits := 0
	for i, a := range arrivals {
		if i%97 == 0 || tr.r.IntN(200) == 0 {
			var vs []*Visitor
			for _, k := range slices.Sorted(mapKeys(restored)) {
				vs = append(vs, restored[k])
			}
			snap, err := AppendVisitors(nil, vs)
			if err != nil {
				t.Fatal(err)
			}
			back, err := RestoreVisitors(snap, func(id string) (*Workspace, error) { return workspaces[id], nil })
			if err != nil {
				t.Fatal(err)
			}
			restored = map[string]*Visitor{}
			for _, v := range back {
				restored[key(v.Workspace().ID(), v.AnonymousID())] = v
			}
			if !reflect.DeepEqual(restored, straight) {
				t.Fatalf("arrival %d: the restored shard differs from the uninterrupted one", i)
			}
			splits++
		}
		if i%50 == 0 {
			want, got := sweep(straight, a.at), sweep(restored, a.at)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("arrival %d: close: %s", i, diffChanges(got, want))
			}
		}
		e := a.e
		want, errWant := visitor(straight, &e).Apply(&e, nil)
		got, errGot := visitor(restored, &e).Apply(&e, nil)
		if fmt.Sprint(errGot) != fmt.Sprint(errWant) || !reflect.DeepEqual(got, want) {
			t.Fatalf("arrival %d: error %v, want %v; %s", i, errGot, errWant, diffChanges(got, want))
		}
	}
	end := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
	if want, got := sweep(straight, end), sweep(restored, end); !reflect.DeepEqual(got, want) || len(want) == 0 {
		t.Fatalf("final close: %d changes, want %d: %s", len(got), len(want), diffChanges(got, want))
	}
	t.Logf("%d arrivals, %d shard restores", len(arrivals), splits)
}

func mapKeys(m map[string]*Visitor) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// rawSnapshot writes v's snapshot without checking it: how the tests make
// snapshots of states the engine never reaches.
func rawSnapshot(v *Visitor) []byte {
	b := appendString([]byte{visitorFormat}, v.ws.id)
	return v.appendBody(b, true)
}

// snapshotNoConsent writes v's snapshot in the format before consent, as
// the build before it wrote it (TestSnapshotOldFormats checks that).
func snapshotNoConsent(v *Visitor) []byte {
	b := appendString([]byte{visitorFormatNoConsent}, v.ws.id)
	return v.appendBody(b, false)
}

// typicalVisitor returns the visitor of the "typical visit" case.
func typicalVisitor(t testing.TB, ws *Workspace) *Visitor {
	v := ws.NewVisitor(testAnon)
	for _, c := range snapshotCases()[2].setup {
		if _, err := c.do(v); err != nil {
			t.Fatal(err)
		}
	}
	return v
}

func TestRestoreVisitorRejects(t *testing.T) {
	ws := newTestWorkspace(t, nil)
	good := snapshotOf(t, typicalVisitor(t, ws))
	for i := range len(good) {
		if _, err := ws.RestoreVisitor(good[:i]); !errors.Is(err, ErrInvalidSnapshot) {
			t.Fatalf("the first %d of %d bytes: error %v, want ErrInvalidSnapshot", i, len(good), err)
		}
	}
	// States the engine never reaches, from the typical visitor.
	edit := func(f func(v *Visitor)) []byte {
		v := typicalVisitor(t, ws)
		f(v)
		return rawSnapshot(v)
	}
	other, err := NewWorkspace("ws-2", DefaultRules())
	if err != nil {
		t.Fatal(err)
	}
	huge := appendString([]byte{visitorFormat}, testWS)
	huge = appendString(appendString(huge, testAnon), "")
	huge = binary.AppendUvarint(binary.AppendVarint(huge, 0), 1<<60)
	tests := []struct {
		name string
		data []byte
		ws   *Workspace
		want string // in the error
	}{
		{"empty", nil, ws, "truncated"},
		{"unknown format", append([]byte{3}, good[1:]...), ws, "unknown format 0x3: this build reads visitor snapshots in formats 0x1 and 0x2"},
		{"format 0", append([]byte{0}, good[1:]...), ws, "unknown format"},
		{"a shard snapshot", append([]byte{shardFormat}, good[1:]...), ws, "a shard snapshot"},
		{"an old shard snapshot", append([]byte{shardFormatNoConsent}, good[1:]...), ws, "a shard snapshot"},
		{"the old format with consent", append([]byte{visitorFormatNoConsent}, good[1:]...), ws, "at byte"}, // read as the next field
		{"consent purposes out of order", consentBytes(t, good, "\x09analytics\x01\x09marketing\x01", "\x09marketing\x01\x09analytics\x01"), ws, "consent purpose 1 not after the one before"},
		{"a consent purpose twice", consentBytes(t, good, "\x09analytics\x01\x09marketing\x01", "\x09analytics\x01\x09analytics\x01"), ws, "consent purpose 1 not after the one before"},
		{"a consent value not 0 or 1", consentBytes(t, good, "\x09analytics\x01\x09marketing\x01", "\x09analytics\x01\x09marketing\x02"), ws, "consent value 2, want 0 or 1"},
		{"a consent purpose not valid", consentBytes(t, good, "\x09analytics\x01\x09marketing\x01", "\x09analytics\x01\x09Marketing\x01"), ws, "consent purpose 1 of 9 bytes not valid"},
		{"consent over MaxMessagePurposes", edit(func(v *Visitor) {
			v.open[0].Consent = consent.Preferences{}
			for i := range consent.MaxMessagePurposes + 1 {
				v.open[0].Consent[fmt.Sprint("p", i)] = true
			}
		}), ws, "51 consent purposes, more than 50"},
		{"trailing byte", append(slices.Clone(good), 0), ws, "1 bytes left over"},
		{"another workspace", good, other, `a visitor of workspace "ws-1", restored into workspace "ws-2"`},
		{"non-minimal varint", append([]byte{visitorFormat, 0x84, 0x00}, good[2:]...), ws, "not minimal"},
		{"a count beyond the data", huge, ws, "more than the 0 bytes left can hold"},
		{"orders over MaxOrders", edit(func(v *Visitor) {
			for len(v.open[0].Orders) <= MaxOrders {
				v.open[0].Orders = append(v.open[0].Orders, v.open[0].Orders[0])
			}
		}), ws, "11 orders, more than 10"},
		{"cart items over MaxCartItems", edit(func(v *Visitor) {
			v.open[0].Cart.base = make([]Item, MaxCartItems+1)
		}), ws, "51 cart items, more than 50"},
		{"cart changes over MaxCartChanges", edit(func(v *Visitor) {
			v.open[0].Cart.changes = make([]change, MaxCartChanges+1)
		}), ws, "101 cart changes, more than 100"},
		{"a URL over MaxURLBytes", edit(func(v *Visitor) {
			v.open[0].LandingPage = strings.Repeat("u", MaxURLBytes+1)
		}), ws, "landing page of 513 bytes, more than 512"},
		{"a user id over its cap", edit(func(v *Visitor) {
			v.open[1].UserID = strings.Repeat("u", maxIDBytes+1)
		}), ws, "session 1: user id of 256 bytes"},
		{"a product over MaxTextBytes", edit(func(v *Visitor) {
			v.open[1].Cart.changes[0].item.Name = strings.Repeat("n", MaxTextBytes+1)
		}), ws, "more than 128 bytes"},
		{"a negative count", edit(func(v *Visitor) { v.open[0].Events = -1 }), ws, "events 18446744073709551615 overflows an int"},
		{"sessions overlapping", edit(func(v *Visitor) { v.open[1].Start = v.open[0].LastEvent }), ws, "not after the previous one's last event"},
		{"last event before start", edit(func(v *Visitor) { v.open[0].LastEvent = v.open[0].Start.Add(-1) }), ws, "last event overflows"},
		{"start before 1970", edit(func(v *Visitor) {
			v.open[0].Start = time.Unix(0, -1).UTC()
		}), ws, "want 0 ≤ start"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := tt.ws.RestoreVisitor(tt.data)
			if !errors.Is(err, ErrInvalidSnapshot) || !strings.Contains(err.Error(), tt.want) || v != nil {
				t.Fatalf("error %v, want ErrInvalidSnapshot saying %q", err, tt.want)
			}
		})
	}
}

// consentBytes returns good with the bytes from, which it holds once,
// replaced by to.
func consentBytes(t *testing.T, good []byte, from, to string) []byte {
	t.Helper()
	if n := bytes.Count(good, []byte(from)); n != 1 {
		t.Fatalf("the snapshot holds %q %d times, want once", from, n)
	}
	return bytes.Replace(good, []byte(from), []byte(to), 1)
}

func TestAppendBinaryRefusesBrokenState(t *testing.T) {
	ws := newTestWorkspace(t, nil)
	v := typicalVisitor(t, ws)
	v.open[0].Orders = slices.Repeat(v.open[0].Orders, MaxOrders+1)
	b := []byte("prefix")
	got, err := v.AppendBinary(b)
	if err == nil || !strings.Contains(err.Error(), "11 orders") || string(got) != "prefix" {
		t.Fatalf("AppendBinary = %q, %v; want the prefix back and an error", got, err)
	}
	if _, err := AppendVisitors(nil, []*Visitor{typicalVisitor(t, ws), v}); err == nil || !strings.Contains(err.Error(), "visitor 1") {
		t.Fatalf("AppendVisitors: error %v, want one naming visitor 1", err)
	}
	if _, err := AppendVisitors(nil, []*Visitor{nil}); err == nil {
		t.Fatal("AppendVisitors accepted a nil visitor")
	}
}

// oldSnapshots reads testdata/snapshots_v1.txt: snapshots the build before
// consent wrote (formats 1 and 0x81), by case name ("shard" for the shard).
func oldSnapshots(tb testing.TB) map[string][]byte {
	tb.Helper()
	text, err := os.ReadFile(filepath.Join("testdata", "snapshots_v1.txt"))
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string][]byte{}
	for line := range strings.Lines(string(text)) {
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, hexData, ok := strings.Cut(strings.TrimSpace(line), " ")
		data, err := hex.DecodeString(hexData)
		if !ok || err != nil {
			tb.Fatalf("snapshots_v1.txt: bad line %.40q", line)
		}
		out[strings.ReplaceAll(name, "_", " ")] = data
	}
	return out
}

// withoutConsent returns calls with their events' consent removed: the
// calls the build before consent saw.
func withoutConsent(calls []call) []call {
	out := make([]call, len(calls))
	for i, c := range calls {
		if c.e != nil {
			e := *c.e
			e.Consent = nil
			c.e = &e
		}
		out[i] = c
	}
	return out
}

// Checkpoints of the build before consent still restore: each old snapshot
// gives the visitor its calls build without consent, answers later calls
// as it does, and is what the old-format writer of these tests writes, so
// that the fuzz tests' old-format checks hold the real format.
func TestSnapshotOldFormats(t *testing.T) {
	ws := newTestWorkspace(t, nil)
	old := oldSnapshots(t)
	cases := snapshotCases()
	if len(old) != len(cases)-1+1 { // every case but "consent", and the shard
		t.Fatalf("%d old snapshots, want %d", len(old), len(cases))
	}
	for _, tt := range cases {
		data, ok := old[tt.name]
		if !ok {
			if tt.name != "consent" {
				t.Errorf("no old snapshot of %q", tt.name)
			}
			continue
		}
		t.Run(tt.name, func(t *testing.T) {
			want := ws.NewVisitor(testAnon)
			for _, c := range withoutConsent(tt.setup) {
				c.do(want)
			}
			got, err := ws.RestoreVisitor(data)
			if err != nil {
				t.Fatalf("restore: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("restored visitor differs: %s", diffVisitors(got, want))
			}
			if again := snapshotNoConsent(got); !bytes.Equal(again, data) {
				t.Fatalf("written again in the old format:\n%x\nwant\n%x", again, data)
			}
			if snap := snapshotOf(t, got); snap[0] != visitorFormat {
				t.Fatalf("written again in format %#x, want %#x", snap[0], visitorFormat)
			}
			roundTrip(t, got)
			sameAnswers(t, want, got, append(tt.future, probes()...)...)
		})
	}
	t.Run("shard", func(t *testing.T) {
		ws2, err := NewWorkspace("ws-2", DefaultRules())
		if err != nil {
			t.Fatal(err)
		}
		a := ws.NewVisitor(testAnon)
		for _, c := range withoutConsent(cases[2].setup) {
			c.do(a)
		}
		b := ws2.NewVisitor("anon-2")
		applyAll(t, b, func() Event { e := pv("x", 0, home); e.WorkspaceID, e.AnonymousID = "ws-2", "anon-2"; return e }())
		want := []*Visitor{a, b, ws.NewVisitor("anon-3")}
		lookup := func(id string) (*Workspace, error) { return map[string]*Workspace{testWS: ws, "ws-2": ws2}[id], nil }
		got, err := RestoreVisitors(old["shard"], lookup)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatal("the old shard snapshot restores other visitors than it holds")
		}
		snap, err := AppendVisitors(nil, got)
		if err != nil {
			t.Fatal(err)
		}
		if again, err := RestoreVisitors(snap, lookup); err != nil || snap[0] != shardFormat || !reflect.DeepEqual(again, want) {
			t.Fatalf("written again in format %#x and restored: %v", snap[0], err)
		}
	})
}

// The smallest session encoding is larger than minSessionBytes, the bound
// on the count of sessions read.
func TestMinSessionBytes(t *testing.T) {
	if n := len(appendSession(nil, &Session{}, false)); n < minSessionBytes {
		t.Fatalf("an empty session takes %d bytes, minSessionBytes is %d", n, minSessionBytes)
	}
	if n := len((&Visitor{ws: &Workspace{}}).appendBody(nil, true)); n < minBodyBytes {
		t.Fatalf("an empty body takes %d bytes, minBodyBytes is %d", n, minBodyBytes)
	}
}

func TestShardSnapshot(t *testing.T) {
	ws1 := newTestWorkspace(t, nil)
	ws2, err := NewWorkspace("ws-2", DefaultRules())
	if err != nil {
		t.Fatal(err)
	}
	ws1b := newTestWorkspace(t, func(r *Rules) { r.Timeout = time.Hour }) // ws-1 with new rules
	lookup := func(id string) (*Workspace, error) {
		return map[string]*Workspace{testWS: ws1, "ws-2": ws2}[id], nil
	}
	a := typicalVisitor(t, ws1)
	b := ws2.NewVisitor("anon-2")
	applyAll(t, b, func() Event { e := pv("x", 0, home); e.WorkspaceID, e.AnonymousID = "ws-2", "anon-2"; return e }())
	c := ws1b.NewVisitor("anon-3")
	snap, err := AppendVisitors([]byte("prefix"), []*Visitor{a, b, c})
	if err != nil {
		t.Fatal(err)
	}
	snap = snap[len("prefix"):]
	vs, err := RestoreVisitors(snap, lookup)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 3 || !reflect.DeepEqual(vs[0], a) || !reflect.DeepEqual(vs[1], b) || vs[2].ws != ws1 || vs[2].AnonymousID() != "anon-3" {
		t.Fatalf("restored %d visitors, not the ones written", len(vs))
	}
	if n := strings.Count(string(snap), testWS); n != 1 {
		t.Fatalf("workspace id written %d times, want once", n)
	}

	t.Run("empty", func(t *testing.T) {
		snap, err := AppendVisitors(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if vs, err := RestoreVisitors(snap, lookup); err != nil || len(vs) != 0 {
			t.Fatalf("RestoreVisitors = %d visitors, %v", len(vs), err)
		}
	})
	t.Run("workspace gone", func(t *testing.T) {
		vs, err := RestoreVisitors(snap, func(id string) (*Workspace, error) {
			if id == "ws-2" {
				return nil, nil
			}
			return ws1, nil
		})
		if err != nil || len(vs) != 2 || vs[0].AnonymousID() != testAnon || vs[1].AnonymousID() != "anon-3" {
			t.Fatalf("RestoreVisitors = %d visitors, %v; want those of ws-1", len(vs), err)
		}
	})
	t.Run("lookup error", func(t *testing.T) {
		boom := errors.New("boom")
		_, err := RestoreVisitors(snap, func(string) (*Workspace, error) { return nil, boom })
		if !errors.Is(err, boom) {
			t.Fatalf("error %v, want boom", err)
		}
	})
	t.Run("wrong workspace", func(t *testing.T) {
		_, err := RestoreVisitors(snap, func(string) (*Workspace, error) { return ws2, nil })
		if err == nil || !strings.Contains(err.Error(), "asked for workspace ws-1, got ws-2") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("twice the same visitor", func(t *testing.T) {
		snap, err := AppendVisitors(nil, []*Visitor{a, b, a})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := RestoreVisitors(snap, lookup); !errors.Is(err, ErrInvalidSnapshot) || !strings.Contains(err.Error(), "twice") {
			t.Fatalf("error %v, want ErrInvalidSnapshot", err)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		for i := range len(snap) {
			if _, err := RestoreVisitors(snap[:i], lookup); !errors.Is(err, ErrInvalidSnapshot) {
				t.Fatalf("the first %d of %d bytes: error %v", i, len(snap), err)
			}
		}
	})
	t.Run("formats mixed up", func(t *testing.T) {
		if _, err := RestoreVisitors(snapshotOf(t, a), lookup); !errors.Is(err, ErrInvalidSnapshot) || !strings.Contains(err.Error(), "a visitor snapshot, not a shard one") {
			t.Fatalf("error %v", err)
		}
		if _, err := ws1.RestoreVisitor(snap); !errors.Is(err, ErrInvalidSnapshot) || !strings.Contains(err.Error(), "a shard snapshot, not a visitor one") {
			t.Fatalf("error %v", err)
		}
	})
}

// seedSnapshots returns real snapshots: those of the table's cases and of
// random streams.
func seedSnapshots(tb testing.TB, ws *Workspace) [][]byte {
	var seeds [][]byte
	for _, tt := range snapshotCases() {
		v := ws.NewVisitor(testAnon)
		for _, c := range tt.setup {
			c.do(v)
		}
		seeds = append(seeds, snapshotOf(tb, v))
	}
	r := rand.New(rand.NewPCG(11, 12))
	for i := range 8 {
		anon := fmt.Sprint("v", i)
		v := ws.NewVisitor(anon)
		for _, a := range arrive(r, genStream(r, anon, true), 2*ws.Rules().Grace, nil) {
			v.Close(a.at, nil)
			v.Apply(&a.e, nil)
		}
		seeds = append(seeds, snapshotOf(tb, v))
	}
	return seeds
}

// exercise makes calls around each of v's sessions: a restored visitor,
// whatever state it holds, must not panic.
func exercise(v *Visitor) {
	var calls []call
	var times []time.Time
	for _, s := range v.open {
		times = append(times, s.Start.Add(-time.Minute), s.Start, s.LastEvent, s.LastEvent.Add(10*time.Minute), s.LastEvent.Add(time.Hour))
	}
	times = append(times, time.Unix(0, v.horizon).Add(-time.Second), time.Unix(0, v.horizon))
	for i, at := range times {
		e := Event{WorkspaceID: v.ws.id, AnonymousID: v.anonymousID, MessageID: fmt.Sprint("x", i), Timestamp: at, Type: TypeTrack}
		switch i % 5 {
		case 0:
			e.Type, e.URL, e.Referrer = TypePage, home, "https://www.google.com/"
		case 1:
			e.Name, e.Products = ProductAdded, []Product{{ID: "p1", Price: 1}, {SKU: "s"}}
		case 2:
			e.Name, e.Products = CartViewed, []Product{{ID: "p2", Price: 2}}
		case 3:
			e.Name, e.OrderID, e.Total = OrderCompleted, "o1", 3
		default:
			e.Name, e.Products = ProductRemoved, []Product{{ID: "p1"}}
		}
		calls = append(calls, call{e: &e})
	}
	calls = append(calls, profileCall("p"))
	for _, at := range times {
		calls = append(calls, call{close: at.Add(time.Hour)})
	}
	for _, c := range calls {
		c.do(v)
		v.NextClose()
		v.Sessions()
	}
}

// FuzzRestoreVisitor: whatever the data, RestoreVisitor returns a visitor
// or ErrInvalidSnapshot, never panics; the data it accepts is exactly the
// snapshot of the visitor it returns (one encoding per state); and the
// visitor it returns takes further calls without panicking.
func FuzzRestoreVisitor(f *testing.F) {
	ws := newTestWorkspace(f, nil)
	for _, snap := range seedSnapshots(f, ws) {
		f.Add(snap)
	}
	for name, snap := range oldSnapshots(f) {
		if name != "shard" {
			f.Add(snap)
		}
	}
	f.Add([]byte{})
	f.Add([]byte{visitorFormat})
	f.Add([]byte{visitorFormatNoConsent})
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := ws.RestoreVisitor(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidSnapshot) || v != nil {
				t.Fatalf("RestoreVisitor = %v, %v; want nil, ErrInvalidSnapshot", v, err)
			}
			return
		}
		snap, err := v.AppendBinary(nil)
		if err != nil {
			t.Fatalf("a restored visitor does not snapshot: %v", err)
		}
		if data[0] == visitorFormatNoConsent {
			snap = snapshotNoConsent(v) // the same check, in the old format
		}
		if !bytes.Equal(snap, data) {
			t.Fatalf("accepted data is not the snapshot of what it restores:\n%x\n%x", data, snap)
		}
		exercise(v)
	})
}

// FuzzRestoreVisitors: RestoreVisitors never panics, and what it restores
// writes and reads back the same.
func FuzzRestoreVisitors(f *testing.F) {
	ws := newTestWorkspace(f, nil)
	ws2, err := NewWorkspace("ws-2", DefaultRules())
	if err != nil {
		f.Fatal(err)
	}
	lookup := func(id string) (*Workspace, error) {
		return map[string]*Workspace{testWS: ws, "ws-2": ws2}[id], nil
	}
	var vs []*Visitor
	for _, snap := range seedSnapshots(f, ws) {
		v, err := ws.RestoreVisitor(snap)
		if err != nil {
			f.Fatal(err)
		}
		vs = append(vs, v)
	}
	vs = append(vs, ws2.NewVisitor("x"))
	for i := 0; i < len(vs); i += 4 {
		snap, err := AppendVisitors(nil, vs[i:min(i+4, len(vs))])
		if err != nil {
			f.Fatal(err)
		}
		f.Add(snap)
	}
	f.Add(oldSnapshots(f)["shard"])
	f.Fuzz(func(t *testing.T, data []byte) {
		vs, err := RestoreVisitors(data, lookup)
		if err != nil {
			if !errors.Is(err, ErrInvalidSnapshot) {
				t.Fatalf("error %v, want ErrInvalidSnapshot", err)
			}
			return
		}
		snap, err := AppendVisitors(nil, vs)
		if err != nil {
			t.Fatal(err)
		}
		again, err := RestoreVisitors(snap, lookup)
		if err != nil {
			t.Fatal(err)
		}
		if snap2, _ := AppendVisitors(nil, again); !bytes.Equal(snap2, snap) {
			t.Fatal("written, read and written again: the snapshots differ")
		}
	})
}

// BenchmarkSnapshot measures the snapshot of a typical one-session visitor
// (bytes/visitor) and the time to write and read it, alone and in a shard
// snapshot of 10,000 visitors, with and without consent.
func BenchmarkSnapshot(b *testing.B) {
	b.Run("no-consent", func(b *testing.B) { benchmarkSnapshot(b, false) })
	b.Run("consent", func(b *testing.B) { benchmarkSnapshot(b, true) })
}

func benchmarkSnapshot(b *testing.B, withConsent bool) {
	ws := newTestWorkspace(b, func(r *Rules) { r.OwnDomains = []string{"shop-example.com"} })
	vs := typicalVisitors(b, ws, 10_000, withConsent)
	snaps := make([][]byte, len(vs))
	total := 0
	for i, v := range vs {
		snaps[i] = snapshotOf(b, v)
		total += len(snaps[i])
	}
	perVisitor := float64(total) / float64(len(vs))
	b.Run("append", func(b *testing.B) {
		var buf []byte
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			var err error
			if buf, err = vs[i%len(vs)].AppendBinary(buf[:0]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(perVisitor, "bytes/visitor")
	})
	b.Run("restore", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := ws.RestoreVisitor(snaps[i%len(snaps)]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(perVisitor, "bytes/visitor")
	})
	lookup := func(string) (*Workspace, error) { return ws, nil }
	shard, err := AppendVisitors(nil, vs)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("shard-append", func(b *testing.B) {
		buf := make([]byte, 0, len(shard))
		for b.Loop() {
			if buf, err = AppendVisitors(buf[:0], vs); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(vs)), "ns/visitor")
		b.ReportMetric(float64(len(shard))/float64(len(vs)), "bytes/visitor")
	})
	b.Run("shard-restore", func(b *testing.B) {
		for b.Loop() {
			if _, err := RestoreVisitors(shard, lookup); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(vs)), "ns/visitor")
	})
}
