package consent

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// Policy is a workspace's consent policy: its purposes, what processing
// needs, what plugins need besides their manifest, and the minimisation
// applied before storage.
type Policy struct {
	// Purposes are the consent purposes the workspace uses.
	Purposes []string `json:"purposes" yaml:"purposes"`
	// Required are the purposes every processing needs: an event whose
	// visitor did not grant them all is not stored, sessionized or given to
	// any plugin.
	Required []string `json:"required" yaml:"required"`
	// AllowNecessaryOnly is the workspace's explicit choice to process, for
	// necessary purposes only, events whose visitor granted no more than
	// "necessary" (or sent no consent). No plugin receives them unless its
	// purposes are granted.
	AllowNecessaryOnly bool `json:"allow_necessary_only" yaml:"allow_necessary_only"`
	// Plugins maps a plugin id to the purposes it needs in this workspace,
	// on top of those its manifest declares (they can only add).
	Plugins map[string][]string `json:"plugins" yaml:"plugins"`
	// Minimise is the data minimisation applied before storage.
	Minimise Minimise `json:"minimise" yaml:"minimise"`
}

// Limits of a policy.
const (
	MaxPurposes      = 20
	MaxPluginEntries = 50
	MaxPaths         = 100
)

// DefaultPolicy returns the policy of a workspace that set none: processing
// needs "analytics" (default deny), no minimisation.
func DefaultPolicy() Policy {
	return Policy{
		Purposes: []string{Necessary, "analytics", "marketing", "personalization"},
		Required: []string{"analytics"},
		Plugins:  map[string][]string{},
		Minimise: Minimise{IP: IPKeep, Hash: []string{}, Drop: []string{}},
	}
}

// WithDefaults returns p with every field left unset (nil lists, empty IP
// mode) taken from [DefaultPolicy]: what a partial declaration means.
func (p Policy) WithDefaults() Policy {
	d := DefaultPolicy()
	if p.Purposes == nil {
		p.Purposes = d.Purposes
	}
	if p.Required == nil {
		p.Required = d.Required
	}
	if p.Plugins == nil {
		p.Plugins = d.Plugins
	}
	if p.Minimise.IP == "" {
		p.Minimise.IP = d.Minimise.IP
	}
	if p.Minimise.Hash == nil {
		p.Minimise.Hash = d.Minimise.Hash
	}
	if p.Minimise.Drop == nil {
		p.Minimise.Drop = d.Minimise.Drop
	}
	return p
}

// Equal reports whether two policies are the same, fields left unset
// counting as their defaults (see WithDefaults) and nil lists as empty.
func (p Policy) Equal(o Policy) bool {
	p, o = p.WithDefaults(), o.WithDefaults()
	if !slices.Equal(p.Purposes, o.Purposes) || !slices.Equal(p.Required, o.Required) ||
		p.AllowNecessaryOnly != o.AllowNecessaryOnly || len(p.Plugins) != len(o.Plugins) ||
		p.Minimise.IP != o.Minimise.IP || !slices.Equal(p.Minimise.Hash, o.Minimise.Hash) ||
		!slices.Equal(p.Minimise.Drop, o.Minimise.Drop) {
		return false
	}
	for id, ps := range p.Plugins {
		ops, ok := o.Plugins[id]
		if !ok || !slices.Equal(ps, ops) {
			return false
		}
	}
	return true
}

// FieldError is one problem with a policy; Field is its path, such as
// "privacy.required[0]".
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e FieldError) Error() string { return e.Field + ": " + e.Message }

// pluginIDPattern is a plugin id, as core/plugin's manifests have them.
var pluginIDPattern = regexp.MustCompile(`^(source|processor|sink|app)\.[a-z][a-z0-9_]{0,62}$`)

