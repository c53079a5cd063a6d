// Command geoip is Eddy's processor.geoip plugin: it looks up each event's
// client address in a MaxMind-format City database (GeoLite2-City,
// GeoIP2-City or a compatible file) and writes the place it finds into the
// message's context.location, without overwriting what the client set. It
// can then truncate or remove the address, so that only the place is kept.
//
// The plugin runs as its own process under Eddy's plugin host (see
// sdk/eddyplugin). The files are:
//
//   - processor.go: installations (one database reader each) and Process;
//   - enrich.go: the change to one event's payload;
//   - location.go: the database record of a network, decoded once and
//     cached as ready-made JSON;
//   - jsonobj.go: a scanner over a JSON object's members, so that the
//     bytes the processor does not change are copied as they came.
package main

import "github.com/eddy-cdp/eddy/sdk/eddyplugin"

func main() {
	eddyplugin.Serve(newProcessor(eddyplugin.Logger()))
}
