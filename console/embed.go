// Package console holds Eddy's web console, built from src/ into dist/ by
// `npm run build` (make run and make test build it) and served at / by the
// API process.
package console

import (
	"embed"
	"io/fs"
)

//go:embed all:dist
var dist embed.FS

// Files returns the built console (index.html at its root), and false
// when it was not built (a fresh clone before `make`).
func Files() (fs.FS, bool) {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		return nil, false
	}
	if _, err := fs.Stat(sub, "index.html"); err != nil {
		return nil, false
	}
	return sub, true
}
