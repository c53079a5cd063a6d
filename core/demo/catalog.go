package demo

import (
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
)

const (
	shopName   = "Eddy Demo Shop"
	shopOrigin = "https://shop.example.com"
	cdnOrigin  = "https://cdn.shop.example.com"
	// libraryName and libraryVersion fill context.library of every message.
	libraryName    = "eddy-demo"
	libraryVersion = "0.1.0"
	currency       = "USD"
)

// catalog is the immutable world the visitors move in: products, pages,
// campaigns and the word lists fake people are made of. It is built once per
// process from a fixed seed, so product ids stay the same from run to run and
// dashboards built on one demo run still make sense on the next.
type catalog struct {
	categories []category
	products   []product
	queries    []searchQuery
	pages      [numPageKinds]page // the pages that are not about a product or category
	devices    []weighted[string] // user agents
	locales    []weighted[string]
	// consents are what visitors' consent banners said (Segment's
	// context.consent.categoryPreferences): every demo visitor allows
	// analytics, which Eddy's default policy needs to process anything.
	consents   []weighted[string]
	channels   [numChannels]channel
	referrals  []string
	firstNames []string
	lastNames  []string
	companies  []company

	// Pre-encoded JSON fragments used on every message.
	libraryJSON []byte
	deviceJSON  [][]byte // `,"userAgent":…` by device
	localeJSON  [][]byte // `,"locale":…` by locale
	consentJSON [][]byte // `,"consent":…` by consent
	// emailNames are the lower-case names email addresses are made of.
	firstEmail, lastEmail []string
}

type category struct {
	name, slug string
	products   []int // indexes into catalog.products, most popular first
	page       page
}

type product struct {
	id, sku, name, brand string
	cat                  int
	price                int64 // cents
	page                 page
	// coreJSON is `"product_id":…,"sku":…,"category":…,"name":…,"brand":…,"price":…`.
	coreJSON []byte
	// itemJSON is the shorter form used inside products[] arrays:
	// `"product_id":…,"sku":…,"name":…,"price":…`.
	itemJSON []byte
	// linksJSON is `,"url":…,"image_url":…`.
	linksJSON []byte
}

type searchQuery struct {
	text, escaped string // escaped is the query string form: "wool+socks"
	cat           int
}

// page is a pre-built page of the shop.
type page struct {
	name, path, title, url string
	// category is the page's category name (product and category pages).
	category string
}

type pageKind uint8

const (
	pageHome pageKind = iota
	pageCategory
	pageProduct
	pageSearch
	pageCart
	pageCheckout
	pageConfirmation
	pageSignUp
	pageSignIn
	numPageKinds
)

type weighted[T any] struct {
	value  T
	weight int
}

type channelKind uint8

const (
	channelDirect channelKind = iota
	channelOrganic
	channelPaid
	channelSocial
	channelEmail
	channelReferral
	numChannels
)

// channel is how a session reached the shop.
type channel struct {
	name      string
	referrers []string   // external referrer; empty means none (typed URL, email client)
	campaigns []campaign // utm campaigns; empty for unpaid channels
}

type campaign struct {
	// query is the landing URL's utm query string, without '?'.
	query string
	// clickParam names the click id the ad network appends (gclid, fbclid), if any.
	clickParam string
	// landing is where the campaign sends people.
	landing pageKind
	// contextJSON is `,"campaign":{…}` for context.campaign.
	contextJSON []byte
}

type company struct {
	name, industry string
	employees      int
}

// shop returns the process-wide catalogue.
var shop = sync.OnceValue(buildCatalog)

