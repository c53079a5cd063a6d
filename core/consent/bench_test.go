package consent

import "testing"

func BenchmarkParse(b *testing.B) {
	cases := []struct {
		name    string
		payload []byte
	}{
		{"no_consent", []byte(`{"type":"track","event":"Viewed","anonymousId":"a-1","properties":{"price":12.5,"sku":"x-1"},"context":{"ip":"1.2.3.4","page":{"url":"https://shop.com/p/1"}}}`)},
		{"consent", []byte(`{"type":"track","event":"Viewed","anonymousId":"a-1","properties":{"price":12.5,"sku":"x-1"},"context":{"ip":"1.2.3.4","consent":{"categoryPreferences":{"analytics":true,"marketing":false}}}}`)},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.payload)))
			for b.Loop() {
				if _, _, err := Parse(c.payload, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkApply(b *testing.B) {
	msg := readMessage(b)
	cases := []struct {
		name string
		m    Minimise
	}{
		{"keep", Minimise{IP: IPKeep}},
		{"nothing_matches", Minimise{IP: IPKeep, Hash: []string{"traits.phone"}, Drop: []string{"properties.cvc"}}},
		{"truncate_hash_drop", Minimise{IP: IPTruncate, Hash: []string{"traits.email"}, Drop: []string{"properties.card.number"}}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				if _, _, _, err := c.m.Apply("ws-1", msg, nil, "203.0.113.77"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
