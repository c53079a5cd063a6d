// Command sink.webhook is Eddy's webhook sink: a gRPC plugin that posts
// batches of events as JSON to an HTTP endpoint, each request signed with
// HMAC-SHA256 so that the receiver can check it came from Eddy.
//
// One process serves every installation (one per workspace using it); each
// installation keeps its own endpoint, secret and HTTP transport. A Write
// makes one delivery attempt per request and reports: Eddy owns retries and
// backoff. Delete posts a signed deletion notice the same way.
package main

import "github.com/eddy-cdp/eddy/sdk/eddyplugin"

func main() {
	eddyplugin.Serve(newSink(eddyplugin.Logger()))
}
