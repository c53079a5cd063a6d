package demo

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"time"
)

// The generator simulates the shop's visitors in virtual time. Each visitor
// is a small state machine walking through a session (landing page, browsing,
// cart, checkout, order); active visitors sit in a min-heap ordered by when
// they act next. Virtual time advances by a fixed step per message, and when
// no visitor is due a new one arrives, so the number of concurrent visitors
// settles where the arrival of messages matches the target rate.
//
// Virtual time only decides the order of things. Timestamps come from the
// wall clock when a batch is built (see stamp), so they stay close to sentAt
// whatever the send rate, and never go backwards for one visitor.
//
// Behaviour (every choice a visitor makes) is drawn from rng, which the
// caller may seed; identifiers are drawn from ids, which is always seeded
// from crypto/rand so that two seeded runs against one collector never send
// the same messageId twice.

// msgKind is what one message is.
type msgKind uint8

const (
	kindPage msgKind = iota
	kindProductsSearched
	kindProductListViewed
	kindProductViewed
	kindProductAdded
	kindProductRemoved
	kindCartViewed
	kindCheckoutStarted
	kindOrderCompleted
	kindSignedUp
	kindSignedIn
	kindIdentify
	kindAlias
	kindGroup
	numKinds
)

// kindInfo gives each kind's Segment call type and, for track calls, the
// event name from Segment's e-commerce and B2B specs.
var kindInfo = [numKinds]struct{ typ, event string }{
	kindPage:              {"page", ""},
	kindProductsSearched:  {"track", "Products Searched"},
	kindProductListViewed: {"track", "Product List Viewed"},
	kindProductViewed:     {"track", "Product Viewed"},
	kindProductAdded:      {"track", "Product Added"},
	kindProductRemoved:    {"track", "Product Removed"},
	kindCartViewed:        {"track", "Cart Viewed"},
	kindCheckoutStarted:   {"track", "Checkout Started"},
	kindOrderCompleted:    {"track", "Order Completed"},
	kindSignedUp:          {"track", "Signed Up"},
	kindSignedIn:          {"track", "Signed In"},
	kindIdentify:          {"identify", ""},
	kindAlias:             {"alias", ""},
	kindGroup:             {"group", ""},
}

// spec is one planned message; what a and b mean depends on kind.
type spec struct {
	kind msgKind
	a    int32 // product, query or category index; sign-in method
	b    int32 // quantity; offset into a product list
}

// intent is what a session is going to amount to. Deciding it up front keeps
// the funnel's conversion rates where they are set instead of wherever a
// random walk happens to end.
type intent uint8

const (
	intentBounce intent = iota
	intentBrowse
	intentCart     // adds to cart, leaves
	intentCheckout // starts checkout, leaves
	intentPurchase
)

// Session mixes, in per mille. New visitors convert at 2.5 %, returning
// ones at 6 %; with about a quarter of sessions returning that is ~3.4 %.
var (
	newIntents       = []weighted[intent]{{intentBounce, 380}, {intentBrowse, 435}, {intentCart, 115}, {intentCheckout, 45}, {intentPurchase, 25}}
	returningIntents = []weighted[intent]{{intentBounce, 260}, {intentBrowse, 460}, {intentCart, 140}, {intentCheckout, 80}, {intentPurchase, 60}}
	newChannels      = []weighted[channelKind]{{channelOrganic, 30}, {channelPaid, 22}, {channelDirect, 18}, {channelSocial, 12}, {channelReferral, 10}, {channelEmail, 8}}
	returnChannels   = []weighted[channelKind]{{channelDirect, 45}, {channelOrganic, 20}, {channelEmail, 20}, {channelPaid, 10}, {channelSocial, 5}}
	authMethods      = []string{"email", "google", "apple"}
	planNames        = []string{"free", "plus", "business"}
	// returnChance is the chance that a visitor comes back after its n-th session.
	returnChance = []float64{0, 0.35, 0.25, 0.15, 0.10, 0.05}
)

type phase uint8

const (
	phaseLanding phase = iota
	phaseSignIn
	phaseBrowse
	phaseCart
	phaseAuth
	phaseCheckout
	phaseOrder
	phaseEnd
)

const (
	maxCart    = 5
	maxPending = 6
	// maxAway bounds the visitors waiting to come back, and so the memory.
	maxAway = 50_000
	// knownUsers is how many signed-up people are remembered so that
	// existing customers can sign in on a second device.
	knownUsers = 512
)

