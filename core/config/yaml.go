package config

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// document is a parsed file: the decoded configuration plus, for every field
// path, the node it came from, so later checks can name the line.
type document struct {
	path     string
	cfg      *Config
	nodes    map[string]*yaml.Node
	defaults map[string]bool // field paths whose value used a ${VAR:-default}
}

func (d *document) errorf(field, format string, args ...any) error {
	line := 0
	// Fall back to the nearest parent that appears in the file.
	for p := field; p != ""; p = parentPath(p) {
		if n, ok := d.nodes[p]; ok {
			line = n.Line
			break
		}
	}
	msg := fmt.Sprintf(format, args...)
	if line == 0 {
		return fmt.Errorf("%s: %s: %s", d.path, field, msg)
	}
	return fmt.Errorf("%s:%d: %s: %s", d.path, line, field, msg)
}

func (d *document) usedDefault(field string) bool { return d.defaults[field] }

func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i <= 0 {
		return ""
	}
	return p[:i]
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)

func decode(path string, data []byte, lookup LookupEnv) (*document, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s", withFile(path, err.Error()))
	}
	d := &document{path: path, cfg: &Config{}, nodes: map[string]*yaml.Node{}, defaults: map[string]bool{}}
	if len(root.Content) == 0 {
		return nil, fmt.Errorf("%s: the file is empty", path)
	}
	top := root.Content[0]
	var errs []error
	d.walk(top, reflect.TypeOf(Config{}), "", lookup, &errs)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := top.Decode(d.cfg); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			for _, e := range te.Errors {
				errs = append(errs, errors.New(d.withField(e)))
			}
			return nil, errors.Join(errs...)
		}
		return nil, fmt.Errorf("%s", withFile(path, err.Error()))
	}
	return d, nil
}

// withField turns a decoder message "line 3: msg" into "file:3: field: msg",
// finding the field from the line.
func (d *document) withField(msg string) string {
	m := yamlLine.FindStringSubmatch(msg)
	if m == nil {
		return withFile(d.path, msg)
	}
	line, _ := strconv.Atoi(m[1])
	field := ""
	for p, n := range d.nodes {
		if n.Line == line && len(p) > len(field) {
			field = p
		}
	}
	if field == "" {
		return withFile(d.path, msg)
	}
	return fmt.Sprintf("%s:%d: %s: %s", d.path, line, field, msg[len(m[0]):])
}

// withFile turns "yaml: line 3: msg" into "file:3: msg".
func withFile(path, msg string) string {
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("%s:%s: %s", path, m[1], msg[len(m[0]):])
	}
	return path + ": " + strings.TrimPrefix(msg, "yaml: ")
}

// walk records each field's node, rejects fields the type does not have and
// expands environment references in scalar values.
func (d *document) walk(n *yaml.Node, t reflect.Type, path string, lookup LookupEnv, errs *[]error) {
	if path != "" {
		d.nodes[path] = n
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	at := func(n *yaml.Node, field, format string, args ...any) {
		*errs = append(*errs, fmt.Errorf("%s:%d: %s: %s", d.path, n.Line, field, fmt.Sprintf(format, args...)))
	}
	switch n.Kind {
	case yaml.MappingNode:
		if t.Kind() == reflect.Map || t.Kind() == reflect.Interface {
			// Free-form values (a plugin's configuration): record and
			// expand them all.
			elem := t
			if t.Kind() == reflect.Map {
				elem = t.Elem()
			}
			for i := 0; i+1 < len(n.Content); i += 2 {
				d.walk(n.Content[i+1], elem, path+"."+n.Content[i].Value, lookup, errs)
			}
			return
		}
		if t.Kind() != reflect.Struct {
			return // node.Decode reports the type mismatch with its line
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i], n.Content[i+1]
			child := key.Value
			if path != "" {
				child = path + "." + key.Value
			}
			ft, ok := fields[key.Value]
			if !ok {
				at(key, child, "unknown field (known: %s)", strings.Join(sortedKeys(fields), ", "))
				continue
			}
			d.walk(val, ft, child, lookup, errs)
		}
	case yaml.SequenceNode:
		elem := t
		switch t.Kind() {
		case reflect.Slice:
			elem = t.Elem()
		case reflect.Interface:
		default:
			return
		}
		for i, item := range n.Content {
			d.walk(item, elem, fmt.Sprintf("%s[%d]", path, i), lookup, errs)
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "$") {
			return
		}
		v, usedDefault, err := expand(n.Value, lookup)
		if err != nil {
			at(n, path, "%v", err)
			return
		}
		n.Value = v
		if n.Style == 0 {
			n.Tag = "" // let the decoder resolve the expanded text (e.g. a number)
		}
		if usedDefault {
			d.defaults[path] = true
		}
	}
}

func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

func sortedKeys(m map[string]reflect.Type) []string {
	return slices.Sorted(maps.Keys(m))
}

var varName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// expand replaces ${VAR} and ${VAR:-default} in s; "$$" is a literal "$".
// An unset (or empty, with :-) variable without a default is an error.
func expand(s string, lookup LookupEnv) (out string, usedDefault bool, err error) {
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c != '$' {
			b.WriteByte(c)
			i++
			continue
		}
		if i+1 < len(s) && s[i+1] == '$' {
			b.WriteByte('$')
			i += 2
			continue
		}
		if i+1 >= len(s) || s[i+1] != '{' {
			return "", false, fmt.Errorf("a lone '$' at offset %d: write $$ for a literal dollar or ${VAR} for a variable", i)
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", false, fmt.Errorf("unterminated ${ at offset %d", i)
		}
		expr := s[i+2 : i+end]
		name, def, hasDef := strings.Cut(expr, ":-")
		if !varName.MatchString(name) {
			return "", false, fmt.Errorf("%s is not a valid variable name", strconv.Quote(name))
		}
		v, ok := lookup(name)
		switch {
		case ok && (v != "" || !hasDef):
			b.WriteString(v)
		case hasDef:
			b.WriteString(def)
			usedDefault = true
		default:
			return "", false, fmt.Errorf("environment variable %s is not set (write ${%s:-default} to give a default)", name, name)
		}
		i += end + 1
	}
	return b.String(), usedDefault, nil
}