// Validate checks the policy and returns every problem, each naming its
// field under "privacy".
func (p Policy) Validate() []FieldError {
	var errs []FieldError
	bad := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Field: "privacy." + field, Message: fmt.Sprintf(format, args...)})
	}
	known := map[string]bool{Necessary: true}
	switch {
	case len(p.Purposes) == 0:
		bad("purposes", "must list at least one purpose")
	case len(p.Purposes) > MaxPurposes:
		bad("purposes", "must list at most %d purposes, got %d", MaxPurposes, len(p.Purposes))
	}
	for i, purpose := range p.Purposes {
		f := fmt.Sprintf("purposes[%d]", i)
		switch {
		case !ValidPurpose(purpose):
			bad(f, "%s", purposeSyntax(purpose))
		case slices.Index(p.Purposes, purpose) < i:
			bad(f, "purpose %q is listed twice", purpose)
		}
		known[purpose] = true
	}
	checkList := func(field string, list []string) {
		for i, purpose := range list {
			f := fmt.Sprintf("%s[%d]", field, i)
			switch {
			case !ValidPurpose(purpose):
				bad(f, "%s", purposeSyntax(purpose))
			case !known[purpose]:
				bad(f, "purpose %q is not one of the workspace's purposes (%s)", purpose, knownList(p.Purposes))
			case slices.Index(list, purpose) < i:
				bad(f, "purpose %q is listed twice", purpose)
			}
		}
	}
	checkList("required", p.Required)
	if len(p.Plugins) > MaxPluginEntries {
		bad("plugins", "must have at most %d entries, got %d", MaxPluginEntries, len(p.Plugins))
	}
	for _, id := range slices.Sorted(maps.Keys(p.Plugins)) {
		if !pluginIDPattern.MatchString(id) {
			bad("plugins", "%q is not a plugin id such as sink.webhook", clip(id))
			continue
		}
		checkList("plugins."+id, p.Plugins[id])
	}
	errs = append(errs, p.Minimise.validate()...)
	return errs
}

func purposeSyntax(purpose string) string {
	return fmt.Sprintf("%q is not a purpose name: lower-case letters, digits and _, starting with a letter, at most 63 characters", clip(purpose))
}

func knownList(purposes []string) string {
	out := Necessary
	for _, p := range purposes {
		if p != Necessary {
			out += ", " + p
		}
	}
	return out
}

// clip shortens a configured name quoted in an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// Reasons an event or a plugin delivery is refused: stable codes, used as
// metric labels.
const (
	// ReasonNoConsent: the event carries no consent at all.
	ReasonNoConsent = "no_consent"
	// ReasonWithdrawn: the visitor set a needed purpose to false.
	ReasonWithdrawn = "withdrawn"
	// ReasonMissingPurpose prefixes a needed purpose the visitor's consent
	// does not mention: "missing_purpose:marketing".
	ReasonMissingPurpose = "missing_purpose"
)

// Explain says in words why the gate refused an event, from the reason
// code of Process (or "suppressed", "unminimisable").
func Explain(reason string) string {
	purpose, missing := strings.CutPrefix(reason, ReasonMissingPurpose+":")
	switch {
	case reason == ReasonNoConsent:
		return "no consent: the event carries no context.consent.categoryPreferences, and the workspace's policy requires consent"
	case reason == ReasonWithdrawn:
		return "consent withdrawn: the visitor refused a purpose the workspace's policy requires"
	case missing:
		return "consent missing for " + purpose + ", which the workspace's policy requires"
	case reason == "suppressed":
		return "suppressed: the person was deleted, and has not consented again since"
	case reason == "unminimisable":
		return "the event could not be minimised as the workspace's privacy settings require"
	}
	return "refused by the consent policy (" + reason + ")"
}

// Process decides whether an event with these preferences may be processed
// at all: when every required purpose is granted, or else when the
// workspace allows necessary-only processing. reason says why not.
func (p Policy) Process(prefs Preferences, present bool) (ok bool, reason string) {
	reason = refusal(prefs, present, p.Required)
	if reason == "" || p.AllowNecessaryOnly {
		return true, ""
	}
	return false, reason
}

// Plugin decides whether a plugin may receive an event with these
// preferences: every purpose of its manifest, of the workspace's extra
// requirements for it and of the workspace's required purposes must be
// granted (necessary-only processing never reaches a plugin).
func (p Policy) Plugin(prefs Preferences, present bool, pluginID string, manifestPurposes []string) (ok bool, reason string) {
	for _, needed := range [][]string{p.Required, manifestPurposes, p.Plugins[pluginID]} {
		if reason := refusal(prefs, present, needed); reason != "" {
			return false, reason
		}
	}
	return true, ""
}

// refusal returns why prefs do not grant every purpose of needed, or "".
func refusal(prefs Preferences, present bool, needed []string) string {
	for _, purpose := range needed {
		if prefs.Granted(purpose) {
			continue
		}
		switch granted, said := prefs[purpose]; {
		case !present:
			return ReasonNoConsent
		case said && !granted:
			return ReasonWithdrawn
		default:
			return ReasonMissingPurpose + ":" + purpose
		}
	}
	return ""
}