type cartItem struct {
	product int32
	qty     int32
}

// person is who a visitor turns out to be.
type person struct {
	userID      string // empty for a guest checkout
	first, last uint8
	tag         uint32 // makes the email address unique
	plan        uint8
	company     int8 // index into catalog.companies; -1 for none
	groupID     [16]byte
}

type pageRef struct {
	kind    pageKind
	landing bool  // the session's landing page: carries the campaign query
	idx     int32 // category, product or query index, by kind
}

// visitor is one browser (anonymousId) and the state of its current session.
type visitor struct {
	heapIdx int // where it is in generator.heap

	// The device, stable across sessions.
	anon    [16]byte
	device  uint8
	locale  uint8
	consent uint8
	ip      [4]byte
	skew    time.Duration
	lastTS  time.Time

	userID    string // set once an identify call with a userId went out
	person    person
	hasPerson bool
	// existing customers have an account from another device: they sign in
	// rather than up.
	existing bool
	sessions int
	away     bool // between two sessions

	// The session.
	phase       phase
	intent      intent
	steps       int // browse actions left
	signUpAt    int // sign up when steps reaches this; -1 for never
	signInFirst bool
	guest       bool
	channel     channelKind
	campaign    int8 // index into the channel's campaigns; -1 for none
	referrer    uint8
	clickID     uint64
	page, prev  pageRef
	hasPrev     bool
	curCat      int32 // category being browsed; -1 for none
	coupon      bool

	cart       [maxCart]cartItem
	cartN      int
	cartID     [16]byte
	orderID    uint64
	checkoutID [16]byte
	ordered    bool

	pending  [maxPending]spec
	pendHead int
	pendN    int
}

type generator struct {
	cat  *catalog
	rng  *rand.Rand
	ids  *rand.ChaCha8
	vnow time.Duration
	step time.Duration

	heap  []heapEntry // visitors by virtual time of their next message
	free  []*visitor
	away  int
	known []person
	kIdx  int

	clock    clock
	counts   [numKinds]int64 // messages appended, by kind
	sessions int64           // sessions started, warm-up included
	pageBuf  []byte          // scratch for the page object, written twice per message
}

// newGenerator returns a generator whose virtual clock runs at simRate
// messages per second. The same seed gives the same sequence of messages
// (ids and timestamps aside); seed 0 picks one from the clock.
func newGenerator(seed int64, simRate float64) *generator {
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	var key [32]byte
	_, _ = crand.Read(key[:]) // never fails on supported platforms
	return &generator{
		cat:  shop(),
		rng:  rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15)),
		ids:  rand.NewChaCha8(key),
		step: time.Duration(float64(time.Second) / simRate),
	}
}

// warmUp runs the simulation for d of virtual time without output, so that
// the first messages sent come from visitors at every stage of their
// sessions instead of only from new arrivals. At most maxEvents messages are
// simulated to bound the start-up cost at high rates. It stops early when
// ctx is done.
func (g *generator) warmUp(ctx context.Context, d time.Duration, maxEvents int) {
	n := min(int(d/g.step), maxEvents)
	for i := range n {
		if i%4096 == 0 && ctx.Err() != nil {
			return
		}
		g.next()
	}
}

// next advances the simulation to its next message and returns the visitor
// sending it and what it is. The visitor's state reflects the message until
// next is called again.
func (g *generator) next() (*visitor, spec) {
	g.vnow += g.step
	for {
		if len(g.heap) == 0 || g.heap[0].due > g.vnow {
			// Due now, and everyone else later: v becomes the root.
			g.push(g.newVisitor(), g.vnow)
		}
		v := g.heap[0].v
		if v.pendN == 0 {
			if v.away {
				v.away = false
				g.away--
				g.startSession(v)
			}
			if !g.plan(v) {
				g.endSession(v)
				continue
			}
		}
		s := v.pending[v.pendHead]
		v.pendHead++
		v.pendN--
		if s.kind == kindIdentify {
			v.userID = v.person.userID
		}
		if v.pendN > 0 {
			// Calls made by the same page load follow each other closely.
			g.reschedule(v, g.vnow+time.Duration(50+g.rng.IntN(550))*time.Millisecond)
		} else {
			g.reschedule(v, g.vnow+g.thinkTime())
		}
		return v, s
	}
}

