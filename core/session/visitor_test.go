package session

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

const home = "https://shop.com/"

// Events applied in time order: where the session boundaries fall.
func TestApplyCutsSessions(t *testing.T) {
	google := referrer("https://www.google.com/")
	tests := []struct {
		name   string
		rules  func(*Rules)
		events []Event
		want   []int // events per session, oldest first
	}{
		{"one visit", nil, []Event{pv("a", 0, home), pv("b", minutes(5), home+"p"), tr("c", minutes(10), "Signed Up")}, []int{3}},
		{"gap just under the timeout continues", nil, []Event{pv("a", 0, home), pv("b", minutes(30)-1, home)}, []int{2}},
		{"gap of exactly the timeout starts a session", nil, []Event{pv("a", 0, home), pv("b", minutes(30), home)}, []int{1, 1}},
		{"workspace timeout", func(r *Rules) { r.Timeout = 5 * time.Minute }, []Event{pv("a", 0, home), pv("b", minutes(6), home)}, []int{1, 1}},
		{"campaign change", nil, []Event{pv("a", 0, home, utm("google", "cpc", "spring")), pv("b", minutes(5), home, utm("google", "cpc", "summer"))}, []int{1, 1}},
		{"same campaign twice", nil, []Event{pv("a", 0, home, utm("google", "cpc", "spring")), pv("b", minutes(5), home, utm("google", "cpc", "spring"))}, []int{2}},
		{"no campaign on the next page", nil, []Event{pv("a", 0, home, utm("google", "cpc", "spring")), pv("b", minutes(5), home+"p")}, []int{2}},
		{"campaign after a direct page view", nil, []Event{pv("a", 0, home), pv("b", minutes(5), home, utm("news", "email", "may"))}, []int{1, 1}},
		{"campaign on a track event after a direct page view", nil, []Event{pv("a", 0, home), tr("b", minutes(5), "Clicked", utm("news", "email", "may"))}, []int{1, 1}},
		{"campaign after track events only", nil, []Event{tr("a", 0, "Application Opened"), pv("b", minutes(1), home, utm("news", "email", "may"))}, []int{2}},
		{"new ad click", nil, []Event{pv("a", 0, home, click("gclid", "1")), pv("b", minutes(5), home, click("gclid", "2"))}, []int{1, 1}},
		{"click id dropped on a later page", nil, []Event{pv("a", 0, home, utm("google", "cpc", "x"), click("gclid", "1")), pv("b", minutes(5), home, utm("google", "cpc", "x"))}, []int{2}},
		{"external referrer", nil, []Event{pv("a", 0, home), pv("b", minutes(5), home, google)}, []int{1, 1}},
		{"own domain referrer", nil, []Event{pv("a", 0, home), pv("b", minutes(5), home+"p", referrer("https://shop.com/"))}, []int{2}},
		{"own subdomain referrer", nil, []Event{pv("a", 0, home), pv("b", minutes(5), home+"p", referrer("https://www.shop.com/")), pv("c", minutes(6), home, referrer("https://blog.shop.com/"))}, []int{3}},
		{"own host without own domains", func(r *Rules) { r.OwnDomains = nil }, []Event{pv("a", 0, home), pv("b", minutes(5), home+"p", referrer("https://www.shop.com/"))}, []int{2}},
		{"payment provider return", nil, []Event{pv("a", 0, home+"checkout"), pv("b", minutes(5), home+"thanks", referrer("https://www.paypal.com/checkoutnow")), pv("c", minutes(6), home, referrer("https://checkout.stripe.com/c/pay"))}, []int{3}},
		{"configured ignored referrer", func(r *Rules) { r.IgnoredReferrers = []string{"pay.example"} }, []Event{pv("a", 0, home), pv("b", minutes(5), home, referrer("https://eu.pay.example/"))}, []int{2}},
		{"paypal without the default list", func(r *Rules) { r.IgnoredReferrers = nil }, []Event{pv("a", 0, home), pv("b", minutes(5), home, referrer("https://www.paypal.com/"))}, []int{1, 1}},
		{"same referrer again in a single-page app", nil, []Event{pv("a", 0, home, google), pv("b", minutes(2), home+"p", google), pv("c", minutes(3), home+"q", referrer("https://www.google.de/"))}, []int{3}},
		{"other referrer after a referred visit", nil, []Event{pv("a", 0, home, google), pv("b", minutes(5), home, referrer("https://facebook.com/"))}, []int{1, 1}},
		{"campaign landing page keeps its referrer", nil, []Event{pv("a", 0, home, utm("facebook", "paid", "x"), referrer("https://l.facebook.com/")), pv("b", minutes(1), home+"p", referrer("https://l.facebook.com/"))}, []int{2}},
		{"referrer on a track event", nil, []Event{pv("a", 0, home), tr("b", minutes(5), "Clicked", google)}, []int{2}},
		{"max length", func(r *Rules) { r.MaxLength = time.Hour }, []Event{pv("a", 0, home), pv("b", minutes(20), home), pv("c", minutes(40), home), pv("d", minutes(60), home), pv("e", minutes(80), home)}, []int{3, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newTestWorkspace(t, tt.rules).NewVisitor(testAnon)
			applyAll(t, v, tt.events...)
			if got := counts(v); !slices.Equal(got, tt.want) {
				t.Fatalf("events per session = %v, want %v: %s", got, tt.want, describe(v.Sessions()))
			}
		})
	}
}

