package eddyplugin

import (
	"strings"
	"sync"
	"testing"
)

func TestInstallations(t *testing.T) {
	var s Installations[int]
	if _, err := s.Get("i1"); err == nil || !strings.Contains(err.Error(), "installation i1 is not initialised") {
		t.Fatalf("Get before Put: %v", err)
	}
	if _, replaced := s.Put("i1", 1); replaced {
		t.Fatal("the first Put replaced something")
	}
	if old, replaced := s.Put("i1", 2); !replaced || old != 1 {
		t.Fatalf("Put again = %d, %v", old, replaced)
	}
	if v, err := s.Get("i1"); err != nil || v != 2 {
		t.Fatalf("Get = %d, %v", v, err)
	}
	if v, ok := s.Delete("i1"); !ok || v != 2 {
		t.Fatalf("Delete = %d, %v", v, ok)
	}
	if _, ok := s.Delete("never"); ok {
		t.Fatal("Delete of an unknown installation found one")
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.Put("c", i)
			_, _ = s.Get("c")
		}()
	}
	wg.Wait()
}

func TestDecodeConfig(t *testing.T) {
	var c struct {
		URL string `json:"url"`
	}
	for _, tc := range []struct {
		raw, want string
	}{
		{`{"url":"x"}`, ""},
		{`{"url":"x","extra":1}`, `config: json: unknown field "extra"`},
		{`{"url":"x"} {}`, "config: unexpected data after the JSON object"},
		{`[1]`, "config: json: cannot unmarshal array"},
	} {
		err := DecodeConfig([]byte(tc.raw), &c)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("DecodeConfig(%s) = %v, want %q", tc.raw, err, tc.want)
		}
	}
}
