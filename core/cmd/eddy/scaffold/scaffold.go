// Package scaffold writes the starting files of a new plugin: its
// manifest, a main.go that builds and runs as it is, a test and a README,
// for each kind and runtime the SDKs support.
package scaffold

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"text/template"
)

//go:embed templates
var templates embed.FS

// Kinds and the runtimes each supports; the first is the default.
var runtimes = map[string][]string{
	"processor": {"wasm", "grpc"},
	"sink":      {"grpc"},
	"source":    {"grpc"},
	"app":       {"wasm"},
}

var namePattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// Plugin describes the plugin to scaffold.
type Plugin struct {
	Kind, Name, Runtime string
}

// ID is the plugin's id, kind.name.
func (p Plugin) ID() string { return p.Kind + "." + p.Name }

// Check reports what is wrong with p, filling in the default runtime.
func (p *Plugin) Check() error {
	rts, ok := runtimes[p.Kind]
	if !ok {
		return fmt.Errorf("kind %q: want processor, sink, source or app", p.Kind)
	}
	if !namePattern.MatchString(p.Name) {
		return fmt.Errorf("name %q: want lower-case letters, digits and _, starting with a letter (at most 63)", p.Name)
	}
	if p.Runtime == "" {
		p.Runtime = rts[0]
	}
	if !slices.Contains(rts, p.Runtime) {
		return fmt.Errorf("runtime %q: a %s can be %v", p.Runtime, p.Kind, rts)
	}
	return nil
}

// Write creates dir (which must not exist yet) with the plugin's files,
// and returns their paths.
func Write(dir string, p Plugin) ([]string, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(dir); err == nil {
		return nil, fmt.Errorf("%s already exists; choose another name or remove it", dir)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	base := "templates/" + p.Kind + "-" + p.Runtime
	entries, err := templates.ReadDir(base)
	if err != nil {
		return nil, fmt.Errorf("no template for a %s %s plugin", p.Runtime, p.Kind)
	}
	files := map[string][]byte{}
	for _, name := range []string{"plugin.yaml.tmpl", "README.md.tmpl"} {
		if files[name], err = render("templates/common/"+name, p); err != nil {
			return nil, err
		}
	}
	for _, e := range entries {
		if files[e.Name()], err = render(base+"/"+e.Name(), p); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var out []string
	for _, name := range slices.Sorted(maps.Keys(files)) {
		path := filepath.Join(dir, trimTmpl(name))
		if err := os.WriteFile(path, files[name], 0o644); err != nil {
			return nil, err
		}
		out = append(out, path)
	}
	return out, nil
}

func render(name string, p Plugin) ([]byte, error) {
	t, err := template.ParseFS(templates, name)
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", name, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, p); err != nil {
		return nil, fmt.Errorf("template %s: %w", name, err)
	}
	return b.Bytes(), nil
}

func trimTmpl(name string) string {
	if ext := filepath.Ext(name); ext == ".tmpl" {
		return name[:len(name)-len(ext)]
	}
	return name
}