// thinkTime is the time a visitor spends on a page: log-normal with a median
// of 9 s, between 1 s and 2 min.
func (g *generator) thinkTime() time.Duration {
	s := 9 * math.Exp(0.8*g.rng.NormFloat64())
	s = min(max(s, 1), 120)
	return time.Duration(s * float64(time.Second))
}

// stamp returns the timestamp of a message built at wall-clock time t: the
// visitor's clock (t plus its skew), never before its previous message.
func (g *generator) stamp(v *visitor, t time.Time) time.Time {
	ts := t.Add(v.skew)
	if !ts.After(v.lastTS) {
		ts = v.lastTS.Add(time.Millisecond)
	}
	v.lastTS = ts
	return ts
}

func (g *generator) newUUID(u *[16]byte) {
	binary.LittleEndian.PutUint64(u[:8], g.ids.Uint64())
	binary.LittleEndian.PutUint64(u[8:], g.ids.Uint64())
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
}

func (g *generator) newVisitor() *visitor {
	var v *visitor
	if n := len(g.free); n > 0 {
		v = g.free[n-1]
		g.free = g.free[:n-1]
		*v = visitor{}
	} else {
		v = new(visitor)
	}
	c := g.cat
	g.newUUID(&v.anon)
	v.device = uint8(pick(g.rng, c.devices))
	v.locale = uint8(pick(g.rng, c.locales))
	v.consent = uint8(pick(g.rng, c.consents))
	// Addresses from the documentation ranges (RFC 5737): plausible-looking,
	// never anybody's.
	nets := [3][3]byte{{192, 0, 2}, {198, 51, 100}, {203, 0, 113}}
	n := nets[g.rng.IntN(3)]
	v.ip = [4]byte{n[0], n[1], n[2], byte(1 + g.rng.IntN(254))}
	skew := time.Duration(g.rng.NormFloat64() * float64(300*time.Millisecond))
	v.skew = min(max(skew, -2*time.Second), 2*time.Second)
	v.existing = g.rng.Float64() < 0.08
	v.person.company = -1
	g.startSession(v)
	return v
}

func (g *generator) startSession(v *visitor) {
	rng := g.rng
	c := g.cat
	v.sessions++
	g.sessions++
	returning := v.sessions > 1
	if returning {
		v.channel = returnChannels[pick(rng, returnChannels)].value
		v.intent = returningIntents[pick(rng, returningIntents)].value
	} else {
		v.channel = newChannels[pick(rng, newChannels)].value
		v.intent = newIntents[pick(rng, newIntents)].value
	}
	ch := &c.channels[v.channel]
	v.campaign = -1
	if len(ch.campaigns) > 0 {
		v.campaign = int8(rng.IntN(len(ch.campaigns)))
		if ch.campaigns[v.campaign].clickParam != "" {
			v.clickID = g.ids.Uint64()
		}
	}
	if len(ch.referrers) > 0 {
		v.referrer = uint8(rng.IntN(len(ch.referrers)))
	}
	switch v.intent {
	case intentBounce:
		v.steps = 0
	case intentBrowse:
		v.steps = 1 + rng.IntN(3) + rng.IntN(4)
	case intentCart:
		v.steps = 3 + rng.IntN(4) + rng.IntN(4)
	default:
		v.steps = 4 + rng.IntN(5) + rng.IntN(4)
	}
	v.signUpAt = -1
	if v.userID == "" && !v.existing && v.intent <= intentCart && v.steps > 0 && rng.Float64() < 0.05 {
		v.signUpAt = rng.IntN(v.steps)
	}
	// Returning customers whose login expired, and customers known from
	// another device, sign in now and then.
	v.signInFirst = (v.userID != "" && rng.Float64() < 0.25) ||
		(v.userID == "" && v.existing && v.intent >= intentBrowse && rng.Float64() < 0.3)
	v.guest = false
	v.coupon = false
	v.hasPrev = false
	v.curCat = -1
	v.phase = phaseLanding
}

// endSession decides whether the visitor comes back later or leaves for good.
func (g *generator) endSession(v *visitor) {
	p := 0.0
	if v.sessions < len(returnChance) {
		p = returnChance[v.sessions]
	}
	if g.rng.Float64() < p && g.away < maxAway {
		// Back in 2 to 15 minutes (log-uniform): later than a session
		// timeout, soon enough to be seen in a demo.
		d := 2 * math.Exp(g.rng.Float64()*math.Log(7.5))
		v.away = true
		g.away++
		g.reschedule(v, g.vnow+time.Duration(d*float64(time.Minute)))
		return
	}
	g.remove(v.heapIdx)
	g.free = append(g.free, v)
}

