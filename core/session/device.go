package session

import "strings"

// DeviceType is the kind of device a session ran on.
type DeviceType string

// The device types; an empty DeviceType means unknown.
const (
	Desktop DeviceType = "desktop"
	Mobile  DeviceType = "mobile"
	Tablet  DeviceType = "tablet"
)

// Device is what a session knows of the device.
type Device struct {
	Type    DeviceType
	OS      string // "Windows", "macOS", "iOS", "Android", "Linux", "ChromeOS"...
	Browser string // "Chrome", "Safari", "Firefox", "Edge", "Opera"...
}

// deviceOf resolves the device of an event: the user agent parsed
// minimally, overridden by the device facts the event states itself.
func deviceOf(e *Event) Device {
	d := parseUserAgent(e.UserAgent)
	switch strings.ToLower(string(e.Device.Type)) {
	case "desktop", "computer", "pc":
		d.Type = Desktop
	case "mobile", "phone", "smartphone":
		d.Type = Mobile
	case "tablet":
		d.Type = Tablet
	case "ios": // Segment's mobile SDKs name the platform here
		d.Type, d.OS = Mobile, "iOS"
	case "android":
		d.Type, d.OS = Mobile, "Android"
	}
	if e.Device.OS != "" {
		d.OS = intern(e.Device.OS)
	}
	if e.Device.Browser != "" {
		d.Browser = intern(e.Device.Browser)
	}
	return d
}

// parseUserAgent reads the device type, the OS and the browser from a
// User-Agent header by a few substring tests: enough to group sessions,
// not a full parser (that comes later as a plugin). Known limits: iPads on
// iPadOS 13+ send a Mac user agent and count as desktop; bots count as the
// device they imitate; brands the tests below do not know give "".
func parseUserAgent(ua string) Device {
	if ua == "" {
		return Device{}
	}
	has := func(s string) bool { return strings.Contains(ua, s) }
	d := Device{Type: Desktop}
	switch {
	case has("Windows Phone"):
		d.Type, d.OS = Mobile, "Windows Phone"
	case has("iPad"):
		d.Type, d.OS = Tablet, "iOS"
	case has("iPhone") || has("iPod"):
		d.Type, d.OS = Mobile, "iOS"
	case has("Android"):
		// Android tablets leave "Mobile" out of the user agent.
		d.Type, d.OS = Tablet, "Android"
		if has("Mobile") {
			d.Type = Mobile
		}
	case has("CrOS"):
		d.OS = "ChromeOS"
	case has("Windows"):
		d.OS = "Windows"
	case has("Macintosh") || has("Mac OS X"):
		d.OS = "macOS"
	case has("Linux"):
		d.OS = "Linux"
	}
	if d.Type == Desktop && (has("Mobi") || has("Opera Mini")) {
		d.Type = Mobile
	}
	// Order matters: Edge, Opera and Samsung also say Chrome and Safari,
	// Chrome also says Safari.
	switch {
	case has("Edg/") || has("EdgA/") || has("EdgiOS/") || has("Edge/"):
		d.Browser = "Edge"
	case has("OPR/") || has("Opera"):
		d.Browser = "Opera"
	case has("SamsungBrowser/"):
		d.Browser = "Samsung Internet"
	case has("FBAN/") || has("FBAV/"):
		d.Browser = "Facebook"
	case has("Instagram"):
		d.Browser = "Instagram"
	case has("Firefox/") || has("FxiOS/"):
		d.Browser = "Firefox"
	case has("CriOS/") || has("Chrome/"):
		d.Browser = "Chrome"
	case has("Safari/"):
		d.Browser = "Safari"
	case has("MSIE ") || has("Trident/"):
		d.Browser = "Internet Explorer"
	}
	return d
}
