package session

import "testing"

func TestParseUserAgent(t *testing.T) {
	tests := []struct {
		name, ua string
		want     Device
	}{
		{"empty", "", Device{}},
		{"Chrome on Windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36", Device{Desktop, "Windows", "Chrome"}},
		{"Edge on Windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80", Device{Desktop, "Windows", "Edge"}},
		{"Safari on macOS", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15", Device{Desktop, "macOS", "Safari"}},
		{"Firefox on Linux", "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0", Device{Desktop, "Linux", "Firefox"}},
		{"Chrome on ChromeOS", "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36", Device{Desktop, "ChromeOS", "Chrome"}},
		{"Opera on Windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36 OPR/109.0.0.0", Device{Desktop, "Windows", "Opera"}},
		{"Safari on iPhone", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1", Device{Mobile, "iOS", "Safari"}},
		{"Chrome on iPhone", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1", Device{Mobile, "iOS", "Chrome"}},
		{"Firefox on iPhone", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/125.0 Mobile/15E148 Safari/605.1.15", Device{Mobile, "iOS", "Firefox"}},
		{"Safari on iPad", "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1", Device{Tablet, "iOS", "Safari"}},
		{"Chrome on an Android phone", "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36", Device{Mobile, "Android", "Chrome"}},
		{"Samsung Internet on a Galaxy tablet", "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Safari/537.36", Device{Tablet, "Android", "Samsung Internet"}},
		{"Facebook app on iPhone", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/458.0.0.36.108;FBBV/580000000]", Device{Mobile, "iOS", "Facebook"}},
		{"Instagram app on Android", "Mozilla/5.0 (Linux; Android 13; SM-G991B Build/TP1A.220624.014; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/124.0.6367.82 Mobile Safari/537.36 Instagram 328.0.0.42.90 Android", Device{Mobile, "Android", "Instagram"}},
		{"Internet Explorer 11", "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko", Device{Desktop, "Windows", "Internet Explorer"}},
		{"an unknown client", "curl/8.5.0", Device{Desktop, "", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseUserAgent(tt.ua); got != tt.want {
				t.Fatalf("parseUserAgent = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDeviceOfPrefersTheEventsOwnFacts(t *testing.T) {
	chromeWindows := "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
	tests := []struct {
		name string
		e    Event
		want Device
	}{
		{"user agent only", Event{UserAgent: chromeWindows}, Device{Desktop, "Windows", "Chrome"}},
		{"Segment iOS SDK", Event{Device: Device{Type: "ios"}}, Device{Mobile, "iOS", ""}},
		{"Segment Android SDK with os name", Event{Device: Device{Type: "android", OS: "Android"}}, Device{Mobile, "Android", ""}},
		{"explicit tablet over the user agent", Event{UserAgent: chromeWindows, Device: Device{Type: "Tablet"}}, Device{Tablet, "Windows", "Chrome"}},
		{"explicit os and browser", Event{UserAgent: chromeWindows, Device: Device{OS: "Windows 11", Browser: "Chrome Beta"}}, Device{Desktop, "Windows 11", "Chrome Beta"}},
		{"unknown explicit type is ignored", Event{UserAgent: chromeWindows, Device: Device{Type: "fridge"}}, Device{Desktop, "Windows", "Chrome"}},
		{"nothing", Event{}, Device{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := deviceOf(&tt.e); got != tt.want {
				t.Fatalf("deviceOf = %+v, want %+v", got, tt.want)
			}
		})
	}
}
