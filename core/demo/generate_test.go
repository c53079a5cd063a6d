package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// generateMessages returns n messages from a warmed-up generator with seed,
// each as raw JSON, built in batches of 100 one second apart.
func generateMessages(t testing.TB, seed int64, n int) []json.RawMessage {
	t.Helper()
	g := newGenerator(seed, 1000)
	g.warmUp(context.Background(), warmUpTime, warmUpEvents)
	now := time.Now()
	var out []json.RawMessage
	var body []byte
	for len(out) < n {
		k := min(100, n-len(out))
		body = g.appendBatch(body[:0], k, now, time.Millisecond, nil)
		var doc struct {
			SentAt string            `json:"sentAt"`
			Batch  []json.RawMessage `json:"batch"`
		}
		if err := json.Unmarshal(body, &doc); err != nil {
			t.Fatalf("batch is not valid JSON: %v\n%s", err, body)
		}
		if _, err := time.Parse(time.RFC3339Nano, doc.SentAt); err != nil {
			t.Fatalf("sentAt %q is not RFC 3339: %v", doc.SentAt, err)
		}
		for _, m := range doc.Batch {
			out = append(out, append(json.RawMessage(nil), m...))
		}
		now = now.Add(time.Second)
	}
	return out
}

// message is the part of a Segment message the tests look at.
type message struct {
	Type        string         `json:"type"`
	Event       string         `json:"event"`
	Name        string         `json:"name"`
	MessageID   string         `json:"messageId"`
	AnonymousID string         `json:"anonymousId"`
	UserID      string         `json:"userId"`
	PreviousID  string         `json:"previousId"`
	GroupID     string         `json:"groupId"`
	Timestamp   string         `json:"timestamp"`
	Properties  map[string]any `json:"properties"`
	Traits      map[string]any `json:"traits"`
	Context     struct {
		Library struct{ Name, Version string } `json:"library"`
		Page    *struct {
			Path, Referrer, Search, Title, URL string
		} `json:"page"`
		UserAgent string            `json:"userAgent"`
		Locale    string            `json:"locale"`
		IP        string            `json:"ip"`
		Campaign  map[string]string `json:"campaign"`
	} `json:"context"`
}

func decode(t testing.TB, raw json.RawMessage) message {
	t.Helper()
	var m message
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("message does not decode: %v\n%s", err, raw)
	}
	return m
}

// checkEnvelope reports what is wrong with the fields every Segment message
// needs, or "" if nothing is.
func checkEnvelope(m message) string {
	var problems []string
	if _, err := uuid.Parse(m.MessageID); err != nil {
		problems = append(problems, fmt.Sprintf("messageId %q is not a UUID", m.MessageID))
	}
	if m.AnonymousID == "" && m.UserID == "" {
		problems = append(problems, "neither anonymousId nor userId")
	}
	if _, err := time.Parse(time.RFC3339Nano, m.Timestamp); err != nil {
		problems = append(problems, fmt.Sprintf("timestamp %q is not RFC 3339", m.Timestamp))
	}
	switch m.Type {
	case "track":
		if m.Event == "" {
			problems = append(problems, "track without event")
		}
	case "page":
		if m.Context.Page == nil || m.Context.Page.URL == "" {
			problems = append(problems, "page without context.page.url")
		}
	case "identify", "alias", "group":
	default:
		problems = append(problems, fmt.Sprintf("unknown type %q", m.Type))
	}
	if m.Context.Library.Name != libraryName || m.Context.Library.Version == "" {
		problems = append(problems, fmt.Sprintf("context.library is %+v", m.Context.Library))
	}
	if m.Context.UserAgent == "" || m.Context.Locale == "" {
		problems = append(problems, "context without userAgent or locale")
	}
	return strings.Join(problems, "; ")
}

