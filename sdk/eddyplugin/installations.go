package eddyplugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Installations keeps a plugin's state per installation: one plugin
// process serves every workspace that installed it, and Eddy calls Init
// again after a restart or a change. It is safe for concurrent use; the
// zero value is ready.
type Installations[T any] struct {
	mu sync.RWMutex
	m  map[string]T
}

// Put keeps v for the installation id and returns what it replaces.
func (s *Installations[T]) Put(id string, v T) (old T, replaced bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]T{}
	}
	old, replaced = s.m[id]
	s.m[id] = v
	return old, replaced
}

// Get returns the installation's state, or an error naming it if Init
// has not kept any.
func (s *Installations[T]) Get(id string) (T, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.m[id]
	if !ok {
		return v, fmt.Errorf("installation %s is not initialised", id)
	}
	return v, nil
}

// Delete forgets the installation and returns what it held; Close may
// call it for an installation Init never kept.
func (s *Installations[T]) Delete(id string) (T, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[id]
	delete(s.m, id)
	return v, ok
}

// DecodeConfig decodes an installation's configuration into v strictly:
// unknown fields and anything after the JSON object are errors, prefixed
// "config". Eddy checked the configuration against the plugin's schema
// already; this catches a schema and a plugin that disagree.
func DecodeConfig(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("config: unexpected data after the JSON object")
	}
	return nil
}
