package live

import (
	"time"

	"github.com/eddy-cdp/eddy/core/store"
)

// CartItemView is a cart line as the API and apps see it.
type CartItemView struct {
	ProductID *string `json:"product_id"`
	SKU       *string `json:"sku"`
	Name      *string `json:"name"`
	Price     float64 `json:"price"`
	Quantity  int     `json:"quantity"`
}

// CartView is a session's cart as the API and apps see it.
type CartView struct {
	Items []CartItemView `json:"items"`
	Value float64        `json:"value"`
}

// SessionView is a session as the API shows it and apps receive it.
type SessionView struct {
	ID              string    `json:"id"`
	AnonymousID     string    `json:"anonymous_id"`
	UserID          *string   `json:"user_id"`
	ProfileID       *string   `json:"profile_id"`
	StartedAt       time.Time `json:"started_at"`
	LastEventAt     time.Time `json:"last_event_at"`
	DurationSeconds float64   `json:"duration_seconds"`
	Events          int       `json:"events"`
	PageViews       int       `json:"page_views"`
	LandingPage     *string   `json:"landing_page"`
	CurrentPage     *string   `json:"current_page"`
	ExitPage        *string   `json:"exit_page"`
	Referrer        *string   `json:"referrer"`
	ChannelGroup    string    `json:"channel_group"`
	Source          *string   `json:"source"`
	Medium          *string   `json:"medium"`
	Campaign        *string   `json:"campaign"`
	Term            *string   `json:"term"`
	Content         *string   `json:"content"`
	ClickIDParam    *string   `json:"click_id_param"`
	ClickID         *string   `json:"click_id"`
	DeviceType      *string   `json:"device_type"`
	OS              *string   `json:"os"`
	Browser         *string   `json:"browser"`
	Country         *string   `json:"country"`
	City            *string   `json:"city"`
	Cart            *CartView `json:"cart"`
	OrdersCount     int       `json:"orders_count"`
	Revenue         float64   `json:"revenue"`
	Converted       bool      `json:"converted"`
	Bounced         bool      `json:"bounced"`
	Closed          bool      `json:"closed"`
	UpdatedAt       time.Time `json:"updated_at"`
}

// View is the view of a session.
func View(s store.StoredSession) SessionView {
	v := SessionView{ID: s.ID, AnonymousID: s.AnonymousID, UserID: nullString(s.UserID), ProfileID: nullString(s.ProfileID),
		StartedAt: s.StartedAt.UTC(), LastEventAt: s.LastEventAt.UTC(), DurationSeconds: s.Duration.Seconds(),
		Events: s.Events, PageViews: s.PageViews, LandingPage: nullString(s.LandingPage), CurrentPage: nullString(s.CurrentPage),
		ExitPage: nullString(s.ExitPage), Referrer: nullString(s.Referrer), ChannelGroup: s.ChannelGroup,
		Source: nullString(s.Source), Medium: nullString(s.Medium), Campaign: nullString(s.Campaign), Term: nullString(s.Term),
		Content: nullString(s.Content), ClickIDParam: nullString(s.ClickIDParam), ClickID: nullString(s.ClickID),
		DeviceType: nullString(s.DeviceType), OS: nullString(s.OS), Browser: nullString(s.Browser),
		Country: nullString(s.Country), City: nullString(s.City), OrdersCount: s.OrdersCount, Revenue: s.Revenue,
		Converted: s.Converted, Bounced: s.Bounced, Closed: s.Closed, UpdatedAt: s.UpdatedAt.UTC()}
	if s.Cart != nil {
		v.Cart = &CartView{Items: make([]CartItemView, len(s.Cart.Items)), Value: s.Cart.Value}
		for i, it := range s.Cart.Items {
			v.Cart.Items[i] = CartItemView{ProductID: nullString(it.ProductID), SKU: nullString(it.SKU), Name: nullString(it.Name),
				Price: it.Price, Quantity: it.Quantity}
		}
	}
	return v
}

// nullString is nil for "" (JSON null).
func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