// plan fills v.pending with the calls of the visitor's next action and
// reports whether the session goes on.
func (g *generator) plan(v *visitor) bool {
	rng := g.rng
	v.pendHead, v.pendN = 0, 0
	for {
		switch v.phase {
		case phaseLanding:
			v.phase = phaseSignIn
			g.planLanding(v)
			return true
		case phaseSignIn:
			v.phase = phaseBrowse
			if v.signInFirst {
				g.planSignIn(v)
				return true
			}
		case phaseBrowse:
			if v.steps > 0 {
				v.steps--
				g.planBrowse(v)
				return true
			}
			v.phase = phaseCart
		case phaseCart:
			if v.intent < intentCart {
				v.phase = phaseEnd
				continue
			}
			if v.cartN == 0 {
				// Stay in this phase: look at one more product and take it.
				g.planProduct(v, true)
				return true
			}
			v.phase = phaseAuth
			if v.intent > intentCart || rng.Float64() < 0.7 {
				g.setPage(v, pageRef{kind: pageCart})
				g.add(v, spec{kind: kindPage}, spec{kind: kindCartViewed})
				return true
			}
		case phaseAuth:
			v.phase = phaseCheckout
			if v.intent >= intentCheckout && v.userID == "" {
				switch r := rng.Float64(); {
				case v.existing || (v.hasPerson && v.person.userID != "") || r < 0.25:
					g.planSignIn(v)
					return true
				case r < 0.65:
					g.planSignUp(v)
					return true
				default:
					v.guest = true
				}
			}
		case phaseCheckout:
			if v.intent < intentCheckout {
				v.phase = phaseEnd
				continue
			}
			v.phase = phaseOrder
			v.orderID = g.ids.Uint64()
			g.newUUID(&v.checkoutID)
			camp := v.campaign >= 0 && v.channel == channelEmail
			v.coupon = (camp && rng.Float64() < 0.5) || rng.Float64() < 0.06
			g.setPage(v, pageRef{kind: pageCheckout})
			g.add(v, spec{kind: kindPage}, spec{kind: kindCheckoutStarted})
			if v.guest {
				if !v.hasPerson {
					v.person = g.newPerson(false)
					v.hasPerson = true
				}
				g.add(v, spec{kind: kindIdentify})
			}
			return true
		case phaseOrder:
			v.phase = phaseEnd
			if v.intent == intentPurchase {
				g.setPage(v, pageRef{kind: pageConfirmation})
				g.add(v, spec{kind: kindPage}, spec{kind: kindOrderCompleted})
				v.ordered = true
				return true
			}
		default:
			if v.ordered {
				// A new cart for the next visit.
				v.ordered = false
				v.cartN = 0
				v.cartID = [16]byte{}
			}
			return false
		}
	}
}

func (g *generator) add(v *visitor, specs ...spec) {
	for _, s := range specs {
		v.pending[v.pendHead+v.pendN] = s
		v.pendN++
	}
}

// setPage moves the visitor to page p; the page it leaves becomes the
// referrer, except for a landing page whose referrer is external.
func (g *generator) setPage(v *visitor, p pageRef) {
	v.prev, v.hasPrev = v.page, !p.landing
	v.page = p
}

func (g *generator) planLanding(v *visitor) {
	c := g.cat
	rng := g.rng
	var kind pageKind
	if v.campaign >= 0 {
		kind = c.channels[v.channel].campaigns[v.campaign].landing
	} else {
		r := rng.IntN(100)
		switch v.channel {
		case channelDirect:
			kind = pageHome
			if r < 20 {
				kind = pageProduct
			}
		case channelReferral:
			kind = pageProduct
			if r < 30 {
				kind = pageCategory
			}
		default: // organic search lands anywhere
			kind = []pageKind{pageHome, pageCategory, pageProduct}[r%3]
		}
	}
	ref := pageRef{kind: kind, landing: true}
	switch kind {
	case pageProduct:
		p := g.pickProduct(-1)
		ref.idx = p
		v.curCat = int32(c.products[p].cat)
		g.setPage(v, ref)
		g.add(v, spec{kind: kindPage}, spec{kind: kindProductViewed, a: p})
	case pageCategory:
		ref.idx = int32(rng.IntN(len(c.categories)))
		v.curCat = ref.idx
		g.setPage(v, ref)
		g.add(v, spec{kind: kindPage}, spec{kind: kindProductListViewed, a: ref.idx, b: int32(rng.IntN(4))})
	default:
		g.setPage(v, ref)
		g.add(v, spec{kind: kindPage})
	}
}

