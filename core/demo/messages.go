package demo

import (
	"strconv"
	"time"
)

// appendBatch appends the body of one POST /v1/batch request holding the
// next n messages: {"sentAt":…,"batch":[…]}. The messages are stamped as if
// recorded one spread apart, the last at now. When ids is not nil it gets the
// messageId of each message.
func (g *generator) appendBatch(b []byte, n int, now time.Time, spread time.Duration, ids *[]string) []byte {
	b = append(b, `{"sentAt":"`...)
	b = appendTime(b, now)
	b = append(b, `","batch":[`...)
	var id [16]byte
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		v, s := g.next()
		ts := g.stamp(v, now.Add(-time.Duration(n-1-i)*spread))
		g.newUUID(&id)
		b = g.appendMessage(b, v, s, ts, &id)
		if ids != nil {
			var text [36]byte
			*ids = append(*ids, string(appendUUID(text[:0], &id)))
		}
		g.counts[s.kind]++
	}
	return append(b, "]}"...)
}

// sentAtOffset is where the sentAt value starts in a batch body, so that a
// retry can restamp it in place.
const sentAtOffset = len(`{"sentAt":"`)

// appendMessage appends one Segment message.
func (g *generator) appendMessage(b []byte, v *visitor, s spec, ts time.Time, id *[16]byte) []byte {
	c := g.cat
	info := kindInfo[s.kind]
	b = append(b, `{"type":"`...)
	b = append(b, info.typ...)
	b = append(b, '"')
	switch s.kind {
	case kindPage:
		b = append(b, `,"name":`...)
		b = appendString(b, g.pageOf(v.page).name)
	case kindIdentify, kindAlias, kindGroup:
	default:
		b = append(b, `,"event":`...)
		b = appendString(b, info.event)
	}
	b = append(b, `,"messageId":"`...)
	b = appendUUID(b, id)
	b = append(b, `","anonymousId":"`...)
	b = appendUUID(b, &v.anon)
	b = append(b, '"')
	userID := v.userID
	if s.kind == kindIdentify || s.kind == kindAlias {
		userID = v.person.userID
	}
	if userID != "" {
		b = append(b, `,"userId":`...)
		b = appendString(b, userID)
	}
	b = append(b, `,"timestamp":"`...)
	b = g.clock.append(b, ts)
	b = append(b, '"')

	switch s.kind {
	case kindPage:
		// The page goes into the properties and into context.page, as
		// analytics.js does, but referrer and search only into the
		// latter. Other calls leave context.page out: it keeps
		// messages at a typical size.
		g.pageBuf = g.appendPage(g.pageBuf[:0], v)
		p := g.pageOf(v.page)
		b = append(b, `,"properties":{"path":`...)
		b = appendString(b, p.path)
		b = append(b, `,"title":`...)
		b = appendString(b, p.title)
		b = append(b, `,"url":"`...)
		b = g.appendURL(b, v, v.page)
		b = append(b, '"')
		if p.category != "" {
			b = append(b, `,"category":`...)
			b = appendString(b, p.category)
		}
		b = append(b, '}')
	case kindIdentify:
		b = g.appendTraits(b, v)
	case kindAlias:
		b = append(b, `,"previousId":"`...)
		b = appendUUID(b, &v.anon)
		b = append(b, '"')
	case kindGroup:
		co := c.companies[v.person.company]
		b = append(b, `,"groupId":"`...)
		b = appendUUID(b, &v.person.groupID)
		b = append(b, `","traits":{"name":`...)
		b = appendString(b, co.name)
		b = append(b, `,"industry":`...)
		b = appendString(b, co.industry)
		b = append(b, `,"employees":`...)
		b = strconv.AppendInt(b, int64(co.employees), 10)
		b = append(b, `,"plan":"business"}`...)
	default:
		b = append(b, `,"properties":{`...)
		b = g.appendProperties(b, v, s)
		b = append(b, '}')
	}

	b = append(b, `,"context":{`...)
	b = append(b, c.libraryJSON...)
	if s.kind == kindPage {
		b = append(b, `,"page":{`...)
		b = append(b, g.pageBuf...)
		b = append(b, '}')
	}
	b = append(b, c.deviceJSON[v.device]...)
	b = append(b, c.localeJSON[v.locale]...)
	b = append(b, c.consentJSON[v.consent]...)
	b = append(b, `,"ip":"`...)
	b = appendIPv4(b, v.ip)
	b = append(b, '"')
	if v.campaign >= 0 {
		b = append(b, c.channels[v.channel].campaigns[v.campaign].contextJSON...)
	}
	return append(b, "}}"...)
}

