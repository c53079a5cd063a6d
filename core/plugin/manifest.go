// Package plugin describes Eddy's plugins: their manifests, and the
// validation of a workspace's configuration of a plugin against the JSON
// Schema its manifest declares, before any plugin sees it.
//
// A manifest is a YAML file beside each plugin (plugin.yaml):
//
//	id: sink.webhook            # kind.name: source, processor, sink or app
//	version: 1.2.0              # semantic version
//	runtime: grpc               # grpc (its own process) or wasm (sandboxed in-process)
//	binary: ./sink-webhook      # grpc: the executable; wasm: module: ./app.wasm
//	description: Sends batches of events to an HTTP endpoint.
//	config_schema:              # JSON Schema (2020-12) of its configuration
//	  type: object
//	  required: [url]
//	  properties:
//	    url: {type: string, format: uri}
//	permissions:
//	  events: [track, page]     # event types it receives; ["*"] all, [] none
//	  network: [hooks.example.com, "*.slack.com"]  # hosts it may call ("*": any); none by default
//	  write: [actions]          # what it may produce: events, actions, state
//	purposes: [marketing]       # consent purposes it serves
//	deletion: true              # sinks only: it implements Delete (a person's data is erased at the destination)
//
// Paths are relative to the manifest's folder and may not leave it.
package plugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"go.yaml.in/yaml/v3"
	"golang.org/x/mod/semver"
)

// Kind is what a plugin does.
type Kind string

// The kinds of plugin, the first part of a plugin's id.
const (
	Source    Kind = "source"
	Processor Kind = "processor"
	Sink      Kind = "sink"
	App       Kind = "app"
)

// Runtime is how a plugin runs.
type Runtime string

// The runtimes.
const (
	GRPC Runtime = "grpc"
	WASM Runtime = "wasm"
)

// Permissions are what a plugin asks to do.
type Permissions struct {
	// Events are the event types it receives (track, page, screen,
	// identify, group, alias), or "*" for all.
	Events []string `yaml:"events"`
	// Network are the hosts it may call, "*.example.com" for a domain's
	// subdomains; empty for none.
	Network []string `yaml:"network"`
	// Write are what it may produce: events, actions, state.
	Write []string `yaml:"write"`
}

// Manifest describes a plugin.
type Manifest struct {
	ID          string      `yaml:"id"`
	Version     string      `yaml:"version"`
	Runtime     Runtime     `yaml:"runtime"`
	Binary      string      `yaml:"binary"`
	Module      string      `yaml:"module"`
	Description string      `yaml:"description"`
	Schema      any         `yaml:"config_schema"`
	Permissions Permissions `yaml:"permissions"`
	Purposes    []string    `yaml:"purposes"`
	// Deletion says the plugin, a gRPC sink, implements Delete: Eddy
	// hands it the deletion of every person deleted in the workspace.
	Deletion bool `yaml:"deletion"`

	// Dir is the folder of the manifest file, which Binary and Module are
	// relative to.
	Dir string `yaml:"-"`

	schema *jsonschema.Schema
}

// Kind returns the plugin's kind, from its id.
func (m *Manifest) Kind() Kind {
	k, _, _ := strings.Cut(m.ID, ".")
	return Kind(k)
}

// Artifact returns the path of the plugin's executable (grpc) or module
// (wasm).
func (m *Manifest) Artifact() string {
	p := m.Binary
	if m.Runtime == WASM {
		p = m.Module
	}
	return filepath.Join(m.Dir, filepath.FromSlash(p))
}

var (
	idPattern      = regexp.MustCompile(`^(source|processor|sink|app)\.[a-z][a-z0-9_]{0,62}$`)
	purposePattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
	eventTypes     = []string{"*", "track", "page", "screen", "identify", "group", "alias"}
	writeScopes    = []string{"events", "actions", "state"}
)

// Limits on what a manifest holds.
const (
	MaxManifestBytes = 256 << 10
	maxListLen       = 100
)

