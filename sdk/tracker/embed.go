// Package tracker holds eddy.js, the one-line JavaScript tracker that
// websites load from Eddy (GET /sdk/eddy.js), built from src/ into dist/ by
// `npm run build` (make run and make test build it).
package tracker

import "embed"

//go:embed all:dist
var dist embed.FS

// Script returns the built tracker, or false when it was not built (a
// fresh clone before `make`).
func Script() ([]byte, bool) {
	b, err := dist.ReadFile("dist/eddy.js")
	return b, err == nil
}