func TestGeneratedMessagesFollowTheSegmentSpec(t *testing.T) {
	// Required properties per event, from Segment's e-commerce and B2B specs.
	required := map[string][]string{
		"Products Searched":   {"query"},
		"Product List Viewed": {"list_id", "category", "products"},
		"Product Viewed":      {"product_id", "sku", "category", "name", "brand", "price", "currency", "url", "image_url"},
		"Product Added":       {"cart_id", "product_id", "sku", "category", "name", "brand", "price", "quantity"},
		"Product Removed":     {"cart_id", "product_id", "sku", "name", "price", "quantity"},
		"Cart Viewed":         {"cart_id", "products"},
		"Checkout Started":    {"order_id", "value", "revenue", "shipping", "tax", "currency", "products"},
		"Order Completed":     {"checkout_id", "order_id", "total", "revenue", "shipping", "tax", "currency", "products"},
		"Signed Up":           {"method"},
		"Signed In":           {"method"},
	}
	seen := map[string]int{}
	for _, raw := range generateMessages(t, 1, 30_000) {
		m := decode(t, raw)
		if p := checkEnvelope(m); p != "" {
			t.Fatalf("%s\n%s", p, raw)
		}
		key := m.Type
		if m.Type == "track" {
			key = m.Event
			want, ok := required[m.Event]
			if !ok {
				t.Fatalf("event %q is not one the demo should send", m.Event)
			}
			for _, p := range want {
				if _, ok := m.Properties[p]; !ok {
					t.Fatalf("%s lacks property %q: %s", m.Event, p, raw)
				}
			}
		}
		seen[key]++
		switch key {
		case "page":
			if m.Name == "" || m.Properties["url"] != m.Context.Page.URL || !strings.HasPrefix(m.Context.Page.URL, shopOrigin+"/") {
				t.Fatalf("page call with inconsistent name or url: %s", raw)
			}
		case "Order Completed", "Checkout Started":
			checkOrder(t, m, raw)
		case "identify":
			email, _ := m.Traits["email"].(string)
			if !strings.HasSuffix(email, "@example.com") {
				t.Fatalf("identify email %q is not on example.com: %s", email, raw)
			}
		case "alias":
			if m.UserID == "" || m.PreviousID != m.AnonymousID {
				t.Fatalf("alias must link previousId (the anonymousId) to a userId: %s", raw)
			}
		case "group":
			if _, err := uuid.Parse(m.GroupID); err != nil || m.Traits["name"] == nil {
				t.Fatalf("group without groupId or name: %s", raw)
			}
		}
		if m.Context.Campaign != nil && (m.Context.Campaign["source"] == "" || m.Context.Campaign["medium"] == "") {
			t.Fatalf("campaign without source or medium: %s", raw)
		}
	}
	for _, key := range []string{"page", "identify", "alias", "group", "Products Searched", "Product List Viewed",
		"Product Viewed", "Product Added", "Product Removed", "Cart Viewed", "Checkout Started", "Order Completed",
		"Signed Up", "Signed In"} {
		if seen[key] == 0 {
			t.Errorf("no %s in 30,000 messages; got %v", key, seen)
		}
	}
}

// checkOrder checks that an order's amounts add up as Segment defines them.
func checkOrder(t *testing.T, m message, raw json.RawMessage) {
	t.Helper()
	num := func(k string) float64 { f, _ := m.Properties[k].(float64); return f }
	products, _ := m.Properties["products"].([]any)
	if len(products) == 0 {
		t.Fatalf("%s without products: %s", m.Event, raw)
	}
	var subtotal float64
	for _, p := range products {
		item := p.(map[string]any)
		subtotal += item["price"].(float64) * item["quantity"].(float64)
	}
	revenue := num("revenue")
	if d := subtotal - num("discount") - revenue; math.Abs(d) > 0.005 {
		t.Fatalf("%s: revenue %.2f is not products %.2f minus discount %.2f: %s", m.Event, revenue, subtotal, num("discount"), raw)
	}
	if m.Event == "Order Completed" {
		if total := num("total"); math.Abs(total-(revenue+num("shipping")+num("tax"))) > 0.005 {
			t.Fatalf("total %.2f is not revenue + shipping + tax: %s", total, raw)
		}
	}
}

func TestMessagesHaveATypicalSize(t *testing.T) {
	msgs := generateMessages(t, 2, 10_000)
	total, largest := 0, 0
	for _, m := range msgs {
		total += len(m)
		largest = max(largest, len(m))
	}
	avg := total / len(msgs)
	// Up to ~1 KB: consent-aware SDKs add the consent context (~110
	// bytes) to every message.
	if avg < 300 || avg > 1000 {
		t.Errorf("average message is %d bytes, want 300-1000", avg)
	}
	if largest > 2048 {
		t.Errorf("largest message is %d bytes, want at most 2 KiB", largest)
	}
	t.Logf("average %d bytes, largest %d", avg, largest)
}