func TestApplyDefaultMaxLengthIs24Hours(t *testing.T) {
	v := newTestWorkspace(t, nil).NewVisitor(testAnon)
	var events []Event
	for m := 0; m <= 25*60; m += 20 {
		events = append(events, tr(fmt.Sprint("m", m), minutes(float64(m)), "Heartbeat"))
	}
	applyAll(t, v, events...)
	ss := v.Sessions()
	if len(ss) != 2 || ss[0].Duration() >= 24*time.Hour || ss[1].Start.Sub(t0) != 24*time.Hour {
		t.Fatalf("sessions %s, want a cut at 24h", describe(ss))
	}
}

// Events applied out of time order: where late events land.
func TestApplyLateEvents(t *testing.T) {
	tests := []struct {
		name    string
		rules   func(*Rules)
		arrival []Event
		want    []int  // events per session
		changes string // change kinds, in order
	}{
		{"late event inside a session", nil, []Event{pv("a", 0, home), pv("b", minutes(10), home), tr("c", minutes(5), "Clicked")}, []int{3}, "started,updated,updated"},
		{"late event extends the start backwards", nil, []Event{pv("a", minutes(10), home), tr("b", 0, "Application Opened")}, []int{2}, "started,merged"},
		{"out of order within a visit", nil, []Event{pv("a", minutes(20), home), pv("b", 0, home), pv("c", minutes(10), home)}, []int{3}, "started,merged,updated"},
		{"late event far before the session", nil, []Event{pv("a", 10*time.Hour, home), tr("b", 0, "Synced")}, []int{1, 1}, "started,started"},
		{"bridging event merges two sessions", nil, []Event{pv("a", 0, home), pv("b", minutes(40), home), tr("c", minutes(20), "Clicked")}, []int{3}, "started,started,merged"},
		{"event close to both but the later session's campaign differs", nil, []Event{pv("a", 0, home), pv("b", minutes(40), home, utm("news", "email", "x")), tr("c", minutes(20), "Clicked")}, []int{2, 1}, "started,started,updated"},
		{"no bridge past max length", func(r *Rules) { r.MaxLength = time.Hour }, []Event{pv("a", 0, home), pv("b", minutes(40), home), pv("b2", minutes(65), home), tr("c", minutes(20), "Clicked")}, []int{2, 2}, "started,started,updated,updated"},
		{"late direct page before a campaign session", nil, []Event{pv("a", minutes(10), home, utm("news", "email", "x")), pv("b", minutes(5), home)}, []int{1, 1}, "started,started"},
		{"late track event before a campaign session joins it", nil, []Event{pv("a", minutes(10), home, utm("news", "email", "x")), tr("b", minutes(5), "Opened")}, []int{2}, "started,merged"},
		{"late campaign page ahead of a direct one takes the session", nil, []Event{tr("a", minutes(10), "Clicked"), pv("b", minutes(5), home, utm("news", "email", "x"))}, []int{2}, "started,merged"},
		{"late campaign inside a session joins it", nil, []Event{pv("a", 0, home), pv("b", minutes(10), home), pv("c", minutes(5), home, utm("news", "email", "x"))}, []int{3}, "started,updated,updated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newTestWorkspace(t, tt.rules).NewVisitor(testAnon)
			changes := applyAll(t, v, tt.arrival...)
			if got := counts(v); !slices.Equal(got, tt.want) {
				t.Fatalf("events per session = %v, want %v: %s", got, tt.want, describe(v.Sessions()))
			}
			if got := kinds(changes); got != tt.changes {
				t.Fatalf("changes = %s, want %s", got, tt.changes)
			}
		})
	}
}