func buildCatalog() *catalog {
	// A fixed seed: the catalogue is part of the demo's world, not of a run.
	rng := rand.New(rand.NewPCG(20240501, 7))
	c := &catalog{}

	type catSpec struct {
		name, code     string
		brands         []string
		nouns          []string
		minUSD, maxUSD int
	}
	specs := []catSpec{
		{"Apparel", "APP", []string{"Northwind", "Fjordline", "Cobalt & Pine"},
			[]string{"Merino Crew Sweater", "Organic Cotton Tee", "Linen Shirt", "Slim Chinos", "Packable Rain Jacket", "Puffer Vest", "Denim Jacket", "Fleece Hoodie"}, 19, 149},
		{"Footwear", "FTW", []string{"Stridewell", "Northwind", "Basalt"},
			[]string{"Trail Runner", "Leather Sneaker", "Chelsea Boot", "Canvas Slip-On", "Waterproof Hiking Boot", "Road Running Shoe", "Recovery Sandal"}, 39, 189},
		{"Home & Kitchen", "HOM", []string{"Hearth & Co", "Larder", "Oakmere"},
			[]string{"Pour-Over Coffee Set", "Cast Iron Skillet", "Chef Knife 8in", "Linen Duvet Cover", "Stoneware Mug Set", "Burr Coffee Grinder", "Walnut Cutting Board"}, 15, 249},
		{"Electronics", "ELC", []string{"Voltline", "Auralis", "Pixelcraft"},
			[]string{"Wireless Earbuds", "Portable Bluetooth Speaker", "65W USB-C Charger", "Smart Desk Lamp", "Noise-Cancelling Headphones", "E-Reader", "Fitness Tracker"}, 19, 299},
		{"Outdoor", "OUT", []string{"Summitry", "Basalt", "Fjordline"},
			[]string{"Ultralight Tent", "Down Sleeping Bag", "Carbon Trekking Poles", "Insulated Water Bottle", "Daypack 24L", "Rechargeable Headlamp", "Backpacking Stove"}, 12, 399},
		{"Beauty", "BTY", []string{"Lumen Skin", "Saltmarsh", "Petal & Clay"},
			[]string{"Vitamin C Serum", "Mineral Sunscreen SPF 50", "Hydrating Face Cream", "Shea Body Butter", "Kaolin Clay Mask", "Lip Balm Trio"}, 8, 59},
		{"Books", "BKS", []string{"Tidewater Press", "Lantern Books"},
			[]string{"Field Guide to Mountain Birds", "Sourdough Basics", "The Minimalist Kitchen", "Trail Running Handbook", "Stargazing for Beginners", "Houseplants for Everyone"}, 9, 39},
		{"Toys", "TOY", []string{"Little Forest", "Brightblock"},
			[]string{"Wooden Train Set", "Building Blocks 120pc", "Plush Red Fox", "Puzzle 1000pc", "Stunt Kite", "Marble Run"}, 12, 89},
	}
	variants := []string{"Classic", "Everyday", "Pro", "Lightweight"}

	num := 10001
	for ci, s := range specs {
		cat := category{name: s.name, slug: slugify(s.name)}
		cat.page = page{
			name:     "Category",
			path:     "/c/" + cat.slug,
			title:    s.name + " | " + shopName,
			category: s.name,
		}
		cat.page.url = shopOrigin + cat.page.path
		for _, noun := range s.nouns {
			for vi, variant := range variants {
				if vi > 0 && rng.IntN(3) == 0 {
					continue // not every product comes in every line
				}
				name := variant + " " + noun
				dollars := s.minUSD + rng.IntN(s.maxUSD-s.minUSD+1)
				cents := []int64{99, 0, 50, 95}[rng.IntN(4)]
				p := product{
					id:    fmt.Sprintf("P%d", num),
					sku:   fmt.Sprintf("%s-%d-%s", s.code, num, strings.ToUpper(variant[:2])),
					name:  name,
					brand: s.brands[rng.IntN(len(s.brands))],
					cat:   ci,
					price: int64(dollars)*100 + cents,
				}
				slug := slugify(name)
				p.page = page{
					name:     "Product",
					path:     "/products/" + slug,
					title:    name + " | " + shopName,
					category: s.name,
				}
				p.page.url = shopOrigin + p.page.path
				p.coreJSON = productJSON(p, s.name, true)
				p.itemJSON = productJSON(p, "", false)
				var links []byte
				links = append(links, `,"url":`...)
				links = appendString(links, p.page.url)
				links = append(links, `,"image_url":`...)
				links = appendString(links, cdnOrigin+"/img/"+strings.ToLower(p.id)+".jpg")
				p.linksJSON = links
				cat.products = append(cat.products, len(c.products))
				c.products = append(c.products, p)
				num++
			}
		}
		// Popularity: the first products of a category get most of the views.
		rng.Shuffle(len(cat.products), func(i, j int) {
			cat.products[i], cat.products[j] = cat.products[j], cat.products[i]
		})
		c.categories = append(c.categories, cat)
	}

	queries := []struct {
		text string
		cat  int
	}{
		{"merino sweater", 0}, {"rain jacket", 0}, {"linen shirt", 0}, {"hoodie", 0},
		{"trail running shoes", 1}, {"chelsea boots", 1}, {"sandals", 1},
		{"coffee grinder", 2}, {"cast iron", 2}, {"duvet cover", 2}, {"knife", 2},
		{"wireless earbuds", 3}, {"bluetooth speaker", 3}, {"usb c charger", 3},
		{"tent", 4}, {"sleeping bag", 4}, {"headlamp", 4}, {"water bottle", 4},
		{"sunscreen", 5}, {"vitamin c serum", 5}, {"lip balm", 5},
		{"sourdough", 6}, {"bird guide", 6}, {"train set", 7}, {"puzzle", 7},
	}
	for _, q := range queries {
		c.queries = append(c.queries, searchQuery{text: q.text, escaped: url.QueryEscape(q.text), cat: q.cat})
	}

	fixed := []struct {
		kind              pageKind
		name, path, title string
	}{
		{kind: pageHome, name: "Home", path: "/", title: shopName + " | Everyday goods, made to last"},
		{kind: pageSearch, name: "Search Results", path: "/search", title: "Search | " + shopName},
		{kind: pageCart, name: "Cart", path: "/cart", title: "Your Cart | " + shopName},
		{kind: pageCheckout, name: "Checkout", path: "/checkout", title: "Checkout | " + shopName},
		{kind: pageConfirmation, name: "Order Confirmation", path: "/checkout/thank-you", title: "Thank you for your order | " + shopName},
		{kind: pageSignUp, name: "Sign Up", path: "/account/register", title: "Create an account | " + shopName},
		{kind: pageSignIn, name: "Sign In", path: "/account/login", title: "Sign in | " + shopName},
	}
	for _, f := range fixed {
		c.pages[f.kind] = page{name: f.name, path: f.path, title: f.title, url: shopOrigin + f.path}
	}

	// Roughly the browser mix of a consumer shop: more than half mobile.
	c.devices = []weighted[string]{
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", 26},
		{"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36", 15},
		{"Mozilla/5.0 (Linux; Android 13; SAMSUNG SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36", 8},
		{"Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", 4},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36", 20},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36", 10},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15", 7},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.67", 5},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0", 4},
		{"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0", 1},
	}
	c.locales = []weighted[string]{
		{"en-US", 55}, {"en-GB", 11}, {"en-CA", 5}, {"de-DE", 8}, {"fr-FR", 7},
		{"es-ES", 5}, {"nl-NL", 3}, {"pt-BR", 4}, {"en-AU", 2},
	}

	c.channels[channelDirect] = channel{name: "direct"}
	c.channels[channelOrganic] = channel{name: "organic", referrers: []string{
		"https://www.google.com/", "https://www.google.com/", "https://www.google.com/", "https://www.bing.com/", "https://duckduckgo.com/"}}
	c.channels[channelPaid] = channel{name: "paid", referrers: []string{"https://www.google.com/"}, campaigns: []campaign{
		newCampaign(pageHome, "gclid", "google", "cpc", "brand_search", "eddy demo shop", ""),
		newCampaign(pageCategory, "gclid", "google", "cpc", "spring_sale", "merino sweater", ""),
		newCampaign(pageProduct, "gclid", "google", "cpc", "shopping_feed", "", ""),
		newCampaign(pageProduct, "gclid", "google", "cpc", "running_shoes_generic", "trail running shoes", ""),
	}}
	c.channels[channelSocial] = channel{name: "social", referrers: []string{"https://l.facebook.com/", "https://m.facebook.com/"}, campaigns: []campaign{
		newCampaign(pageCategory, "fbclid", "facebook", "social", "summer_lookbook", "", "carousel_1"),
		newCampaign(pageProduct, "fbclid", "facebook", "social", "retargeting_cart", "", "video_15s"),
	}}
	c.channels[channelEmail] = channel{name: "email", campaigns: []campaign{
		newCampaign(pageCategory, "", "newsletter", "email", "weekly_newsletter", "", "hero_banner"),
		newCampaign(pageProduct, "", "newsletter", "email", "back_in_stock", "", "product_tile"),
		newCampaign(pageHome, "", "newsletter", "email", "welcome_series_2", "", "cta_button"),
	}}
	c.channels[channelReferral] = channel{name: "referral", referrers: []string{
		"https://www.reddit.com/r/BuyItForLife/", "https://www.pinterest.com/", "https://gearblog.example.org/best-rain-jackets",
		"https://news.example.net/gift-guide", "https://outdoors.example.org/ultralight-kit-list"}}

	c.firstNames = []string{"Ava", "Liam", "Olivia", "Noah", "Emma", "Mateo", "Sofia", "Lucas", "Mia", "Elias",
		"Amelia", "Hugo", "Chloe", "Leon", "Isla", "Yusuf", "Hana", "Arjun", "Priya", "Kenji",
		"Zoe", "Omar", "Lea", "Theo", "Grace", "Diego", "Nora", "Finn", "Aisha", "Sam"}
	c.lastNames = []string{"Smith", "Garcia", "Muller", "Martin", "Rossi", "Kowalski", "Nguyen", "Patel", "Kim", "Silva",
		"Johnson", "Brown", "Dubois", "Jansen", "Lopez", "Novak", "Sato", "Khan", "Andersson", "Murphy",
		"Fischer", "Moreau", "Costa", "Walker", "Okafor", "Hansen", "Lee", "Wright", "Meyer", "Clarke"}
	c.companies = []company{
		{"Bluefin Studios", "Media", 40}, {"Copperleaf Cafe Group", "Hospitality", 120}, {"Arclight Labs", "Software", 85},
		{"Harbor & Finch Design", "Design", 12}, {"Meridian Outdoor School", "Education", 30}, {"Quarry Fitness", "Fitness", 65},
		{"Tessellate Architects", "Architecture", 22}, {"Greenway Logistics", "Logistics", 310}, {"Sundial Health", "Healthcare", 540},
		{"Brightwater Events", "Events", 18}, {"Kestrel Consulting", "Consulting", 9}, {"Lumen Coworking", "Real Estate", 27},
	}

	c.libraryJSON = []byte(`"library":{"name":"` + libraryName + `","version":"` + libraryVersion + `"}`)
	for _, d := range c.devices {
		c.deviceJSON = append(c.deviceJSON, appendString([]byte(`,"userAgent":`), d.value))
	}
	for _, l := range c.locales {
		c.localeJSON = append(c.localeJSON, appendString([]byte(`,"locale":`), l.value))
	}
	c.consents = []weighted[string]{
		{`{"necessary":true,"analytics":true,"marketing":true,"personalization":true}`, 55},
		{`{"necessary":true,"analytics":true,"marketing":false,"personalization":true}`, 25},
		{`{"necessary":true,"analytics":true,"marketing":false,"personalization":false}`, 20},
	}
	for _, cs := range c.consents {
		c.consentJSON = append(c.consentJSON, []byte(`,"consent":{"categoryPreferences":`+cs.value+`}`))
	}
	for _, n := range c.firstNames {
		c.firstEmail = append(c.firstEmail, strings.ToLower(n))
	}
	for _, n := range c.lastNames {
		c.lastEmail = append(c.lastEmail, strings.ToLower(n))
	}
	return c
}

