package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// buildCityDB writes a GeoIP2-City layout database from a fixture in
// testdata (a list of {network, record}) into a temporary folder, and
// returns its path.
func buildCityDB(t testing.TB, fixture string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", fixture))
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	var nets []struct {
		Network string         `json:"network"`
		Record  map[string]any `json:"record"`
	}
	if err := json.Unmarshal(data, &nets); err != nil {
		t.Fatalf("fixture %s: %v", fixture, err)
	}
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType: "GeoIP2-City",
		Languages:    []string{"de", "en", "fr"},
		RecordSize:   28,
	})
	if err != nil {
		t.Fatalf("new tree: %v", err)
	}
	for _, n := range nets {
		_, network, err := net.ParseCIDR(n.Network)
		if err != nil {
			t.Fatalf("fixture %s: network %q: %v", fixture, n.Network, err)
		}
		if err := tree.Insert(network, toMMDB(n.Record)); err != nil {
			t.Fatalf("insert %s: %v", n.Network, err)
		}
	}
	path := filepath.Join(t.TempDir(), strings.TrimSuffix(fixture, ".json")+".mmdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatalf("write database: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// toMMDB converts decoded JSON into the database's types as GeoIP2 files
// hold them: coordinates as doubles, other numbers as unsigned integers.
func toMMDB(v any) mmdbtype.DataType {
	switch v := v.(type) {
	case map[string]any:
		m := mmdbtype.Map{}
		for k, e := range v {
			if f, ok := e.(float64); ok && k != "latitude" && k != "longitude" {
				m[mmdbtype.String(k)] = mmdbtype.Uint16(f)
				continue
			}
			m[mmdbtype.String(k)] = toMMDB(e)
		}
		return m
	case []any:
		s := make(mmdbtype.Slice, len(v))
		for i, e := range v {
			s[i] = toMMDB(e)
		}
		return s
	case string:
		return mmdbtype.String(v)
	case float64:
		return mmdbtype.Float64(v)
	case bool:
		return mmdbtype.Bool(v)
	}
	panic(fmt.Sprintf("fixture value of type %T", v))
}