func TestSessionsConvertAtAPlausibleRate(t *testing.T) {
	g := newGenerator(3, 1000)
	g.warmUp(context.Background(), warmUpTime, warmUpEvents)
	startSessions := g.sessions
	var orders, productViews, adds, pages int
	for range 400_000 {
		_, s := g.next()
		switch s.kind {
		case kindOrderCompleted:
			orders++
		case kindProductViewed:
			productViews++
		case kindProductAdded:
			adds++
		case kindPage:
			pages++
		}
	}
	sessions := int(g.sessions - startSessions)
	conversion := float64(orders) / float64(sessions)
	if conversion < 0.02 || conversion > 0.045 {
		t.Errorf("%d orders in %d sessions: conversion %.2f%%, want 2-4.5%%", orders, sessions, 100*conversion)
	}
	if perSession := float64(pages) / float64(sessions); perSession < 2 || perSession > 8 {
		t.Errorf("%.1f page views per session, want 2-8", perSession)
	}
	if rate := float64(adds) / float64(productViews); rate < 0.05 || rate > 0.3 {
		t.Errorf("%d adds to cart for %d product views (%.0f%%), want 5-30%%", adds, productViews, 100*rate)
	}
	t.Logf("%d sessions, %.2f%% converted, %.1f pages/session, %.1f%% of product views added to cart",
		sessions, 100*conversion, float64(pages)/float64(sessions), 100*float64(adds)/float64(productViews))
}

func TestTimestampsNeverGoBackwardsForAVisitor(t *testing.T) {
	last := map[string]time.Time{}
	for _, raw := range generateMessages(t, 4, 20_000) {
		var m struct{ AnonymousID, Timestamp string }
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		ts, err := time.Parse(time.RFC3339Nano, m.Timestamp)
		if err != nil {
			t.Fatal(err)
		}
		if prev, ok := last[m.AnonymousID]; ok && !ts.After(prev) {
			t.Fatalf("visitor %s: timestamp %s after %s", m.AnonymousID, m.Timestamp, prev.Format(timeLayout))
		}
		last[m.AnonymousID] = ts
	}
}

func TestVisitorsReturnAndSometimesIdentify(t *testing.T) {
	// 20 virtual minutes: long enough for visitors to come back.
	g := newGenerator(5, 200)
	g.warmUp(context.Background(), warmUpTime, warmUpEvents)
	var total, returning, identified, crossDevice int
	users := map[string]map[[16]byte]bool{}
	for range 240_000 {
		v, s := g.next()
		total++
		if v.sessions > 1 {
			returning++
		}
		if v.userID != "" {
			identified++
		}
		if s.kind == kindIdentify && v.person.userID != "" {
			if users[v.person.userID] == nil {
				users[v.person.userID] = map[[16]byte]bool{}
			}
			users[v.person.userID][v.anon] = true
		}
	}
	for _, devices := range users {
		if len(devices) > 1 {
			crossDevice++
		}
	}
	for _, c := range []struct {
		what     string
		n        int
		min, max float64
	}{
		{"from returning visitors", returning, 0.05, 0.5},
		{"from identified visitors", identified, 0.01, 0.3},
	} {
		if share := float64(c.n) / float64(total); share < c.min || share > c.max {
			t.Errorf("%.1f%% of messages %s, want %.0f-%.0f%%", 100*share, c.what, 100*c.min, 100*c.max)
		}
	}
	if crossDevice == 0 {
		t.Errorf("none of %d users signed in on a second device", len(users))
	}
	t.Logf("%.1f%% of messages from returning visitors, %.1f%% from identified ones; %d of %d users on several devices",
		100*float64(returning)/float64(total), 100*float64(identified)/float64(total), crossDevice, len(users))
}

func TestSameSeedGivesSameSequence(t *testing.T) {
	sequence := func(seed int64) string {
		g := newGenerator(seed, 500)
		g.warmUp(context.Background(), 10*time.Second, 10_000)
		var b strings.Builder
		for range 5000 {
			_, s := g.next()
			fmt.Fprintf(&b, "%d.%d.%d ", s.kind, s.a, s.b)
		}
		return b.String()
	}
	if a, b := sequence(11), sequence(11); a != b {
		t.Error("seed 11 gave two different sequences")
	}
	if a, b := sequence(11), sequence(12); a == b {
		t.Error("seeds 11 and 12 gave the same sequence")
	}
}

