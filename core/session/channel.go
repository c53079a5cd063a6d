package session

import "strings"

// ChannelGroup is the marketing channel a session came through.
type ChannelGroup string

// The channel groups, a subset of GA4's default channel grouping.
const (
	Direct        ChannelGroup = "Direct"
	OrganicSearch ChannelGroup = "Organic Search"
	PaidSearch    ChannelGroup = "Paid Search"
	OrganicSocial ChannelGroup = "Organic Social"
	PaidSocial    ChannelGroup = "Paid Social"
	Email         ChannelGroup = "Email"
	Referral      ChannelGroup = "Referral"
	Affiliates    ChannelGroup = "Affiliates"
	Display       ChannelGroup = "Display"
	Other         ChannelGroup = "Other"
)

// Channel is where a session's traffic came from.
type Channel struct {
	Group ChannelGroup
	// Source is utm_source; without one, the network a click id belongs to
	// ("google" for gclid) or the referring site ("google", "facebook",
	// "blog.example.org"); "(direct)" for direct traffic.
	Source string
	// Medium is utm_medium; without one, "cpc" for a click id, "organic"
	// for a search engine, "referral" for another site, "(none)" for direct.
	Medium string
	// Campaign is utm_campaign.
	Campaign string
}

// clickNetwork is the source and the medium an ad click id implies.
var clickNetwork = map[string][2]string{
	"gclid": {"google", "cpc"}, "wbraid": {"google", "cpc"}, "gbraid": {"google", "cpc"},
	"dclid": {"google", "display"}, "msclkid": {"bing", "cpc"},
	"fbclid": {"facebook", ""}, "ttclid": {"tiktok", ""}, "twclid": {"twitter", ""}, "li_fat_id": {"linkedin", ""},
}

// channelOf groups a session's traffic from its campaign and the external
// referrer host of the event that started it, by a simplified version of
// GA4's default channel grouping, first match wins:
//
//  1. no campaign: no referrer → Direct; a search engine → Organic Search;
//     a social network → Organic Social; a webmail → Email; else Referral.
//  2. gclid, wbraid, gbraid, msclkid → Paid Search; dclid → Display.
//  3. fbclid, ttclid, twclid, li_fat_id → Paid Social when the medium is
//     paid (below), else Organic Social.
//  4. medium paidsearch / paid_search / paid-search → Paid Search;
//     paidsocial / paid_social / paid-social → Paid Social.
//  5. a paid medium (containing "cp", ppc, retargeting, paid*) with a
//     search engine source → Paid Search, with a social source → Paid
//     Social.
//  6. medium display, banner, cpm, interstitial, expandable → Display.
//  7. medium or source email, e-mail, e_mail, "e mail" → Email.
//  8. medium affiliate(s) → Affiliates.
//  9. a social source, or medium social, sm, social-network, social-media
//     → Organic Social.
//  10. a search engine source, or medium organic → Organic Search.
//  11. medium referral → Referral.
//  12. anything else with a campaign → Other (GA4's Paid Other and
//     Unassigned).
//
// Sources and referrers are recognised by a label or word: google, bing,
// duckduckgo, yahoo, baidu, yandex, ecosia are search engines; facebook,
// fb, instagram, ig, twitter, t.co, x.com, linkedin, lnkd, reddit,
// tiktok, pinterest, youtube are social networks.
func channelOf(c Campaign, refHost string) Channel {
	if c.IsZero() {
		switch site, kind := siteOf(refHost); {
		case refHost == "":
			return Channel{Group: Direct, Source: "(direct)", Medium: "(none)"}
		case kind == searchSite:
			return Channel{Group: OrganicSearch, Source: site, Medium: "organic"}
		case kind == socialSite:
			return Channel{Group: OrganicSocial, Source: site, Medium: "referral"}
		case kind == mailSite:
			return Channel{Group: Email, Source: site, Medium: "referral"}
		default:
			return Channel{Group: Referral, Source: site, Medium: "referral"}
		}
	}
	ch := Channel{Source: c.Source, Medium: c.Medium, Campaign: c.Name}
	if net, ok := clickNetwork[c.ClickIDParam]; ok {
		if ch.Source == "" {
			ch.Source = net[0]
		}
		if ch.Medium == "" {
			ch.Medium = net[1]
		}
	}
	if ch.Source == "" && refHost != "" {
		ch.Source, _ = siteOf(refHost)
	}
	source, medium := strings.ToLower(ch.Source), strings.ToLower(ch.Medium)
	_, kind := siteOf(source)
	paid := strings.Contains(medium, "cp") || medium == "ppc" || medium == "retargeting" || strings.HasPrefix(medium, "paid")
	switch {
	case c.ClickIDParam == "gclid" || c.ClickIDParam == "wbraid" || c.ClickIDParam == "gbraid" || c.ClickIDParam == "msclkid":
		ch.Group = PaidSearch
	case c.ClickIDParam == "dclid":
		ch.Group = Display
	case c.ClickIDParam != "" && paid:
		ch.Group = PaidSocial
	case c.ClickIDParam != "":
		ch.Group = OrganicSocial
	case oneOf(medium, "paidsearch", "paid_search", "paid-search"):
		ch.Group = PaidSearch
	case oneOf(medium, "paidsocial", "paid_social", "paid-social"):
		ch.Group = PaidSocial
	case paid && kind == searchSite:
		ch.Group = PaidSearch
	case paid && kind == socialSite:
		ch.Group = PaidSocial
	case oneOf(medium, "display", "banner", "cpm", "interstitial", "expandable"):
		ch.Group = Display
	case oneOf(medium, "email", "e-mail", "e_mail", "e mail") || oneOf(source, "email", "e-mail", "e_mail", "e mail"):
		ch.Group = Email
	case oneOf(medium, "affiliate", "affiliates"):
		ch.Group = Affiliates
	case kind == socialSite || oneOf(medium, "social", "sm", "social-network", "social-media", "social network", "social media"):
		ch.Group = OrganicSocial
	case kind == searchSite || medium == "organic":
		ch.Group = OrganicSearch
	case medium == "referral":
		ch.Group = Referral
	default:
		ch.Group = Other
	}
	return ch
}