func (g *generator) planBrowse(v *visitor) {
	c := g.cat
	rng := g.rng
	if v.steps == v.signUpAt {
		g.planSignUp(v)
		return
	}
	if v.cartN > 0 && v.intent >= intentCart && rng.Float64() < 0.06 {
		i := rng.IntN(v.cartN)
		it := v.cart[i]
		v.cartN--
		v.cart[i] = v.cart[v.cartN]
		g.setPage(v, pageRef{kind: pageCart})
		g.add(v, spec{kind: kindPage}, spec{kind: kindProductRemoved, a: it.product, b: it.qty})
		return
	}
	switch r := rng.IntN(100); {
	case r < 48:
		g.planProduct(v, false)
	case r < 70:
		cat := int32(rng.IntN(len(c.categories)))
		v.curCat = cat
		g.setPage(v, pageRef{kind: pageCategory, idx: cat})
		g.add(v, spec{kind: kindPage}, spec{kind: kindProductListViewed, a: cat, b: int32(rng.IntN(4))})
	case r < 83:
		q := int32(rng.IntN(len(c.queries)))
		v.curCat = int32(c.queries[q].cat)
		g.setPage(v, pageRef{kind: pageSearch, idx: q})
		g.add(v, spec{kind: kindPage}, spec{kind: kindProductsSearched, a: q})
	case r < 93 || v.cartN == 0:
		g.setPage(v, pageRef{kind: pageHome})
		g.add(v, spec{kind: kindPage})
	default:
		g.setPage(v, pageRef{kind: pageCart})
		g.add(v, spec{kind: kindPage}, spec{kind: kindCartViewed})
	}
}

// planProduct views a product and, depending on the session's intent (or
// always when take is set), adds it to the cart.
func (g *generator) planProduct(v *visitor, take bool) {
	p := g.pickProduct(v.curCat)
	v.curCat = int32(g.cat.products[p].cat)
	g.setPage(v, pageRef{kind: pageProduct, idx: p})
	g.add(v, spec{kind: kindPage}, spec{kind: kindProductViewed, a: p})
	var pAdd float64
	switch v.intent {
	case intentBrowse:
		pAdd = 0.02
	case intentCart:
		pAdd = 0.25
	case intentCheckout, intentPurchase:
		pAdd = 0.35
	}
	if !take && g.rng.Float64() >= pAdd {
		return
	}
	qty := int32(1)
	if r := g.rng.IntN(100); r < 3 {
		qty = 3
	} else if r < 15 {
		qty = 2
	}
	if v.cartN == 0 && v.cartID == ([16]byte{}) {
		g.newUUID(&v.cartID)
	}
	for i := range v.cartN {
		if v.cart[i].product == p {
			v.cart[i].qty += qty
			g.add(v, spec{kind: kindProductAdded, a: p, b: qty})
			return
		}
	}
	if v.cartN == maxCart {
		return
	}
	v.cart[v.cartN] = cartItem{product: p, qty: qty}
	v.cartN++
	g.add(v, spec{kind: kindProductAdded, a: p, b: qty})
}

// pickProduct returns a product, from category cat most of the time when it
// is not negative. Within a category popular products are viewed most.
func (g *generator) pickProduct(cat int32) int32 {
	c := g.cat
	rng := g.rng
	if cat < 0 || rng.IntN(10) >= 7 {
		cat = int32(rng.IntN(len(c.categories)))
	}
	ps := c.categories[cat].products
	u := rng.Float64()
	return int32(ps[int(u*u*float64(len(ps)))])
}