func TestCatalogIsConsistent(t *testing.T) {
	c := shop()
	ids, skus, paths := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, p := range c.products {
		if ids[p.id] || skus[p.sku] || paths[p.page.path] {
			t.Errorf("product %s repeats an id, sku or path", p.id)
		}
		ids[p.id], skus[p.sku], paths[p.page.path] = true, true, true
		if p.price <= 0 {
			t.Errorf("product %s costs %d cents", p.id, p.price)
		}
		var v map[string]any
		if err := json.Unmarshal([]byte("{"+string(p.coreJSON)+string(p.linksJSON)+"}"), &v); err != nil {
			t.Errorf("product %s fragments are not JSON: %v", p.id, err)
		}
	}
	if len(c.products) < 100 {
		t.Errorf("catalogue has %d products, want a shop-sized one", len(c.products))
	}
	for _, cat := range c.categories {
		if len(cat.products) < productListLen {
			t.Errorf("category %s has %d products, fewer than a list shows", cat.name, len(cat.products))
		}
	}
}

func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "plain", `quote " and \ backslash`, "tab\tnew\nline\r", "\x00\x1f ctrl",
		"héllo wörld ✓", "invalid \xff utf-8", "</script>&"} {
		got := appendString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Errorf("appendString(%q) = %s, not a JSON string: %v", s, got, err)
			continue
		}
		want := strings.ToValidUTF8(s, "\uFFFD")
		if back != want {
			t.Errorf("appendString(%q) decodes to %q, want %q", s, back, want)
		}
	}
}

func TestAppendNumbers(t *testing.T) {
	for _, tc := range []struct {
		cents int64
		want  string
	}{{0, "0.00"}, {5, "0.05"}, {99, "0.99"}, {100, "1.00"}, {123456, "1234.56"}, {-250, "-2.50"}} {
		if got := string(appendCents(nil, tc.cents)); got != tc.want {
			t.Errorf("appendCents(%d) = %s, want %s", tc.cents, got, tc.want)
		}
	}
	for _, tc := range []struct {
		x    uint64
		want string
	}{{0, "0000000000"}, {42, "0000000042"}, {9_999_999_999, "9999999999"}} {
		if got := string(appendPadded(nil, tc.x, 10)); got != tc.want {
			t.Errorf("appendPadded(%d) = %s, want %s", tc.x, got, tc.want)
		}
	}
}

// BenchmarkGenerate measures building batches of 100 events the way a sender
// does: simulating the visitors and writing the JSON.
func BenchmarkGenerate(b *testing.B) {
	g := newGenerator(1, 1000)
	g.warmUp(context.Background(), warmUpTime, warmUpEvents)
	var body []byte
	now := time.Now()
	bytes := 0
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		body = g.appendBatch(body[:0], 100, now, time.Millisecond, nil)
		bytes += len(body)
		now = now.Add(50 * time.Millisecond)
	}
	events := float64(b.N) * 100
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/events, "ns/event")
	b.ReportMetric(float64(bytes)/events, "bytes/event")
}

// BenchmarkEncodeStdlib is the yardstick for BenchmarkGenerate: encoding the
// same messages with encoding/json from generic maps, which is what building
// them with reflection-based JSON would cost (simulation not included).
func BenchmarkEncodeStdlib(b *testing.B) {
	msgs := generateMessages(b, 1, 1000)
	docs := make([]map[string]any, len(msgs))
	for i, m := range msgs {
		if err := json.Unmarshal(m, &docs[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if _, err := json.Marshal(docs[i%len(docs)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/event")
}

func TestClockFormatsLikeTimeFormat(t *testing.T) {
	var c clock
	base := time.Date(2026, 12, 31, 23, 59, 58, 0, time.FixedZone("CET", 3600))
	for i := range 5000 {
		// Steps of 0.7 ms, crossing seconds, minutes and a year; and back.
		ts := base.Add(time.Duration(i) * 700 * time.Microsecond)
		if i%7 == 0 {
			ts = base.Add(-time.Duration(i) * time.Millisecond)
		}
		got, want := string(c.append(nil, ts)), ts.UTC().Format(timeLayout)
		if got != want {
			t.Fatalf("clock formats %v as %s, want %s", ts, got, want)
		}
	}
}

func TestRestampOnlyChangesSentAt(t *testing.T) {
	g := newGenerator(1, 1000)
	sent := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	body := g.appendBatch(make([]byte, 0, 64<<10), 3, sent, 0, nil)
	before := string(body)
	later := sent.Add(90*time.Minute + 1500*time.Millisecond)
	restamp(body, later)
	want := strings.Replace(before, sent.Format(timeLayout), later.Format(timeLayout), 1)
	if string(body) != want {
		t.Errorf("restamp changed more than sentAt:\n got %.120s\nwant %.120s", body, want)
	}
}
