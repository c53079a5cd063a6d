package session

import "testing"

func TestChannelOf(t *testing.T) {
	c := func(source, medium string) Campaign { return Campaign{Source: source, Medium: medium, Name: "spring"} }
	clickID := func(param string) Campaign { return Campaign{ClickIDParam: param, ClickID: "abc"} }
	tests := []struct {
		name     string
		campaign Campaign
		referrer string // external referrer host
		want     ChannelGroup
		source   string
		medium   string
	}{
		{"no referrer, no campaign", Campaign{}, "", Direct, "(direct)", "(none)"},
		{"google referrer", Campaign{}, "www.google.com", OrganicSearch, "google", "organic"},
		{"google country domain", Campaign{}, "www.google.co.uk", OrganicSearch, "google", "organic"},
		{"bing", Campaign{}, "www.bing.com", OrganicSearch, "bing", "organic"},
		{"duckduckgo", Campaign{}, "duckduckgo.com", OrganicSearch, "duckduckgo", "organic"},
		{"yahoo search", Campaign{}, "search.yahoo.com", OrganicSearch, "yahoo", "organic"},
		{"ecosia", Campaign{}, "www.ecosia.org", OrganicSearch, "ecosia", "organic"},
		{"yandex", Campaign{}, "yandex.ru", OrganicSearch, "yandex", "organic"},
		{"facebook referrer", Campaign{}, "l.facebook.com", OrganicSocial, "facebook", "referral"},
		{"t.co", Campaign{}, "t.co", OrganicSocial, "twitter", "referral"},
		{"x.com", Campaign{}, "x.com", OrganicSocial, "twitter", "referral"},
		{"linkedin", Campaign{}, "www.linkedin.com", OrganicSocial, "linkedin", "referral"},
		{"reddit", Campaign{}, "old.reddit.com", OrganicSocial, "reddit", "referral"},
		{"youtube", Campaign{}, "m.youtube.com", OrganicSocial, "youtube", "referral"},
		{"gmail web", Campaign{}, "mail.google.com", Email, "mail.google.com", "referral"},
		{"other site", Campaign{}, "www.blog.example.org", Referral, "blog.example.org", "referral"},
		{"a host that only contains x", Campaign{}, "box.com", Referral, "box.com", "referral"},
		{"cpc from google", c("google", "cpc"), "", PaidSearch, "google", "cpc"},
		{"ppc from bing", c("bing", "ppc"), "", PaidSearch, "bing", "ppc"},
		{"paidsearch medium, unknown source", c("brave", "paidsearch"), "", PaidSearch, "brave", "paidsearch"},
		{"gclid alone", clickID("gclid"), "www.google.com", PaidSearch, "google", "cpc"},
		{"wbraid", clickID("wbraid"), "", PaidSearch, "google", "cpc"},
		{"msclkid", clickID("msclkid"), "", PaidSearch, "bing", "cpc"},
		{"dclid", clickID("dclid"), "", Display, "google", "display"},
		{"fbclid alone is organic", clickID("fbclid"), "l.facebook.com", OrganicSocial, "facebook", ""},
		{"fbclid with a paid medium", Campaign{Source: "facebook", Medium: "paid_social", ClickIDParam: "fbclid", ClickID: "x"}, "", PaidSocial, "facebook", "paid_social"},
		{"ttclid with cpc", Campaign{Medium: "cpc", ClickIDParam: "ttclid", ClickID: "x"}, "", PaidSocial, "tiktok", "cpc"},
		{"li_fat_id alone", clickID("li_fat_id"), "", OrganicSocial, "linkedin", ""},
		{"paid social by source", c("Facebook", "CPC"), "", PaidSocial, "Facebook", "CPC"},
		{"paid social by source word", c("instagram_ads", "paid"), "", PaidSocial, "instagram_ads", "paid"},
		{"paidsocial medium", c("snap", "paidsocial"), "", PaidSocial, "snap", "paidsocial"},
		{"email", c("newsletter", "email"), "", Email, "newsletter", "email"},
		{"e-mail", c("newsletter", "E-Mail"), "", Email, "newsletter", "E-Mail"},
		{"email as source", c("email", "blast"), "", Email, "email", "blast"},
		{"affiliate", c("partner", "affiliate"), "", Affiliates, "partner", "affiliate"},
		{"display", c("criteo", "display"), "", Display, "criteo", "display"},
		{"banner", c("news-site", "banner"), "", Display, "news-site", "banner"},
		{"cpm from an ad network", c("adnet", "cpm"), "", Display, "adnet", "cpm"},
		{"cpm from google is search", c("google", "cpm"), "", PaidSearch, "google", "cpm"},
		{"social medium", c("mastodon", "social"), "", OrganicSocial, "mastodon", "social"},
		{"social source without medium", c("twitter", ""), "", OrganicSocial, "twitter", ""},
		{"organic medium", c("someengine", "organic"), "", OrganicSearch, "someengine", "organic"},
		{"search source without medium", c("google", ""), "", OrganicSearch, "google", ""},
		{"referral medium", c("partner.io", "referral"), "", Referral, "partner.io", "referral"},
		{"cpc from an unknown network", c("adnet", "cpc"), "", Other, "adnet", "cpc"},
		{"unknown medium", c("newsletter", "push"), "", Other, "newsletter", "push"},
		{"utm campaign only, source from referrer", Campaign{Name: "spring"}, "www.blog.example.org", Other, "blog.example.org", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := channelOf(tt.campaign, tt.referrer)
			if got.Group != tt.want || got.Source != tt.source || got.Medium != tt.medium || got.Campaign != tt.campaign.Name {
				t.Fatalf("channelOf(%+v, %q) = %+v, want %s %s/%s", tt.campaign, tt.referrer, got, tt.want, tt.source, tt.medium)
			}
		})
	}
}