// ParseManifest reads a manifest; name (the file's path) and dir (its
// folder) are for messages and paths. Every problem found is reported, each
// naming its field.
func ParseManifest(name, dir string, data []byte) (*Manifest, error) {
	if len(data) > MaxManifestBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, MaxManifestBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	m := &Manifest{Dir: dir}
	if err := dec.Decode(m); err != nil {
		return nil, fmt.Errorf("%s: %s", name, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if errs := m.validate(); len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = name + ": " + e.Error()
		}
		return nil, errors.New(strings.Join(msgs, "\n"))
	}
	return m, nil
}

// FieldError is a problem with one field.
type FieldError struct {
	Field, Message string
}

func (e FieldError) Error() string { return e.Field + ": " + e.Message }

func (m *Manifest) validate() []FieldError {
	var errs []FieldError
	bad := func(field, format string, args ...any) {
		errs = append(errs, FieldError{field, fmt.Sprintf(format, args...)})
	}
	if !idPattern.MatchString(m.ID) {
		bad("id", "%q must be kind.name: kind one of source, processor, sink, app; name lower-case letters, digits and _", m.ID)
	}
	if v := "v" + m.Version; !semver.IsValid(v) || semver.Canonical(v) != v {
		bad("version", "%q must be a semantic version such as 1.2.0 (major.minor.patch)", m.Version)
	}
	switch m.Runtime {
	case GRPC:
		m.checkPath(bad, "binary", m.Binary)
		if m.Module != "" {
			bad("module", "is for wasm plugins; a grpc plugin names its binary")
		}
	case WASM:
		m.checkPath(bad, "module", m.Module)
		if m.Binary != "" {
			bad("binary", "is for grpc plugins; a wasm plugin names its module")
		}
	default:
		bad("runtime", "%q must be grpc or wasm", m.Runtime)
	}
	if len(m.Description) > 1000 {
		bad("description", "must be at most 1000 bytes")
	}
	list := func(field string, vs []string, ok func(string) bool, want string) {
		if len(vs) > maxListLen {
			bad(field, "must list at most %d entries", maxListLen)
			return
		}
		for i, v := range vs {
			if !ok(v) {
				bad(field+"["+strconv.Itoa(i)+"]", "%q: want %s", v, want)
			}
		}
	}
	list("permissions.events", m.Permissions.Events, func(v string) bool { return slices.Contains(eventTypes, v) },
		"one of "+strings.Join(eventTypes, ", "))
	list("permissions.network", m.Permissions.Network, validHostPattern, "a host name, or *.domain for its subdomains")
	list("permissions.write", m.Permissions.Write, func(v string) bool { return slices.Contains(writeScopes, v) },
		"one of "+strings.Join(writeScopes, ", "))
	list("purposes", m.Purposes, purposePattern.MatchString, "a purpose name: lower-case letters, digits and _")
	if m.Deletion {
		switch k := m.Kind(); {
		case k != Sink:
			bad("deletion", "is for sinks, which delete a person's data at their destination; this plugin is of kind %s", k)
		case m.Runtime == WASM:
			bad("deletion", "is for grpc sinks; a wasm sink cannot serve Delete")
		}
	}
	if err := m.compileSchema(); err != nil {
		bad("config_schema", "%v", err)
	}
	return errs
}