func (g *generator) pageOf(r pageRef) *page {
	switch r.kind {
	case pageProduct:
		return &g.cat.products[r.idx].page
	case pageCategory:
		return &g.cat.categories[r.idx].page
	default:
		return &g.cat.pages[r.kind]
	}
}

// appendPage appends the fields of the visitor's current page (without
// braces): path, referrer, search, title and url.
func (g *generator) appendPage(b []byte, v *visitor) []byte {
	p := g.pageOf(v.page)
	b = append(b, `"path":`...)
	b = appendString(b, p.path)
	switch {
	case v.hasPrev:
		b = append(b, `,"referrer":"`...)
		b = g.appendURL(b, v, v.prev)
		b = append(b, '"')
	case len(g.cat.channels[v.channel].referrers) > 0:
		b = append(b, `,"referrer":`...)
		b = appendString(b, g.cat.channels[v.channel].referrers[v.referrer])
	}
	if g.hasSearch(v, v.page) {
		b = append(b, `,"search":"`...)
		b = g.appendSearch(b, v, v.page)
		b = append(b, '"')
	}
	b = append(b, `,"title":`...)
	b = appendString(b, p.title)
	b = append(b, `,"url":"`...)
	b = g.appendURL(b, v, v.page)
	return append(b, '"')
}

// appendURL appends the full URL of page r as the visitor saw it. URLs are
// built from slugs, escaped queries and hex ids, so they need no escaping.
func (g *generator) appendURL(b []byte, v *visitor, r pageRef) []byte {
	b = append(b, g.pageOf(r).url...)
	return g.appendSearch(b, v, r)
}

// hasSearch reports whether page r has a query string.
func (g *generator) hasSearch(v *visitor, r pageRef) bool {
	return r.kind == pageSearch || (r.landing && v.campaign >= 0)
}

// appendSearch appends the query string of page r, '?' included, if it has one.
func (g *generator) appendSearch(b []byte, v *visitor, r pageRef) []byte {
	switch {
	case r.kind == pageSearch:
		b = append(b, "?q="...)
		b = append(b, g.cat.queries[r.idx].escaped...)
	case r.landing && v.campaign >= 0:
		camp := &g.cat.channels[v.channel].campaigns[v.campaign]
		b = append(b, '?')
		b = append(b, camp.query...)
		if camp.clickParam != "" {
			b = append(b, '&')
			b = append(b, camp.clickParam...)
			b = append(b, '=')
			b = strconv.AppendUint(b, v.clickID, 36)
		}
	}
	return b
}

func (g *generator) appendTraits(b []byte, v *visitor) []byte {
	c := g.cat
	p := &v.person
	b = append(b, `,"traits":{"email":"`...)
	b = append(b, c.firstEmail[p.first]...)
	b = append(b, '.')
	b = append(b, c.lastEmail[p.last]...)
	b = append(b, '.')
	for i := 28; i >= 0; i -= 4 {
		b = append(b, hexDigits[p.tag>>uint(i)&0xf])
	}
	b = append(b, `@example.com"`...)
	if p.userID != "" {
		b = append(b, `,"name":"`...)
		b = append(b, c.firstNames[p.first]...)
		b = append(b, ' ')
		b = append(b, c.lastNames[p.last]...)
		b = append(b, '"')
	}
	b = append(b, `,"first_name":`...)
	b = appendString(b, c.firstNames[p.first])
	b = append(b, `,"last_name":`...)
	b = appendString(b, c.lastNames[p.last])
	if p.userID != "" {
		b = append(b, `,"plan":"`...)
		b = append(b, planNames[p.plan]...)
		b = append(b, '"')
	}
	return append(b, '}')
}

