package session

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/core/consent"
)

// genStream generates the events of one device, in time order: visits
// separated by gaps below, around and above the timeout, each a landing
// page (with a campaign or an external referrer when keyed) and a few
// page views, track, identify and e-commerce events seconds to minutes
// apart. Landing pages and identify calls may state a consent. Times are
// distinct.
func genStream(r *rand.Rand, anon string, keyed bool) []Event {
	var events []Event
	at := time.Duration(r.Int64N(int64(time.Hour)))
	add := func(typ string, opts ...opt) {
		e := ev(fmt.Sprintf("%s-%d", anon, len(events)), typ, at, opts...)
		e.AnonymousID = anon
		events = append(events, e)
		at += time.Second + time.Duration(r.Int64N(int64(3*time.Minute)))
	}
	pick := func(list ...string) string { return list[r.IntN(len(list))] }
	campaigns := []Campaign{{Source: "google", Medium: "cpc", Name: "a"}, {Source: "news", Medium: "email", Name: "b"}, {ClickIDParam: "gclid", ClickID: "c1"}}
	cart := []Product{{ID: "p1", Price: 10}, {ID: "p2", Price: 2.5}, {ID: "p3", Price: 99.99}}
	choices := []consent.Preferences{nil, nil, granted, withdrawn, nothing}
	choice := func() opt { return consents(choices[r.IntN(len(choices))]) }
	for v := range 1 + r.IntN(5) {
		if v > 0 {
			switch r.IntN(3) {
			case 0:
				at += minutes(float64(1 + r.IntN(20)))
			case 1:
				at += minutes(float64(25 + r.IntN(10)))
			default:
				at += time.Duration(1+r.IntN(5)) * time.Hour
			}
		}
		if r.IntN(4) == 0 {
			add(TypeTrack, func(e *Event) { e.Name = "Application Opened" })
		}
		landing := []opt{func(e *Event) { e.URL = pick(home, home+"sale", home+"p/1") }, choice()}
		if keyed {
			switch r.IntN(4) {
			case 0:
				c := campaigns[r.IntN(len(campaigns))]
				landing = append(landing, func(e *Event) { e.Campaign = c })
			case 1:
				landing = append(landing, referrer(pick("https://www.google.com/", "https://l.facebook.com/", "https://blog.example.org/x")))
			}
		}
		add(TypePage, landing...)
		for range r.IntN(12) {
			switch r.IntN(8) {
			case 0, 1:
				add(TypePage, func(e *Event) { e.URL = pick(home+"a", home+"b", home+"c") }, referrer(pick("", "https://shop.com/", "https://www.paypal.com/")))
			case 2:
				add(TypeTrack, func(e *Event) { e.Name = "Clicked" })
			case 3:
				add(TypeIdentify, user(pick("u1", "u2")), choice(), func(e *Event) {
					e.UserAgent = pick("", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Safari/604.1")
				})
			case 4:
				add(TypeTrack, func(e *Event) { e.Name = ProductAdded }, products(cart[r.IntN(len(cart))]))
			case 5:
				add(TypeTrack, func(e *Event) { e.Name = ProductRemoved }, products(cart[r.IntN(len(cart))]))
			case 6:
				add(TypeTrack, func(e *Event) { e.Name = CartViewed }, products(cart[:1+r.IntN(len(cart))]...))
			default:
				add(TypeTrack, func(e *Event) { e.Name = OrderCompleted }, order(pick("o1", "o2", "o3"), 12.34))
			}
		}
	}
	return events
}

// arrival is an event and when the collector received it.
type arrival struct {
	e  Event
	at time.Time
}

// arrive delays each event by less than grace (pinned events by nothing)
// and returns them in arrival order.
func arrive(r *rand.Rand, events []Event, grace time.Duration, pinned func(*Event) bool) []arrival {
	out := make([]arrival, len(events))
	for i, e := range events {
		var d time.Duration
		if pinned == nil || !pinned(&events[i]) {
			d = time.Duration(r.Int64N(int64(grace)))
		}
		out[i] = arrival{e: e, at: e.Timestamp.Add(d)}
	}
	slices.SortStableFunc(out, func(a, b arrival) int { return a.at.Compare(b.at) })
	return out
}

// replay applies the events in arrival order, closing sessions with the
// arrival time as watermark, and returns the closed sessions by start and
// the number of events refused as too late.
func replay(t *testing.T, ws *Workspace, anon string, arrivals []arrival) (closed []Session, tooLate int) {
	t.Helper()
	v := ws.NewVisitor(anon)
	var out []Change
	collect := func(changes []Change) {
		for _, c := range changes {
			if c.Kind == Closed {
				closed = append(closed, c.Session)
			}
		}
	}
	for _, a := range arrivals {
		collect(v.Close(a.at, out[:0]))
		var err error
		switch out, err = v.Apply(&a.e, out[:0]); {
		case err == ErrTooLate:
			tooLate++
		case err != nil:
			t.Fatal(err)
		}
	}
	collect(v.Close(time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), out[:0]))
	slices.SortFunc(closed, func(a, b Session) int { return a.Start.Compare(b.Start) })
	return closed, tooLate
}