// checkPath requires a relative path that stays in the manifest's folder.
func (m *Manifest) checkPath(bad func(string, string, ...any), field, p string) {
	switch {
	case p == "":
		bad(field, "is required: the path of the plugin's %s, relative to the manifest", field)
	case path.IsAbs(p) || filepath.IsAbs(p) || strings.Contains(p, `\`):
		bad(field, "%q must be a relative path with / separators", p)
	case !filepath.IsLocal(filepath.FromSlash(p)):
		bad(field, "%q must stay inside the plugin's folder", p)
	}
}

func validHostPattern(h string) bool {
	if h == "*" {
		// Any host: for plugins whose destination is configured per
		// installation (a webhook's URL). The console shows it as such.
		return true
	}
	h = strings.TrimPrefix(h, "*.")
	if h == "" || len(h) > 253 || strings.HasPrefix(h, ".") || strings.HasSuffix(h, ".") || strings.Contains(h, "..") {
		return false
	}
	for _, c := range h {
		if !(c == '.' || c == '-' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z') {
			return false
		}
	}
	return true
}

// compileSchema compiles the configuration schema (an empty object schema
// when there is none). References may only point inside the schema: no
// file or network is read.
func (m *Manifest) compileSchema() error {
	doc := m.Schema
	if doc == nil {
		doc = map[string]any{"type": "object", "additionalProperties": false}
	}
	// Through JSON: YAML maps decode as map[string]any, but the compiler
	// wants JSON's number types.
	b, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("not a JSON value: %w", err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return err
	}
	obj, ok := inst.(map[string]any)
	if !ok || obj["type"] != "object" {
		return errors.New(`must be a schema of "type: object"`)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(jsonschema.SchemeURLLoader{}) // no $ref outside the document
	const loc = "eddy-plugin:///config_schema.json"
	if err := c.AddResource(loc, inst); err != nil {
		return err
	}
	sch, err := c.Compile(loc)
	if err != nil {
		return errors.New(strings.ReplaceAll(err.Error(), loc, "config_schema"))
	}
	m.schema = sch
	return nil
}

// CheckConfig validates a workspace's configuration of the plugin against
// its schema, and returns one error per problem, each naming its field
// ("config.url"), none when it is valid. A message states the rule broken,
// never the value (nor its length or size): configurations hold secrets.
func (m *Manifest) CheckConfig(config map[string]any) []FieldError {
	if config == nil {
		config = map[string]any{}
	}
	b, err := json.Marshal(config)
	if err != nil {
		return []FieldError{{"config", "is not a JSON object: " + err.Error()}}
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return []FieldError{{"config", err.Error()}}
	}
	err = m.schema.Validate(inst)
	var ve *jsonschema.ValidationError
	if err == nil || !errors.As(err, &ve) {
		if err != nil {
			return []FieldError{{"config", err.Error()}}
		}
		return nil
	}
	var out []FieldError
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		// contains's causes are why each item failed to match: noise next
		// to the rule itself.
		if _, contains := e.ErrorKind.(*kind.Contains); len(e.Causes) > 0 && !contains {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		field := fieldPath(e.InstanceLocation)
		switch k := e.ErrorKind.(type) {
		case *kind.Required:
			for _, p := range k.Missing {
				out = append(out, FieldError{field + "." + p, "is required"})
			}
		case *kind.AdditionalProperties:
			for _, p := range k.Properties {
				out = append(out, FieldError{field + "." + p, "is not a setting of " + m.ID})
			}
		default:
			out = append(out, FieldError{field, ruleMessage(e.ErrorKind)})
		}
	}
	walk(ve)
	slices.SortStableFunc(out, func(a, b FieldError) int { return strings.Compare(a.Field, b.Field) })
	return out
}

// fieldPath writes an instance location as config.a.b[2].
func fieldPath(loc []string) string {
	var b strings.Builder
	b.WriteString("config")
	for _, t := range loc {
		if _, err := strconv.Atoi(t); err == nil {
			b.WriteString("[" + t + "]")
			continue
		}
		b.WriteString("." + t)
	}
	return b.String()
}

// ruleMessage states the rule a schema keyword sets, for a configuration
// value that breaks it. The library's own messages repeat what was sent
// ("minimum: got 5000, want 1000", "'x' does not match pattern ..."), so
// every kind is worded here; one this package does not know yet names its
// keyword only.
func ruleMessage(k jsonschema.ErrorKind) string {
	switch k := k.(type) {
	case *kind.Type:
		return "must be of type " + strings.Join(k.Want, " or ")
	case *kind.Enum:
		return "must be one of " + joinValues(k.Want)
	case *kind.Const:
		return "must be " + displayValue(k.Want)
	case *kind.Format:
		return "is not a valid " + k.Want
	case *kind.Pattern:
		return "does not match the pattern " + k.Want
	case *kind.MinLength:
		return fmt.Sprintf("must be at least %d characters long", k.Want)
	case *kind.MaxLength:
		return fmt.Sprintf("must be at most %d characters long", k.Want)
	case *kind.Minimum:
		return "must be at least " + ratString(k.Want)
	case *kind.Maximum:
		return "must be at most " + ratString(k.Want)
	case *kind.ExclusiveMinimum:
		return "must be greater than " + ratString(k.Want)
	case *kind.ExclusiveMaximum:
		return "must be less than " + ratString(k.Want)
	case *kind.MultipleOf:
		return "must be a multiple of " + ratString(k.Want)
	case *kind.MinItems:
		return fmt.Sprintf("must have at least %d items", k.Want)
	case *kind.MaxItems:
		return fmt.Sprintf("must have at most %d items", k.Want)
	case *kind.MinProperties:
		return fmt.Sprintf("must have at least %d settings", k.Want)
	case *kind.MaxProperties:
		return fmt.Sprintf("must have at most %d settings", k.Want)
	case *kind.UniqueItems:
		return fmt.Sprintf("must not repeat an item (items %d and %d are equal)", k.Duplicates[0], k.Duplicates[1])
	case *kind.Contains:
		return "must have an item that matches the schema of contains"
	case *kind.MinContains:
		return fmt.Sprintf("must have at least %d items that match the schema of contains", k.Want)
	case *kind.MaxContains:
		return fmt.Sprintf("must have at most %d items that match the schema of contains", k.Want)
	case *kind.AdditionalItems:
		return fmt.Sprintf("must have no items past the %d the schema describes", k.Count)
	case *kind.Dependency:
		return fmt.Sprintf("needs %s when %s is set", strings.Join(k.Missing, ", "), k.Prop)
	case *kind.DependentRequired:
		return fmt.Sprintf("needs %s when %s is set", strings.Join(k.Missing, ", "), k.Prop)
	case *kind.PropertyNames:
		return "has a setting whose name the schema's propertyNames does not allow"
	case *kind.ContentEncoding:
		return "must be " + k.Want + " encoded"
	case *kind.ContentMediaType:
		return "must be of media type " + k.Want
	case *kind.ContentSchema:
		return "does not match the schema of its content (contentSchema)"
	case *kind.OneOf:
		if len(k.Subschemas) == 0 {
			return "must match one of the schemas of oneOf, and matches none"
		}
		return fmt.Sprintf("must match exactly one of the schemas of oneOf, and matches %d and %d", k.Subschemas[0], k.Subschemas[1])
	case *kind.AnyOf:
		return "must match one of the schemas of anyOf"
	case *kind.AllOf:
		return "must match every schema of allOf"
	case *kind.Not:
		return "must not match the schema of not"
	case *kind.FalseSchema:
		return "is not allowed"
	case *kind.InvalidJsonValue:
		return "is not a JSON value"
	}
	if path := k.KeywordPath(); len(path) > 0 {
		return "does not satisfy the schema's " + strings.Join(path, "/")
	}
	return "does not satisfy the schema"
}

// ratString writes a schema's number as the schema would: 1000, 0.5.
func ratString(r *big.Rat) string {
	if r == nil {
		return "?"
	}
	if r.IsInt() {
		return r.Num().String()
	}
	f, _ := r.Float64()
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// displayValue writes a value of the schema (an enum's or const's) as
// JSON.
func displayValue(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func joinValues(vs []any) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = displayValue(v)
	}
	return strings.Join(s, ", ")
}
