package cube

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"slices"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata")

// TestMetaGolden: the /meta response of a model using every kind of
// member, encoded, is testdata/meta.golden.json (go test -update rewrites
// it; review the diff).
func TestMetaGolden(t *testing.T) {
	m, err := Load(os.DirFS("testdata"), "meta")
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.MarshalIndent(m.Meta(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	const golden = "testdata/meta.golden.json"
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Meta() encodes as\n%s\nwant (%s)\n%s", got, golden, want)
	}
}

// TestMetaOfShippedModels: every shipped member is in /meta under its
// qualified name, with the types the client reads.
func TestMetaOfShippedModels(t *testing.T) {
	m := Shipped()
	meta := m.Meta()
	if len(meta.Cubes) != len(m.Cubes) {
		t.Fatalf("%d cubes in meta, %d in the model", len(meta.Cubes), len(m.Cubes))
	}
	// events stands alone; the other cubes are joined together.
	components := map[string]int{}
	for _, mc := range meta.Cubes {
		components[mc.Name] = mc.ConnectedComponent
	}
	if c := components; c["events"] == 0 || c["sessions"] == c["events"] ||
		c["page_views"] != c["sessions"] || c["orders"] != c["sessions"] || c["profiles"] != c["sessions"] {
		t.Errorf("connected components %v: want events alone and the others together", c)
	}
	for i, mc := range meta.Cubes {
		c := m.Cubes[i]
		if mc.Name != c.Name || mc.Type != "cube" || mc.Title == "" {
			t.Errorf("cube %d: name %q type %q title %q", i, mc.Name, mc.Type, mc.Title)
		}
		if len(mc.Measures) != len(c.Measures) || len(mc.Dimensions) != len(c.Dimensions) || len(mc.Segments) != len(c.Segments) {
			t.Errorf("cube %s: members differ from the model", mc.Name)
			continue
		}
		for j, x := range mc.Measures {
			if x.Name != c.Name+"."+c.Measures[j].Name || x.Type != "number" || x.AggType != c.Measures[j].Type || x.DrillMembers == nil {
				t.Errorf("measure %+v", x)
			}
		}
		for j, x := range mc.Dimensions {
			d := c.Dimensions[j]
			if x.Name != c.Name+"."+d.Name || x.Type != d.Type || !x.SuggestFilterValues || x.IsVisible == d.PrimaryKey {
				t.Errorf("dimension %+v", x)
			}
		}
		for j, x := range mc.Segments {
			if x.Name != c.Name+"."+c.Segments[j].Name {
				t.Errorf("segment %+v", x)
			}
		}
	}
	sessions := meta.Cubes[slices.IndexFunc(meta.Cubes, func(c MetaCube) bool { return c.Name == "sessions" })]
	i := slices.IndexFunc(sessions.Measures, func(x MetaMeasure) bool { return x.Name == "sessions.conversion_rate" })
	if i < 0 {
		t.Fatal("no sessions.conversion_rate")
	}
	if x := sessions.Measures[i]; x.Title != "Sessions Conversion Rate" || x.ShortTitle != "Conversion Rate" || x.Format != "percent" || x.AggType != "number" {
		t.Errorf("sessions.conversion_rate: %+v", x)
	}
}
