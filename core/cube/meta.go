package cube

// MetaResponse is the body of the Cube REST API's GET /cubejs-api/v1/meta,
// in the shape @cubejs-client/core's Meta reads (Cube's
// CubeToMetaTransformer): every cube with its members, names qualified
// ("sessions.count") and titles humanised as Cube does
// (Titles, which result annotations use too).
type MetaResponse struct {
	Cubes []MetaCube `json:"cubes"`
}

// MetaCube is one cube of the /meta response.
type MetaCube struct {
	Name        string `json:"name"`
	Title       string `json:"title"`
	Description string `json:"description,omitempty"`
	Type        string `json:"type"` // always "cube" (Eddy has no views)
	IsVisible   bool   `json:"isVisible"`
	Public      bool   `json:"public"`
	// ConnectedComponent numbers the groups of cubes linked by joins
	// (from 1); a query can only combine cubes of one component.
	ConnectedComponent int             `json:"connectedComponent"`
	Measures           []MetaMeasure   `json:"measures"`
	Dimensions         []MetaDimension `json:"dimensions"`
	Segments           []MetaSegment   `json:"segments"`
	Hierarchies        []any           `json:"hierarchies"`
	Folders            []any           `json:"folders"`
	NestedFolders      []any           `json:"nestedFolders"`
}

// MetaMeasure is a measure of the /meta response. Type is "number" for
// every measure (the type of its values); AggType is its aggregation as
// declared ("count", "count_distinct", "sum", "avg", "min", "max",
// "number").
type MetaMeasure struct {
	Name                string              `json:"name"`
	Title               string              `json:"title"`
	ShortTitle          string              `json:"shortTitle"`
	Description         string              `json:"description,omitempty"`
	Type                string              `json:"type"`
	AggType             string              `json:"aggType"`
	Format              string              `json:"format,omitempty"`
	Cumulative          bool                `json:"cumulative"`
	CumulativeTotal     bool                `json:"cumulativeTotal"`
	DrillMembers        []string            `json:"drillMembers"`
	DrillMembersGrouped DrillMembersGrouped `json:"drillMembersGrouped"`
	IsVisible           bool                `json:"isVisible"`
	Public              bool                `json:"public"`
}

// MetaDimension is a dimension of the /meta response. Primary keys are
// listed but not visible, as in Cube.
type MetaDimension struct {
	Name                string `json:"name"`
	Title               string `json:"title"`
	ShortTitle          string `json:"shortTitle"`
	Description         string `json:"description,omitempty"`
	Type                string `json:"type"`
	SuggestFilterValues bool   `json:"suggestFilterValues"`
	PrimaryKey          bool   `json:"primaryKey"`
	IsVisible           bool   `json:"isVisible"`
	Public              bool   `json:"public"`
}

// MetaSegment is a segment of the /meta response.
type MetaSegment struct {
	Name        string `json:"name"`
	Title       string `json:"title"`
	ShortTitle  string `json:"shortTitle"`
	Description string `json:"description,omitempty"`
	IsVisible   bool   `json:"isVisible"`
	Public      bool   `json:"public"`
}

// Meta returns the model as the /meta response, cubes in model order and
// members in declaration order.
func (m *Model) Meta() MetaResponse {
	components := m.components()
	out := MetaResponse{Cubes: make([]MetaCube, 0, len(m.Cubes))}
	for _, c := range m.Cubes {
		title := c.Title
		if title == "" {
			title = titleize(c.Name)
		}
		mc := MetaCube{
			Name: c.Name, Title: title, Description: c.Description, Type: "cube",
			IsVisible: true, Public: true, ConnectedComponent: components[c.Name],
			Measures:    make([]MetaMeasure, 0, len(c.Measures)),
			Dimensions:  make([]MetaDimension, 0, len(c.Dimensions)),
			Segments:    make([]MetaSegment, 0, len(c.Segments)),
			Hierarchies: []any{}, Folders: []any{}, NestedFolders: []any{},
		}
		for _, x := range c.Measures {
			full, short := Titles(c, x.Name, x.Title)
			mc.Measures = append(mc.Measures, MetaMeasure{
				Name: c.Name + "." + x.Name, Title: full, ShortTitle: short,
				Description: x.description, Type: "number", AggType: x.Type, Format: x.Format,
				DrillMembers:        []string{},
				DrillMembersGrouped: DrillMembersGrouped{Measures: []string{}, Dimensions: []string{}},
				IsVisible:           true, Public: true,
			})
		}
		for _, x := range c.Dimensions {
			full, short := Titles(c, x.Name, x.Title)
			mc.Dimensions = append(mc.Dimensions, MetaDimension{
				Name: c.Name + "." + x.Name, Title: full, ShortTitle: short,
				Description: x.description, Type: x.Type, SuggestFilterValues: true,
				PrimaryKey: x.PrimaryKey, IsVisible: !x.PrimaryKey, Public: !x.PrimaryKey,
			})
		}
		for _, x := range c.Segments {
			full, short := Titles(c, x.Name, x.title)
			mc.Segments = append(mc.Segments, MetaSegment{
				Name: c.Name + "." + x.Name, Title: full, ShortTitle: short,
				Description: x.description, IsVisible: true, Public: true,
			})
		}
		out.Cubes = append(out.Cubes, mc)
	}
	return out
}

// components numbers the groups of cubes linked by joins (in either
// direction), from 1, in model order.
func (m *Model) components() map[string]int {
	adj := map[string][]string{}
	for _, c := range m.Cubes {
		for _, j := range c.Joins {
			adj[c.Name] = append(adj[c.Name], j.Name)
			adj[j.Name] = append(adj[j.Name], c.Name)
		}
	}
	out := map[string]int{}
	n := 0
	for _, c := range m.Cubes {
		if out[c.Name] != 0 {
			continue
		}
		n++
		queue := []string{c.Name}
		out[c.Name] = n
		for len(queue) > 0 {
			x := queue[0]
			queue = queue[1:]
			for _, y := range adj[x] {
				if out[y] == 0 {
					out[y] = n
					queue = append(queue, y)
				}
			}
		}
	}
	return out
}
