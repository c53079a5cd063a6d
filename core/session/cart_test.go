package session

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

func TestCart(t *testing.T) {
	shoe := Product{ID: "shoe", SKU: "SH-1", Name: "Shoe", Price: 50}
	sock := Product{ID: "sock", Name: "Sock", Price: 2.5}
	many := func(n int) Product { return Product{ID: fmt.Sprint("p", n), Price: 1} }
	add := func(id string, at time.Duration, p Product) Event { return tr(id, at, ProductAdded, products(p)) }
	remove := func(id string, at time.Duration, p Product) Event { return tr(id, at, ProductRemoved, products(p)) }
	qty := func(p Product, q int) Product { p.Quantity = q; return p }
	item := func(p Product, q int) Item {
		return Item{ProductID: p.ID, SKU: p.SKU, Name: p.Name, Price: p.Price, Quantity: q}
	}
	var fifty []Event
	for i := range MaxCartItems + 1 {
		fifty = append(fifty, add(fmt.Sprint("m", i), time.Duration(i)*time.Second, many(i)))
	}
	tests := []struct {
		name    string
		arrival []Event
		want    []Item
		value   float64
	}{
		{"add one", []Event{add("a", 0, shoe)}, []Item{item(shoe, 1)}, 50},
		{"add twice", []Event{add("a", 0, shoe), add("b", 1, shoe)}, []Item{item(shoe, 2)}, 100},
		{"add a quantity", []Event{add("a", 0, qty(sock, 3)), add("b", 1, shoe)}, []Item{item(shoe, 1), item(sock, 3)}, 57.5},
		{"remove one of three", []Event{add("a", 0, qty(sock, 3)), remove("b", 1, sock)}, []Item{item(sock, 2)}, 5},
		{"remove all", []Event{add("a", 0, qty(sock, 3)), remove("b", 1, qty(sock, 3))}, nil, 0},
		{"remove more than added, then add", []Event{add("a", 0, sock), remove("b", 1, qty(sock, 2)), add("c", 2, sock)}, []Item{item(sock, 1)}, 2.5},
		{"remove from an empty cart", []Event{remove("a", 0, sock), add("b", 1, sock)}, []Item{item(sock, 1)}, 2.5},
		{"remove before add arrives", []Event{remove("b", minutes(1), sock), add("a", 0, sock)}, nil, 0},
		{"later price wins", []Event{add("b", minutes(1), Product{ID: "shoe", Price: 40}), add("a", 0, shoe)}, []Item{{ProductID: "shoe", SKU: "SH-1", Name: "Shoe", Price: 40, Quantity: 2}}, 80},
		{"cart viewed replaces", []Event{add("a", 0, shoe), tr("b", minutes(1), CartViewed, products(qty(sock, 4)))}, []Item{item(sock, 4)}, 10},
		{"cart viewed without products changes nothing", []Event{add("a", 0, shoe), tr("b", minutes(1), CartViewed)}, []Item{item(shoe, 1)}, 50},
		{"add after cart viewed", []Event{tr("b", 0, CartViewed, products(sock)), add("c", minutes(1), shoe)}, []Item{item(shoe, 1), item(sock, 1)}, 52.5},
		{"add older than cart viewed is ignored", []Event{tr("b", minutes(1), CartViewed, products(sock)), add("a", 0, shoe)}, []Item{item(sock, 1)}, 2.5},
		{"later add arrives before cart viewed", []Event{add("c", minutes(2), shoe), tr("b", minutes(1), CartViewed, products(sock))}, []Item{item(shoe, 1), item(sock, 1)}, 52.5},
		{"late cart viewed between two adds", []Event{add("a", 0, sock), add("c", minutes(2), sock), tr("b", minutes(1), CartViewed, products(qty(sock, 5)))}, []Item{item(sock, 6)}, 15},
		{"late order between two adds", []Event{add("a", 0, sock), add("c", minutes(2), sock), tr("b", minutes(1), OrderCompleted, order("o", 2.5))}, []Item{item(sock, 1)}, 2.5},
		{"older cart viewed is ignored", []Event{tr("b", minutes(2), CartViewed, products(sock)), tr("a", minutes(1), CartViewed, products(shoe))}, []Item{item(sock, 1)}, 2.5},
		{"order empties", []Event{add("a", 0, shoe), tr("b", minutes(1), OrderCompleted, order("o1", 50, shoe))}, nil, 0},
		{"add after order", []Event{add("a", 0, shoe), tr("b", minutes(1), OrderCompleted, order("o1", 50)), add("c", minutes(2), sock)}, []Item{item(sock, 1)}, 2.5},
		{"v1 event names", []Event{tr("a", 0, "Added Product", products(shoe)), tr("b", 1, "Added Product", products(sock)), tr("c", 2, "Removed Product", products(shoe))}, []Item{item(sock, 1)}, 2.5},
		{"keyed by sku without product id", []Event{add("a", 0, Product{SKU: "X", Price: 1}), add("b", 1, Product{SKU: "X", Price: 1})}, []Item{{SKU: "X", Price: 1, Quantity: 2}}, 2},
		{"product without any key is not tracked", []Event{add("a", 0, Product{Price: 1})}, nil, 0},
		{"capped at MaxCartItems products", fifty, nil, MaxCartItems},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newTestWorkspace(t, nil).NewVisitor(testAnon)
			changes := applyAll(t, v, tt.arrival...)
			cart := changes[len(changes)-1].Session.Cart
			got := cart.Items()
			if tt.name == "capped at MaxCartItems products" {
				if len(got) != MaxCartItems {
					t.Fatalf("%d items, want %d", len(got), MaxCartItems)
				}
			} else if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("items = %+v, want %+v", got, tt.want)
			}
			if cart.Value() != tt.value || cart.IsEmpty() != (len(got) == 0) {
				t.Fatalf("value = %v, empty = %v; want %v", cart.Value(), cart.IsEmpty(), tt.value)
			}
		})
	}
}

