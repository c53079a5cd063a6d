package session

import (
	"math"
	"slices"
	"strings"
	"time"
)

// Cart is the visitor's cart as the session's e-commerce events describe
// it (Segment e-commerce v2): Product Added and Product Removed add and
// remove quantities, Cart Viewed replaces the cart with its product list,
// Order Completed empties it.
//
// The cart keeps the latest replacement (its list, or nothing for an
// order) and the changes after it, ordered by event time, and reads as
// their fold in that order. So late events land where they belong: a
// change older than the latest replacement is ignored, a late replacement
// drops the changes before it, and the result is the cart in-order events
// would have built. Past MaxCartChanges changes the oldest are folded into
// the replacement (later events older than those then count as too old).
type Cart struct {
	reset   mark
	base    []Item   // the replacement's list, by key
	changes []change // after reset, by mark
}

// change is one Product Added (positive quantity) or Product Removed
// (negative).
type change struct {
	item Item
	at   mark
}

// Item is one product line of a cart.
type Item struct {
	ProductID string
	SKU       string
	Name      string
	Price     float64
	Quantity  int
}

func (it Item) key() string {
	switch {
	case it.ProductID != "":
		return it.ProductID
	case it.SKU != "":
		return it.SKU
	}
	return it.Name
}

// Items returns the cart's products, by product id (else SKU, else name).
func (c Cart) Items() []Item {
	items := slices.Clone(c.base)
	for _, ch := range c.changes {
		items = apply(items, ch.item)
	}
	return items
}

// apply adds a change to items, as an in-order event would: a removal
// takes away at most what is there; the later description of a product
// wins where it says something.
func apply(items []Item, it Item) []Item {
	i, found := findItem(items, it.key())
	switch {
	case found && it.Quantity < 0:
		if items[i].Quantity += it.Quantity; items[i].Quantity <= 0 {
			items = slices.Delete(items, i, i+1)
		}
	case found:
		l := &items[i]
		l.Quantity += it.Quantity
		if it.SKU != "" {
			l.SKU = it.SKU
		}
		if it.Name != "" {
			l.Name = it.Name
		}
		if it.Price != 0 {
			l.Price = it.Price
		}
	case it.Quantity > 0 && len(items) < MaxCartItems:
		items = slices.Insert(items, i, it)
	}
	if len(items) == 0 {
		return nil
	}
	return items
}

func findItem(items []Item, key string) (int, bool) {
	return slices.BinarySearchFunc(items, key, func(it Item, k string) int { return strings.Compare(it.key(), k) })
}

// Value returns the sum of price × quantity over the cart's products.
func (c Cart) Value() float64 {
	var micros int64
	for _, it := range c.Items() {
		micros += toMicros(it.Price) * int64(it.Quantity)
	}
	return fromMicros(micros)
}

// IsEmpty reports whether the cart has no product.
func (c Cart) IsEmpty() bool { return len(c.Items()) == 0 }

// Money is summed in millionths so that sums do not depend on the order of
// the terms (float addition is not associative), which replays need.
func toMicros(v float64) int64 {
	if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > 1e12 {
		return 0
	}
	return int64(math.Round(v * 1e6))
}

func fromMicros(m int64) float64 { return float64(m) / 1e6 }

func itemOf(p Product) Item {
	q := p.Quantity
	if q <= 0 {
		q = 1
	}
	return Item{ProductID: intern(p.ID), SKU: intern(p.SKU), Name: intern(p.Name), Price: p.Price, Quantity: q}
}

// change records a Product Added (sign 1) or Product Removed (sign -1).
func (c *Cart) change(p Product, sign int, at mark) {
	it := itemOf(p)
	it.Quantity *= sign
	c.record(change{item: it, at: at})
}

func (c *Cart) record(ch change) {
	if ch.at.before(c.reset) || ch.item.key() == "" {
		return // the cart was replaced after this change, or it names nothing
	}
	i, _ := slices.BinarySearchFunc(c.changes, ch.at, func(x change, m mark) int { return x.at.compare(m) })
	c.changes = slices.Insert(c.changes, i, ch)
	if len(c.changes) > MaxCartChanges {
		// Fold the oldest change into the replacement.
		c.base, c.reset = apply(c.base, c.changes[0].item), c.changes[0].at
		c.changes = slices.Delete(c.changes, 0, 1)
	}
}

// replace makes the cart hold products (none: empty) as of at.
func (c *Cart) replace(products []Product, at mark) {
	if at.before(c.reset) {
		return // a later replacement is already applied
	}
	c.reset, c.base = at, nil
	for _, p := range products {
		if it := itemOf(p); it.key() != "" {
			c.base = apply(c.base, it)
		}
	}
	i, _ := slices.BinarySearchFunc(c.changes, at, func(ch change, m mark) int { return ch.at.compare(m) })
	if c.changes = slices.Delete(c.changes, 0, i); len(c.changes) == 0 {
		c.changes = nil
	}
}

// absorb adds o, the cart of a later session, to c.
func (c *Cart) absorb(o Cart) {
	if c.reset.before(o.reset) {
		c.replace(nil, o.reset)
		c.base = slices.Clone(o.base)
	}
	for _, ch := range o.changes {
		c.record(ch)
	}
}

func (c Cart) clone() Cart {
	c.base = slices.Clone(c.base)
	c.changes = slices.Clone(c.changes)
	return c
}

// Order is one Order Completed of a session.
type Order struct {
	ID       string // order_id
	Total    float64
	Currency string
	Time     time.Time
	at       mark
}