func newCampaign(landing pageKind, clickParam, source, medium, name, term, content string) campaign {
	q := url.Values{}
	q.Set("utm_source", source)
	q.Set("utm_medium", medium)
	q.Set("utm_campaign", name)
	var js []byte
	js = append(js, `,"campaign":{"name":`...)
	js = appendString(js, name)
	js = append(js, `,"source":`...)
	js = appendString(js, source)
	js = append(js, `,"medium":`...)
	js = appendString(js, medium)
	if term != "" {
		q.Set("utm_term", term)
		js = append(js, `,"term":`...)
		js = appendString(js, term)
	}
	if content != "" {
		q.Set("utm_content", content)
		js = append(js, `,"content":`...)
		js = appendString(js, content)
	}
	js = append(js, '}')
	return campaign{query: q.Encode(), clickParam: clickParam, landing: landing, contextJSON: js}
}

func productJSON(p product, category string, full bool) []byte {
	var b []byte
	b = append(b, `"product_id":`...)
	b = appendString(b, p.id)
	b = append(b, `,"sku":`...)
	b = appendString(b, p.sku)
	if category != "" {
		b = append(b, `,"category":`...)
		b = appendString(b, category)
	}
	b = append(b, `,"name":`...)
	b = appendString(b, p.name)
	if full {
		b = append(b, `,"brand":`...)
		b = appendString(b, p.brand)
	}
	b = append(b, `,"price":`...)
	b = appendCents(b, p.price)
	return b
}

func slugify(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		case !dash && b.Len() > 0:
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

// pick returns an index into ws drawn with probability proportional to weight.
func pick[T any](rng *rand.Rand, ws []weighted[T]) int {
	total := 0
	for _, w := range ws {
		total += w.weight
	}
	n := rng.IntN(total)
	for i, w := range ws {
		if n < w.weight {
			return i
		}
		n -= w.weight
	}
	return len(ws) - 1
}