func TestApplyBackwardsChangesTheIDAsAMerge(t *testing.T) {
	ws := newTestWorkspace(t, nil)
	v := ws.NewVisitor(testAnon)
	first := applyAll(t, v, pv("late-landing", minutes(10), home))[0].Session
	c := applyAll(t, v, tr("earliest", minutes(2), "Application Opened"))[0]
	want := newID(testWS, testAnon, "earliest", t0.Add(minutes(2)))
	if c.Kind != Merged || c.Absorbed != first.ID || c.Session.ID != want || !c.Session.Start.Equal(t0.Add(minutes(2))) {
		t.Fatalf("change %v absorbed %s id %s start %v; want merged, absorbing %s, id %s", c.Kind, c.Absorbed, c.Session.ID, c.Session.Start, first.ID, want)
	}
}

func TestBridgeMergesState(t *testing.T) {
	ws := newTestWorkspace(t, nil)
	v := ws.NewVisitor(testAnon)
	applyAll(t, v,
		pv("a1", 0, home+"landing", referrer("https://www.google.com/"), user("u-old")),
		tr("a2", minutes(5), ProductAdded, products(Product{ID: "p1", Price: 10})),
		pv("b1", minutes(40), home+"second", user("u-new")),
		tr("b2", minutes(45), ProductAdded, products(Product{ID: "p2", Price: 5, Quantity: 2})),
		tr("b3", minutes(46), OrderCompleted, order("o1", 20)),
		pv("b4", minutes(50), home+"exit"),
	)
	if n := v.Len(); n != 2 {
		t.Fatalf("%d sessions before the bridge, want 2", n)
	}
	second := v.Sessions()[1]
	changes := applyAll(t, v, tr("bridge", minutes(25), "Scrolled"))
	if len(changes) != 1 || changes[0].Kind != Merged || changes[0].Absorbed != second.ID {
		t.Fatalf("changes %s absorbed %s, want one merge absorbing %s", kinds(changes), changes[0].Absorbed, second.ID)
	}
	s := changes[0].Session
	if !reflect.DeepEqual(s, v.Sessions()[0]) || v.Len() != 1 {
		t.Fatalf("the change does not carry the one open session")
	}
	checks := []struct {
		what      string
		got, want any
	}{
		{"id", s.ID, newID(testWS, testAnon, "a1", t0)},
		{"start", s.Start, t0},
		{"last event", s.LastEvent, t0.Add(minutes(50))},
		{"events", s.Events, 7},
		{"page views", s.PageViews, 3},
		{"landing page", s.LandingPage, home + "landing"},
		{"referrer", s.Referrer, "https://www.google.com/"},
		{"current page", s.CurrentPage, home + "exit"},
		{"channel", s.Channel.Group, OrganicSearch},
		{"user", s.UserID, "u-new"},
		{"orders", s.OrderCount, 1},
		{"revenue", s.Revenue(), 20.0},
		{"cart emptied by the order", s.Cart.IsEmpty(), true},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("merged %s = %v, want %v", c.what, c.got, c.want)
		}
	}
}

func TestTooLate(t *testing.T) {
	ws := newTestWorkspace(t, nil) // timeout 30m, grace 10m
	v := ws.NewVisitor(testAnon)
	applyAll(t, v, pv("a", 0, home), pv("b", minutes(10), home))
	if closed := v.Close(t0.Add(minutes(50)), nil); len(closed) != 1 {
		t.Fatalf("Close at last+timeout+grace closed %d sessions, want 1", len(closed))
	}
	tests := []struct {
		name string
		e    Event
		want error
	}{
		{"inside the closed session", tr("c", minutes(5), "Clicked"), ErrTooLate},
		{"within the timeout after it", tr("d", minutes(39), "Clicked"), ErrTooLate},
		{"before it", tr("e", -time.Hour, "Clicked"), ErrTooLate},
		{"at its end", tr("f", minutes(40), "Clicked"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := v.Apply(&tt.e, nil)
			checkErr(t, err, tt.want)
			if err != nil && len(out) != 0 {
				t.Fatalf("a refused event reported changes %s", kinds(out))
			}
		})
	}
}

