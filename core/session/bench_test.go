package session

import (
	"container/heap"
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/core/consent"
)

// traffic makes realistic visits: product URLs of realistic length, real
// user agents, a third of visits from a campaign (some with a click id), a
// third from another site, page views, product views, cart adds, some
// identifies and orders. With consent set, every event states its
// visitor's consent, drawn from another source so that the events are
// otherwise the same.
type traffic struct {
	r         *rand.Rand
	pages     []string
	agents    []string
	referrers []string
	places    []Location
	n         int
	consent   *rand.Rand // nil: events state no consent
}

// withConsent makes the events state consent.
func (tr *traffic) withConsent(seed uint64) *traffic {
	tr.consent = rand.New(rand.NewPCG(seed+2, seed+3))
	return tr
}

// consentChoices are what visitors choose in the benchmarks.
var consentChoices = []consent.Preferences{
	{"analytics": true, "marketing": true, "personalization": true},
	{"analytics": true, "marketing": false, "personalization": false},
	{"analytics": true, "marketing": true, "personalization": false},
}

func newTraffic(seed uint64) *traffic {
	r := rand.New(rand.NewPCG(seed, seed+1))
	tr := &traffic{r: r}
	cats := []string{"shoes", "jackets", "bags", "accessories", "sale", "new-arrivals"}
	for i := range 2000 {
		tr.pages = append(tr.pages, fmt.Sprintf("https://www.shop-example.com/collections/%s/products/%s-%d?variant=%d",
			cats[i%len(cats)], strings.Repeat("trail-runner", 1+i%2), i, 40000000000+r.IntN(1e9)))
	}
	tr.agents = []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
		"Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Safari/537.36",
		"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80",
		"Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
	}
	tr.referrers = []string{"https://www.google.com/", "https://www.bing.com/", "https://l.facebook.com/", "https://www.instagram.com/", "https://blog.example.org/best-trail-shoes-2026"}
	tr.places = []Location{{Country: "France", City: "Lyon"}, {Country: "Germany", City: "Berlin"}, {Country: "United States", City: "Austin"}, {Country: "Spain", City: "Madrid"}}
	return tr
}

// anonymousID returns a fresh id shaped like the SDKs' UUIDs.
func (tr *traffic) anonymousID() string {
	tr.n++
	return fmt.Sprintf("%08x-%04x-4%03x-a%03x-%012x", tr.r.Uint32(), tr.n&0xffff, tr.r.IntN(4096), tr.r.IntN(4096), tr.r.Uint64()&(1<<48-1))
}