// appendProperties appends the properties of a track call, without braces.
func (g *generator) appendProperties(b []byte, v *visitor, s spec) []byte {
	c := g.cat
	switch s.kind {
	case kindProductsSearched:
		b = append(b, `"query":`...)
		b = appendString(b, c.queries[s.a].text)
	case kindProductListViewed:
		cat := &c.categories[s.a]
		b = append(b, `"list_id":`...)
		b = appendString(b, cat.slug)
		b = append(b, `,"category":`...)
		b = appendString(b, cat.name)
		b = append(b, `,"products":[`...)
		for i := range productListLen {
			if i > 0 {
				b = append(b, ',')
			}
			p := &c.products[cat.products[(int(s.b)+i)%len(cat.products)]]
			b = append(b, '{')
			b = append(b, p.itemJSON...)
			b = append(b, `,"position":`...)
			b = strconv.AppendInt(b, int64(i+1), 10)
			b = append(b, '}')
		}
		b = append(b, ']')
	case kindProductViewed:
		p := &c.products[s.a]
		b = append(b, p.coreJSON...)
		b = append(b, `,"currency":"`+currency+`"`...)
		b = append(b, p.linksJSON...)
	case kindProductAdded, kindProductRemoved:
		p := &c.products[s.a]
		b = append(b, `"cart_id":"`...)
		b = appendUUID(b, &v.cartID)
		b = append(b, `",`...)
		b = append(b, p.coreJSON...)
		b = append(b, `,"quantity":`...)
		b = strconv.AppendInt(b, int64(s.b), 10)
		b = append(b, `,"currency":"`+currency+`"`...)
	case kindCartViewed:
		b = append(b, `"cart_id":"`...)
		b = appendUUID(b, &v.cartID)
		b = append(b, `","products":`...)
		b = g.appendCart(b, v)
	case kindCheckoutStarted, kindOrderCompleted:
		o := g.order(v)
		if s.kind == kindOrderCompleted {
			b = append(b, `"checkout_id":"`...)
			b = appendUUID(b, &v.checkoutID)
			b = append(b, `",`...)
		}
		b = append(b, `"order_id":"ORD-`...)
		b = appendPadded(b, v.orderID%10_000_000_000, 10)
		b = append(b, '"')
		if s.kind == kindOrderCompleted {
			b = append(b, `,"affiliation":"`+shopName+`","total":`...)
			b = appendCents(b, o.total)
			b = append(b, `,"subtotal":`...)
			b = appendCents(b, o.subtotal)
		} else {
			b = append(b, `,"value":`...)
			b = appendCents(b, o.revenue)
		}
		b = append(b, `,"revenue":`...)
		b = appendCents(b, o.revenue)
		b = append(b, `,"shipping":`...)
		b = appendCents(b, o.shipping)
		b = append(b, `,"tax":`...)
		b = appendCents(b, o.tax)
		if o.discount > 0 {
			b = append(b, `,"discount":`...)
			b = appendCents(b, o.discount)
			b = append(b, `,"coupon":"WELCOME10"`...)
		}
		b = append(b, `,"currency":"`+currency+`","products":`...)
		b = g.appendCart(b, v)
	case kindSignedUp, kindSignedIn:
		b = append(b, `"method":`...)
		b = appendString(b, authMethods[s.a])
	}
	return b
}

func (g *generator) appendCart(b []byte, v *visitor) []byte {
	b = append(b, '[')
	for i, it := range v.cart[:v.cartN] {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		b = append(b, g.cat.products[it.product].itemJSON...)
		b = append(b, `,"quantity":`...)
		b = strconv.AppendInt(b, int64(it.qty), 10)
		b = append(b, '}')
	}
	return append(b, ']')
}

// productListLen is the number of products a Product List Viewed shows:
// the first row of the list.
const productListLen = 3

type order struct {
	subtotal, discount, shipping, tax, revenue, total int64 // cents
}

// order prices the visitor's cart: 10 % off with the coupon, free shipping
// from $75, 8.25 % sales tax. Revenue excludes shipping and tax, as in
// Segment's spec.
func (g *generator) order(v *visitor) order {
	var o order
	for _, it := range v.cart[:v.cartN] {
		o.subtotal += int64(it.qty) * g.cat.products[it.product].price
	}
	if v.coupon {
		o.discount = o.subtotal / 10
	}
	o.revenue = o.subtotal - o.discount
	if o.revenue < 7500 {
		o.shipping = 695
	}
	o.tax = (o.revenue*825 + 5000) / 10000
	o.total = o.revenue + o.shipping + o.tax
	return o
}

// appendPadded appends x in decimal, left-padded with zeros to width digits.
func appendPadded(b []byte, x uint64, width int) []byte {
	var buf [20]byte
	i := len(buf)
	for x > 0 || i > len(buf)-width {
		i--
		buf[i] = byte('0' + x%10)
		x /= 10
	}
	return append(b, buf[i:]...)
}