func TestApplyRefusesBadEvents(t *testing.T) {
	v := newTestWorkspace(t, nil).NewVisitor(testAnon)
	tests := []struct {
		name string
		edit func(*Event)
		want error
	}{
		{"other device", func(e *Event) { e.AnonymousID = "anon-2" }, ErrOtherVisitor},
		{"other workspace", func(e *Event) { e.WorkspaceID = "ws-2" }, ErrOtherVisitor},
		{"no message id", func(e *Event) { e.MessageID = "" }, ErrInvalidEvent},
		{"no time", func(e *Event) { e.Timestamp = time.Time{} }, ErrInvalidEvent},
		{"far future", func(e *Event) { e.Timestamp = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC) }, ErrInvalidEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := pv("a", 0, home)
			tt.edit(&e)
			_, err := v.Apply(&e, nil)
			checkErr(t, err, tt.want)
		})
	}
	if v.Len() != 0 {
		t.Fatalf("refused events opened %d sessions", v.Len())
	}
}

func TestClose(t *testing.T) {
	tests := []struct {
		name    string
		events  []Event
		now     time.Duration // since t0
		closed  int
		bounced bool
	}{
		{"before timeout + grace", []Event{pv("a", 0, home)}, minutes(40) - 1, 0, false},
		{"at timeout + grace", []Event{pv("a", 0, home)}, minutes(40), 1, true},
		{"two page views", []Event{pv("a", 0, home), pv("b", minutes(1), home)}, minutes(41), 1, false},
		{"a page view and a track event", []Event{pv("a", 0, home), tr("b", minutes(1), "Clicked")}, minutes(41), 1, false},
		{"a page view and an identify", []Event{pv("a", 0, home), ev("b", TypeIdentify, minutes(1), user("u"))}, minutes(41), 1, true},
		{"track events only", []Event{tr("a", 0, "Opened")}, minutes(40), 1, false},
		{"a screen view", []Event{ev("a", TypeScreen, 0, func(e *Event) { e.Name = "Home" })}, minutes(40), 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newTestWorkspace(t, nil).NewVisitor(testAnon)
			for _, c := range applyAll(t, v, tt.events...) {
				if c.Session.Bounced || c.Session.Closed {
					t.Fatalf("open session reported bounced=%v closed=%v", c.Session.Bounced, c.Session.Closed)
				}
			}
			changes := v.Close(t0.Add(tt.now), nil)
			if len(changes) != tt.closed {
				t.Fatalf("closed %d sessions, want %d", len(changes), tt.closed)
			}
			if tt.closed == 0 {
				return
			}
			s := changes[0].Session
			if changes[0].Kind != Closed || !s.Closed || s.Bounced != tt.bounced || s.ExitPage != s.CurrentPage || v.Len() != 0 {
				t.Fatalf("closed change %v: closed=%v bounced=%v exit=%q current=%q open=%d; want bounced=%v",
					changes[0].Kind, s.Closed, s.Bounced, s.ExitPage, s.CurrentPage, v.Len(), tt.bounced)
			}
		})
	}
}

func TestCloseKeepsLaterSessionsAndNextClose(t *testing.T) {
	v := newTestWorkspace(t, nil).NewVisitor(testAnon)
	if _, ok := v.NextClose(); ok {
		t.Fatal("an empty visitor has a next close")
	}
	applyAll(t, v, pv("a", 0, home), pv("b", time.Hour, home))
	if next, ok := v.NextClose(); !ok || !next.Equal(t0.Add(minutes(40))) {
		t.Fatalf("NextClose = %v, %v; want t0+40m", next, ok)
	}
	closed := v.Close(t0.Add(minutes(45)), nil)
	if len(closed) != 1 || closed[0].Session.LandingPage != home || v.Len() != 1 {
		t.Fatalf("closed %d, open %d; want the first closed and the second open", len(closed), v.Len())
	}
	if next, _ := v.NextClose(); !next.Equal(t0.Add(time.Hour + minutes(40))) {
		t.Fatalf("NextClose = %v, want t0+1h40m", next)
	}
}