// visit returns the events of one visit of anon starting at start.
func (tr *traffic) visit(anon string, start time.Time) []Event {
	r := tr.r
	at := start
	ua := tr.agents[r.IntN(len(tr.agents))]
	place := tr.places[r.IntN(len(tr.places))]
	place.IP = fmt.Sprintf("203.0.%d.%d", r.IntN(256), r.IntN(256))
	var events []Event
	var choice, withdrawn consent.Preferences
	withdrawAt := -1
	if tr.consent != nil {
		choice = consentChoices[tr.consent.IntN(len(consentChoices))]
		withdrawn = maps.Clone(choice)
		withdrawn["marketing"] = false
		if tr.consent.IntN(10) == 0 { // a tenth of visitors withdraw during the visit
			withdrawAt = 1 + tr.consent.IntN(4)
		}
	}
	add := func(typ, name, url string) *Event {
		events = append(events, Event{
			WorkspaceID: testWS, AnonymousID: anon, MessageID: fmt.Sprintf("%s-%d", anon, len(events)),
			Type: typ, Name: name, Timestamp: at, URL: url, UserAgent: ua, Location: place,
		})
		switch e := &events[len(events)-1]; {
		case withdrawAt >= 0 && len(events) > withdrawAt:
			e.Consent = maps.Clone(withdrawn) // one map per event, as FromEntry makes them
		case choice != nil:
			e.Consent = maps.Clone(choice)
		}
		at = at.Add(time.Duration(5+r.IntN(120)) * time.Second)
		return &events[len(events)-1]
	}
	page := tr.pages[r.IntN(len(tr.pages))]
	landing := add(TypePage, "", page)
	switch r.IntN(3) {
	case 0:
		landing.Campaign = [](Campaign){
			{Source: "google", Medium: "cpc", Name: "brand-2026"},
			{Source: "facebook", Medium: "paid_social", Name: "spring-sale"},
			{Source: "newsletter", Medium: "email", Name: "week-12"},
		}[r.IntN(3)]
		if r.IntN(2) == 0 {
			landing.Campaign.ClickIDParam, landing.Campaign.ClickID = "gclid", fmt.Sprintf("Cj0KCQjw%080x", r.Uint64())
		}
		landing.URL += "&utm_source=" + landing.Campaign.Source + "&utm_medium=" + landing.Campaign.Medium
	case 1:
		landing.Referrer = tr.referrers[r.IntN(len(tr.referrers))]
	}
	for range 2 + r.IntN(7) {
		switch r.IntN(10) {
		case 0, 1, 2, 3:
			add(TypePage, "", tr.pages[r.IntN(len(tr.pages))]).Referrer = "https://www.shop-example.com/"
		case 4, 5:
			add(TypeTrack, "Product Viewed", page)
		case 6, 7:
			e := add(TypeTrack, ProductAdded, page)
			e.Products = []Product{{ID: fmt.Sprint("sku-", r.IntN(2000)), Name: "Trail Runner", Price: 89.9, Quantity: 1}}
		case 8:
			add(TypeIdentify, "", page).UserID = fmt.Sprintf("user-%d", r.IntN(1e7))
		default:
			if r.IntN(4) == 0 {
				e := add(TypeTrack, OrderCompleted, page)
				e.OrderID, e.Total, e.Currency = fmt.Sprint("order-", r.IntN(1e9)), 89.9, "EUR"
			} else {
				add(TypeTrack, "Checkout Started", page)
			}
		}
	}
	return events
}