func TestCartFoldsOldChangesPastTheCap(t *testing.T) {
	v := newTestWorkspace(t, nil).NewVisitor(testAnon)
	var events []Event
	for i := range MaxCartChanges + 50 {
		events = append(events, tr(fmt.Sprint("m", i), time.Duration(i)*time.Second, ProductAdded, products(Product{ID: "p", Price: 1})))
	}
	changes := applyAll(t, v, events...)
	cart := changes[len(changes)-1].Session.Cart
	if items := cart.Items(); len(items) != 1 || items[0].Quantity != MaxCartChanges+50 || len(cart.changes) > MaxCartChanges {
		t.Fatalf("items %+v with %d changes kept; want quantity %d and at most %d changes", items, len(cart.changes), MaxCartChanges+50, MaxCartChanges)
	}
}

func TestOrders(t *testing.T) {
	tests := []struct {
		name      string
		arrival   []Event
		count     int
		revenue   float64
		converted bool
		listed    []string // order ids, by time
	}{
		{"no order", []Event{pv("a", 0, home)}, 0, 0, false, nil},
		{"one order", []Event{tr("a", 0, OrderCompleted, order("o1", 99.9))}, 1, 99.9, true, []string{"o1"}},
		{"two orders", []Event{tr("a", 0, OrderCompleted, order("o1", 0.1)), tr("b", 1, OrderCompleted, order("o2", 0.2))}, 2, 0.3, true, []string{"o1", "o2"}},
		{"listed by time", []Event{tr("b", minutes(1), OrderCompleted, order("o2", 2)), tr("a", 0, OrderCompleted, order("o1", 1))}, 2, 3, true, []string{"o1", "o2"}},
		{"an order id counts once", []Event{tr("a", 0, OrderCompleted, order("o1", 10)), tr("b", 1, OrderCompleted, order("o1", 10))}, 1, 10, true, []string{"o1"}},
		{"the earliest of a duplicate is kept", []Event{tr("b", minutes(1), OrderCompleted, order("o1", 12)), tr("a", 0, OrderCompleted, order("o1", 10))}, 1, 10, true, []string{"o1"}},
		{"orders without id all count", []Event{tr("a", 0, OrderCompleted, order("", 1)), tr("b", 1, OrderCompleted, order("", 1))}, 2, 2, true, []string{"", ""}},
		{"v1 name", []Event{tr("a", 0, "Completed Order", order("o1", 5))}, 1, 5, true, []string{"o1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newTestWorkspace(t, nil).NewVisitor(testAnon)
			changes := applyAll(t, v, tt.arrival...)
			s := changes[len(changes)-1].Session
			var listed []string
			for _, o := range s.Orders {
				listed = append(listed, o.ID)
			}
			if s.OrderCount != tt.count || s.Revenue() != tt.revenue || s.Converted() != tt.converted || !reflect.DeepEqual(listed, tt.listed) {
				t.Fatalf("orders %d revenue %v converted %v listed %v; want %d %v %v %v",
					s.OrderCount, s.Revenue(), s.Converted(), listed, tt.count, tt.revenue, tt.converted, tt.listed)
			}
		})
	}
}

func TestOrdersCappedButCounted(t *testing.T) {
	v := newTestWorkspace(t, nil).NewVisitor(testAnon)
	var events []Event
	for i := range MaxOrders + 5 {
		events = append(events, tr(fmt.Sprint("m", i), time.Duration(i)*time.Second, OrderCompleted, order(fmt.Sprint("o", i), 1)))
	}
	changes := applyAll(t, v, events...)
	s := changes[len(changes)-1].Session
	if len(s.Orders) != MaxOrders || s.OrderCount != MaxOrders+5 || s.Revenue() != MaxOrders+5 {
		t.Fatalf("listed %d, counted %d, revenue %v; want %d listed and %d counted", len(s.Orders), s.OrderCount, s.Revenue(), MaxOrders, MaxOrders+5)
	}
	if o := s.Orders[0]; o.ID != "o0" || o.Currency != "EUR" || !o.Time.Equal(t0) || o.Total != 1 {
		t.Fatalf("first order %+v", o)
	}
}