func TestChangesCarryCopies(t *testing.T) {
	v := newTestWorkspace(t, nil).NewVisitor(testAnon)
	c := applyAll(t, v, tr("a", 0, ProductAdded, products(Product{ID: "p1", Price: 3})))[0]
	applyAll(t, v, tr("b", minutes(1), ProductAdded, products(Product{ID: "p1", Price: 3})))
	if items := c.Session.Cart.Items(); len(items) != 1 || items[0].Quantity != 1 {
		t.Fatalf("an earlier change's cart moved with the session: %+v", items)
	}
}

func TestSetProfileID(t *testing.T) {
	v := newTestWorkspace(t, nil).NewVisitor(testAnon)
	applyAll(t, v, pv("a", 0, home))
	changes := v.SetProfileID("prof-1", nil)
	if len(changes) != 1 || changes[0].Kind != Updated || changes[0].Session.ProfileID != "prof-1" {
		t.Fatalf("SetProfileID changes %s", kinds(changes))
	}
	if again := v.SetProfileID("prof-1", nil); len(again) != 0 {
		t.Fatalf("setting the same profile again reported %s", kinds(again))
	}
	c := applyAll(t, v, pv("b", 2*time.Hour, home))[0]
	if c.Kind != Started || c.Session.ProfileID != "prof-1" {
		t.Fatalf("a new session has profile %q, want prof-1", c.Session.ProfileID)
	}
}