// liveSessionBytes builds n visitors with one open session each, kept in
// a map as the worker will keep them, and returns the heap bytes per
// session, visitor and map entry included.
func liveSessionBytes(tb testing.TB, n int, withConsent bool) float64 {
	ws := newTestWorkspace(tb, func(r *Rules) { r.OwnDomains = []string{"shop-example.com"} })
	tr := newTraffic(42)
	if withConsent {
		tr.withConsent(42)
	}
	var out []Change
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	visitors := make(map[string]*Visitor)
	for range n {
		anon := tr.anonymousID()
		v := ws.NewVisitor(anon)
		visitors[anon] = v
		for _, e := range tr.visit(anon, t0) {
			var err error
			if out, err = v.Apply(&e, out[:0]); err != nil {
				tb.Fatal(err)
			}
		}
		if v.Len() != 1 {
			tb.Fatalf("visitor %s has %d sessions, want 1", anon, v.Len())
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(visitors)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
}

// TestMemoryPerSession catches blow-ups: the target is 2 KB per live
// session with its visitor (BenchmarkMemoryPerSession reports the figure
// at 100,000 visitors); the ceiling here is generous, and 20,000 visitors
// keep the test quick under the race detector.
func TestMemoryPerSession(t *testing.T) {
	const n = 20_000
	for _, withConsent := range []bool{false, true} {
		perSession := liveSessionBytes(t, n, withConsent)
		t.Logf("%.0f bytes per live session (%d visitors, consent %v)", perSession, n, withConsent)
		if perSession > 4096 {
			t.Fatalf("%.0f bytes per live session (consent %v), want at most 4096 (target 2048)", perSession, withConsent)
		}
	}
}

func BenchmarkMemoryPerSession(b *testing.B) {
	var perSession float64
	for b.Loop() {
		perSession = liveSessionBytes(b, 100_000, false)
	}
	b.ReportMetric(perSession, "B/session")
}

// BenchmarkApply applies a realistic stream as the worker will: 20,000
// devices' visits interleaved in time, a tenth of the events up to a
// minute late, a map lookup per event, and sessions closed when due (a
// queue ordered by NextClose, swept every 100 events) with idle visitors
// dropped. Its events state no consent, or all do (one map each, as
// FromEntry makes them).
func BenchmarkApply(b *testing.B) {
	b.Run("no-consent", func(b *testing.B) { benchmarkApply(b, false) })
	b.Run("consent", func(b *testing.B) { benchmarkApply(b, true) })
}

func benchmarkApply(b *testing.B, withConsent bool) {
	ws := newTestWorkspace(b, func(r *Rules) { r.OwnDomains = []string{"shop-example.com"} })
	tr := newTraffic(7)
	if withConsent {
		tr.withConsent(7)
	}
	var events []Event
	for range 20_000 {
		anon := tr.anonymousID()
		start := t0.Add(time.Duration(tr.r.Int64N(int64(6 * time.Hour))))
		for range 1 + tr.r.IntN(3) {
			events = append(events, tr.visit(anon, start)...)
			start = start.Add(time.Duration(40+tr.r.IntN(180)) * time.Minute)
		}
	}
	arrivals := make([]time.Time, len(events))
	for i, e := range events {
		arrivals[i] = e.Timestamp
		if tr.r.IntN(10) == 0 {
			arrivals[i] = arrivals[i].Add(time.Duration(tr.r.Int64N(int64(time.Minute))))
		}
	}
	idx := make([]int, len(events))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, c int) int { return arrivals[a].Compare(arrivals[c]) })

	visitors := make(map[string]*Visitor)
	var queue closeQueue
	var out []Change
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := i % len(idx)
		if k == 0 && i > 0 {
			b.StopTimer()
			visitors, queue = make(map[string]*Visitor), nil
			b.StartTimer()
		}
		e := &events[idx[k]]
		v := visitors[e.AnonymousID]
		if v == nil {
			v = ws.NewVisitor(e.AnonymousID)
			visitors[e.AnonymousID] = v
		}
		var err error
		if out, err = v.Apply(e, out[:0]); err != nil {
			b.Fatal(err)
		}
		if len(out) == 1 && out[0].Kind == Started {
			next, _ := v.NextClose()
			heap.Push(&queue, due{next, v})
		}
		if k%100 == 99 {
			now := arrivals[idx[k]]
			for len(queue) > 0 && !queue[0].at.After(now) {
				d := heap.Pop(&queue).(due)
				out = d.v.Close(now, out[:0])
				if next, ok := d.v.NextClose(); ok {
					heap.Push(&queue, due{next, d.v})
				} else {
					delete(visitors, d.v.anonymousID)
				}
			}
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// closeQueue orders visitors by when they next have a session to close;
// an entry may be early (the visitor's sessions moved on since), never
// late.
type closeQueue []due

type due struct {
	at time.Time
	v  *Visitor
}

func (q closeQueue) Len() int           { return len(q) }
func (q closeQueue) Less(i, j int) bool { return q[i].at.Before(q[j].at) }
func (q closeQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *closeQueue) Push(x any)        { *q = append(*q, x.(due)) }
func (q *closeQueue) Pop() any {
	old := *q
	d := old[len(old)-1]
	*q = old[:len(old)-1]
	return d
}

// BenchmarkFromEntry decodes a campaign page view, without and with the
// consent the consent gate writes into the message's context.
func BenchmarkFromEntry(b *testing.B) {
	for _, file := range []string{"page_campaign.json", "page_consent.json"} {
		b.Run(strings.TrimSuffix(file, ".json"), func(b *testing.B) {
			en := entryOf(&testing.T{}, file, "")
			b.ReportAllocs()
			for b.Loop() {
				if _, err := FromEntry(en); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