func inOrder(events []Event) []arrival {
	return arrive(nil, events, 0, func(*Event) bool { return true })
}

// For random streams delivered in random order within the grace: every
// event is accepted and counted once, and sessions of a visitor are at
// least the timeout apart unless a campaign, a referrer or the maximum
// length split them.
func TestPropertyEventsCountedOnceAndSessionsApart(t *testing.T) {
	ws := newTestWorkspace(t, nil)
	rules := ws.Rules()
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		anon := fmt.Sprint("v", i)
		events := genStream(r, anon, true)
		closed, tooLate := replay(t, ws, anon, arrive(r, events, rules.Grace, nil))
		if tooLate != 0 {
			t.Fatalf("stream %d: %d events refused as too late within the grace", i, tooLate)
		}
		total := 0
		for _, s := range closed {
			total += s.Events
		}
		if total != len(events) {
			t.Fatalf("stream %d: sessions count %d events, %d were applied", i, total, len(events))
		}
		for j := 1; j < len(closed); j++ {
			a, b := closed[j-1], closed[j]
			if !a.LastEvent.Before(b.Start) {
				t.Fatalf("stream %d: sessions overlap: %s", i, describe(closed[j-1:j+1]))
			}
			if b.Start.Sub(a.LastEvent) >= rules.Timeout || b.LastEvent.Sub(a.Start) >= rules.MaxLength {
				continue
			}
			split := false
			for k := range events {
				e := &events[k]
				inB := !e.Timestamp.Before(b.Start) && !e.Timestamp.After(b.LastEvent)
				if inB && (!e.Campaign.IsZero() || e.Type == TypePage && ws.externalReferrer(e.Referrer, e.URL) != "") {
					split = true
				}
			}
			if !split {
				t.Fatalf("stream %d: sessions %v apart without a campaign or referrer: %s", i, b.Start.Sub(a.LastEvent), describe(closed[j-1:j+1]))
			}
		}
	}
}

// Without campaigns or external referrers, any arrival order within the
// grace gives the same sessions, ids and state as time order.
func TestPropertyArrivalOrderDoesNotMatter(t *testing.T) {
	ws := newTestWorkspace(t, nil)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 300 {
		anon := fmt.Sprint("v", i)
		events := genStream(r, anon, false)
		want, _ := replay(t, ws, anon, inOrder(events))
		got, _ := replay(t, ws, anon, arrive(r, events, ws.Rules().Grace, nil))
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("stream %d: out of order vs in order: %s", i, diffAll(got, want))
		}
	}
}

// With campaigns and referrers, arrival order does not matter as long as
// the events that decide a session's source (page views, campaign events)
// arrive before any later event of their device: the others may arrive
// late, extend, bridge and merge sessions.
func TestPropertyLateEventsDoNotMatterWhenSourcesArriveInOrder(t *testing.T) {
	ws := newTestWorkspace(t, nil)
	r := rand.New(rand.NewPCG(5, 6))
	pinned := func(e *Event) bool {
		return e.Type == TypePage || !e.Campaign.IsZero()
	}
	for i := range 300 {
		anon := fmt.Sprint("v", i)
		events := genStream(r, anon, true)
		want, _ := replay(t, ws, anon, inOrder(events))
		got, _ := replay(t, ws, anon, arrive(r, events, ws.Rules().Grace, pinned))
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("stream %d: out of order vs in order: %s", i, diffAll(got, want))
		}
	}
}