func TestSessionFields(t *testing.T) {
	ws := newTestWorkspace(t, nil)
	v := ws.NewVisitor(testAnon)
	iphone := "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
	long := home + "search?q=" + string(make([]byte, 1000))
	changes := applyAll(t, v,
		pv("a", 0, home+"landing?utm_source=news", utm("news", "email", "may"), referrer("https://mail.example/"),
			func(e *Event) {
				e.UserAgent = iphone
				e.Location = Location{Country: "FR", City: "Lyon", IP: "203.0.113.7"}
			}),
		ev("b", TypeIdentify, minutes(1), user("u-1")),
		pv("c", minutes(2), long, func(e *Event) { e.UserAgent = "curl/8" }),
	)
	s := changes[len(changes)-1].Session
	checks := []struct {
		what      string
		got, want any
	}{
		{"kinds", kinds(changes), "started,updated,updated"},
		{"workspace", s.WorkspaceID, testWS},
		{"anonymous id", s.AnonymousID, testAnon},
		{"user", s.UserID, "u-1"},
		{"duration", s.Duration(), minutes(2)},
		{"events", s.Events, 3},
		{"page views", s.PageViews, 2},
		{"landing", s.LandingPage, home + "landing?utm_source=news"},
		{"current page cut", len(s.CurrentPage), MaxURLBytes},
		{"exit page while open", s.ExitPage, ""},
		{"referrer", s.Referrer, "https://mail.example/"},
		{"campaign", s.Campaign, Campaign{Source: "news", Medium: "email", Name: "may"}},
		{"channel", s.Channel, Channel{Group: Email, Source: "news", Medium: "email", Campaign: "may"}},
		{"device of the first event", s.Device, Device{Type: Mobile, OS: "iOS", Browser: "Safari"}},
		{"location", s.Location, Location{Country: "FR", City: "Lyon", IP: "203.0.113.7"}},
		{"converted", s.Converted(), false},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
}

func TestScreensArePageViews(t *testing.T) {
	v := newTestWorkspace(t, nil).NewVisitor(testAnon)
	screen := func(id string, at time.Duration, name string) Event {
		return ev(id, TypeScreen, at, func(e *Event) { e.Name = name; e.Device = Device{Type: "ios"} })
	}
	s := applyAll(t, v, screen("a", 0, "Home"), screen("b", minutes(1), "Product"))[1].Session
	if s.PageViews != 2 || s.LandingPage != "Home" || s.CurrentPage != "Product" || s.Device.Type != Mobile || s.Device.OS != "iOS" {
		t.Fatalf("screens: pages=%d landing=%q current=%q device=%+v", s.PageViews, s.LandingPage, s.CurrentPage, s.Device)
	}
}

// Replaying the same events, in another order or into a fresh visitor,
// rebuilds the same sessions with the same ids: failover depends on it.
func TestReplayIsDeterministic(t *testing.T) {
	events := []Event{
		pv("a", 0, home, referrer("https://www.google.com/"), func(e *Event) { e.UserAgent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/124.0 Safari/537.36" }),
		tr("b", minutes(1), ProductAdded, products(Product{ID: "p1", Price: 9.99})),
		ev("c", TypeIdentify, minutes(2), user("u-1")),
		tr("d", minutes(3), ProductAdded, products(Product{ID: "p2", Price: 0.1, Quantity: 3})),
		tr("e", minutes(4), OrderCompleted, order("o-1", 10.29)),
		pv("f", minutes(5), home+"thanks"),
		pv("g", minutes(50), home, utm("news", "email", "may")), // a second session
		tr("h", minutes(52), ProductAdded, products(Product{ID: "p3", Price: 1})),
		tr("i", minutes(53), ProductRemoved, products(Product{ID: "p3"})),
		pv("j", minutes(60), home+"p"),
		tr("k", minutes(60), "Same Instant"), // tie with j, broken by message id
	}
	orders := [][]int{
		{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10},
		{10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0},
		{5, 0, 3, 1, 4, 2, 9, 6, 10, 8, 7},
		{1, 0, 2, 3, 4, 5, 7, 6, 8, 10, 9},
	}
	var want []Session
	for i, order := range orders {
		v := newTestWorkspace(t, nil).NewVisitor(testAnon)
		for _, j := range order {
			applyAll(t, v, events[j])
		}
		got := v.Sessions()
		if i == 0 {
			want = got
			if len(want) != 2 {
				t.Fatalf("%d sessions, want 2: %s", len(want), describe(want))
			}
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("arrival order %v gives\n%s\nwant\n%s", order, describe(got), describe(want))
		}
	}
	if want[0].ID != newID(testWS, testAnon, "a", t0) || want[1].ID != newID(testWS, testAnon, "g", t0.Add(minutes(50))) {
		t.Fatalf("ids %s %s are not those of the sessions' first events", want[0].ID, want[1].ID)
	}
}

func TestID(t *testing.T) {
	at := time.Date(2026, 3, 2, 10, 0, 0, 123456789, time.UTC)
	id := newID("ws", "anon", "msg", at)
	s := id.String()
	if len(s) != 36 || s[14] != '7' || !slices.Contains([]byte("89ab"), s[19]) {
		t.Fatalf("%s is not a UUIDv7", s)
	}
	if ms := int64(id[0])<<40 | int64(id[1])<<32 | int64(id[2])<<24 | int64(id[3])<<16 | int64(id[4])<<8 | int64(id[5]); ms != at.UnixMilli() {
		t.Fatalf("id time %d ms, want %d", ms, at.UnixMilli())
	}
	if newID("ws", "anon", "msg", at) != id {
		t.Fatal("the same event gives two ids")
	}
	for _, other := range []ID{newID("ws2", "anon", "msg", at), newID("ws", "anon2", "msg", at), newID("ws", "anon", "msg2", at), newID("wsa", "non", "msg", at)} {
		if other == id {
			t.Fatalf("different events give the id %s", id)
		}
	}
	text, _ := id.MarshalText()
	if string(text) != s || id.IsZero() || !(ID{}).IsZero() {
		t.Fatalf("MarshalText %s, String %s", text, s)
	}
}

func TestErrorsAreDistinct(t *testing.T) {
	if errors.Is(ErrTooLate, ErrInvalidEvent) || errors.Is(ErrOtherVisitor, ErrTooLate) {
		t.Fatal("sentinel errors match each other")
	}
}

func TestLongCampaignValuesCompareAsKept(t *testing.T) {
	v := newTestWorkspace(t, nil).NewVisitor(testAnon)
	long := strings.Repeat("spring-sale-", 30) // over MaxTextBytes
	applyAll(t, v, pv("a", 0, home, utm("news", "email", long), click("gclid", long)), pv("b", minutes(1), home, utm("news", "email", long), click("gclid", long)))
	if got := counts(v); !slices.Equal(got, []int{2}) {
		t.Fatalf("events per session = %v, want one session of 2", got)
	}
	if s := v.Sessions()[0]; len(s.Campaign.Name) != MaxTextBytes || len(s.Campaign.ClickID) != MaxTextBytes {
		t.Fatalf("kept campaign name of %d bytes, click id of %d; want %d", len(s.Campaign.Name), len(s.Campaign.ClickID), MaxTextBytes)
	}
}