func oneOf(s string, list ...string) bool {
	for _, l := range list {
		if s == l {
			return true
		}
	}
	return false
}

type siteKind int

const (
	otherSite siteKind = iota
	searchSite
	socialSite
	mailSite
)

// knownSites maps a word of a host or utm_source to its network.
var knownSites = map[string]struct {
	name string
	kind siteKind
}{
	"google":     {"google", searchSite},
	"bing":       {"bing", searchSite},
	"duckduckgo": {"duckduckgo", searchSite},
	"yahoo":      {"yahoo", searchSite},
	"baidu":      {"baidu", searchSite},
	"yandex":     {"yandex", searchSite},
	"ecosia":     {"ecosia", searchSite},
	"facebook":   {"facebook", socialSite},
	"fb":         {"facebook", socialSite},
	"instagram":  {"instagram", socialSite},
	"ig":         {"instagram", socialSite},
	"twitter":    {"twitter", socialSite},
	"linkedin":   {"linkedin", socialSite},
	"lnkd":       {"linkedin", socialSite},
	"reddit":     {"reddit", socialSite},
	"tiktok":     {"tiktok", socialSite},
	"pinterest":  {"pinterest", socialSite},
	"youtube":    {"youtube", socialSite},
}

// webmails are referrer hosts of web mail clients, which GA4 files under
// Email rather than under the search engine of the same company.
var webmails = []string{"mail.google.com", "mail.yahoo.com", "outlook.live.com", "outlook.office.com", "outlook.office365.com"}

// siteOf names the site of a host or utm_source and says whether it is a
// known search engine, social network or webmail. Unknown hosts are named
// by themselves without "www.".
func siteOf(s string) (string, siteKind) {
	s = strings.ToLower(s)
	for _, m := range webmails {
		if s == m {
			return s, mailSite
		}
	}
	switch {
	case s == "t.co" || s == "x" || withinDomain(s, "x.com"):
		return "twitter", socialSite
	}
	for rest := s; rest != ""; {
		var word string
		i := strings.IndexFunc(rest, func(r rune) bool { return !('a' <= r && r <= 'z' || '0' <= r && r <= '9') })
		if i < 0 {
			word, rest = rest, ""
		} else {
			word, rest = rest[:i], rest[i+1:]
		}
		if k, ok := knownSites[word]; ok {
			return k.name, k.kind
		}
	}
	return bareHost(s), otherSite
}