func (g *generator) planSignUp(v *visitor) {
	if !v.hasPerson || v.person.userID == "" {
		p := g.newPerson(true)
		if v.hasPerson { // a guest creating an account keeps their name
			p.first, p.last, p.tag = v.person.first, v.person.last, v.person.tag
		}
		v.person = p
		v.hasPerson = true
		g.remember(p)
	}
	method := int32(g.rng.IntN(len(authMethods)))
	g.setPage(v, pageRef{kind: pageSignUp})
	g.add(v, spec{kind: kindPage})
	if g.rng.Float64() < 0.2 {
		g.add(v, spec{kind: kindAlias})
	}
	g.add(v, spec{kind: kindIdentify}, spec{kind: kindSignedUp, a: method})
	if v.person.company >= 0 {
		g.add(v, spec{kind: kindGroup})
	}
}

func (g *generator) planSignIn(v *visitor) {
	if !v.hasPerson || v.person.userID == "" {
		// A customer from another device: sometimes one this run has
		// already seen, which makes the identity graph merge two devices.
		if len(g.known) > 0 && g.rng.Float64() < 0.25 {
			v.person = g.known[g.rng.IntN(len(g.known))]
		} else {
			v.person = g.newPerson(true)
			g.remember(v.person)
		}
		v.hasPerson = true
	}
	method := int32(g.rng.IntN(len(authMethods)))
	g.setPage(v, pageRef{kind: pageSignIn})
	g.add(v, spec{kind: kindPage}, spec{kind: kindIdentify}, spec{kind: kindSignedIn, a: method})
	if v.person.company >= 0 && g.rng.Float64() < 0.3 {
		g.add(v, spec{kind: kindGroup})
	}
}

func (g *generator) newPerson(account bool) person {
	c := g.cat
	rng := g.rng
	p := person{
		first:   uint8(rng.IntN(len(c.firstNames))),
		last:    uint8(rng.IntN(len(c.lastNames))),
		tag:     uint32(g.ids.Uint64()),
		company: -1,
	}
	if !account {
		return p
	}
	var id [8]byte
	binary.BigEndian.PutUint64(id[:], g.ids.Uint64())
	buf := make([]byte, 0, 20)
	buf = append(buf, "usr_"...)
	for _, x := range id {
		buf = append(buf, hexDigits[x>>4], hexDigits[x&0xf])
	}
	p.userID = string(buf)
	switch r := rng.IntN(100); {
	case r < 5:
		p.plan = 2
		p.company = int8(rng.IntN(len(c.companies)))
		g.newUUID(&p.groupID)
	case r < 30:
		p.plan = 1
	}
	return p
}

func (g *generator) remember(p person) {
	if len(g.known) < knownUsers {
		g.known = append(g.known, p)
		return
	}
	g.known[g.kIdx] = p
	g.kIdx = (g.kIdx + 1) % knownUsers
}

// The heap of visitors, ordered by due. Written out rather than through
// container/heap to avoid boxing each visitor in an interface, and keeping
// due next to the pointer so that sifting does not chase pointers (it was a
// quarter of BenchmarkGenerate's time before).

type heapEntry struct {
	due time.Duration // virtual time of the visitor's next message
	v   *visitor
}

func (g *generator) push(v *visitor, due time.Duration) {
	v.heapIdx = len(g.heap)
	g.heap = append(g.heap, heapEntry{due: due, v: v})
	g.up(v.heapIdx)
}

func (g *generator) reschedule(v *visitor, due time.Duration) {
	g.heap[v.heapIdx].due = due
	g.fix(v.heapIdx)
}

func (g *generator) remove(i int) {
	last := len(g.heap) - 1
	if i != last {
		g.swap(i, last)
	}
	g.heap[last] = heapEntry{}
	g.heap = g.heap[:last]
	if i != last {
		g.fix(i)
	}
}

func (g *generator) fix(i int) {
	if !g.down(i) {
		g.up(i)
	}
}

func (g *generator) swap(i, j int) {
	h := g.heap
	h[i], h[j] = h[j], h[i]
	h[i].v.heapIdx = i
	h[j].v.heapIdx = j
}

func (g *generator) up(i int) {
	h := g.heap
	for i > 0 {
		p := (i - 1) / 2
		if h[p].due <= h[i].due {
			return
		}
		g.swap(i, p)
		i = p
	}
}

func (g *generator) down(i int) bool {
	h := g.heap
	start := i
	for {
		l := 2*i + 1
		if l >= len(h) {
			break
		}
		m := l
		if r := l + 1; r < len(h) && h[r].due < h[l].due {
			m = r
		}
		if h[i].due <= h[m].due {
			break
		}
		g.swap(i, m)
		i = m
	}
	return i > start
}
