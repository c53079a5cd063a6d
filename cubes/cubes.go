// Package cubes holds the semantic-layer models shipped with Eddy (Cube's
// YAML schema, one file per cube over Eddy's own tables), embedded so that
// the binary carries them. core/cube reads them (cube.Shipped); a
// workspace's own models are merged on top.
package cubes

import (
	"embed"
	"io/fs"
)

//go:embed *.yml
var files embed.FS

// FS returns the shipped model files, at its root.
func FS() fs.FS { return files }
