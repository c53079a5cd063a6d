package main

import (
	"fmt"
	"strconv"
	"sync"

	"github.com/oschwald/maxminddb-golang/v2"
)

// The keys of context.location, in the order they are written.
const (
	keyCountry = iota
	keyCountryCode
	keyRegion
	keyRegionCode
	keyCity
	keyLatitude
	keyLongitude
	numKeys
)

var locationKeys = [numKeys]string{"country", "country_code", "region", "region_code", "city", "latitude", "longitude"}

// cityRecord is the part of a GeoIP2-City record the processor uses.
type cityRecord struct {
	City struct {
		Names map[string]string `maxminddb:"names"`
	} `maxminddb:"city"`
	Country struct {
		ISOCode string            `maxminddb:"iso_code"`
		Names   map[string]string `maxminddb:"names"`
	} `maxminddb:"country"`
	Subdivisions []struct {
		ISOCode string            `maxminddb:"iso_code"`
		Names   map[string]string `maxminddb:"names"`
	} `maxminddb:"subdivisions"`
	Location struct {
		Latitude  *float64 `maxminddb:"latitude"`
		Longitude *float64 `maxminddb:"longitude"`
	} `maxminddb:"location"`
}

// place is a database record as the members of context.location: each
// entry is a ready `"key":value` fragment, or empty when the record has no
// such value.
type place struct {
	members [numKeys][]byte
	empty   bool
}

func newPlace(rec *cityRecord, languages []string) *place {
	var p place
	str := func(k int, v string) {
		if v != "" {
			p.members[k] = appendString(append(appendString(nil, locationKeys[k]), ':'), v)
		}
	}
	num := func(k int, v *float64) {
		if v != nil {
			p.members[k] = strconv.AppendFloat(append(appendString(nil, locationKeys[k]), ':'), *v, 'f', -1, 64)
		}
	}
	str(keyCountry, name(rec.Country.Names, languages))
	str(keyCountryCode, rec.Country.ISOCode)
	if len(rec.Subdivisions) > 0 {
		str(keyRegion, name(rec.Subdivisions[0].Names, languages))
		str(keyRegionCode, rec.Subdivisions[0].ISOCode)
	}
	str(keyCity, name(rec.City.Names, languages))
	num(keyLatitude, rec.Location.Latitude)
	num(keyLongitude, rec.Location.Longitude)
	p.empty = true
	for _, m := range p.members {
		if m != nil {
			p.empty = false
		}
	}
	return &p
}

// name is the first of the languages names has.
func name(names map[string]string, languages []string) string {
	for _, l := range languages {
		if n := names[l]; n != "" {
			return n
		}
	}
	return ""
}

// maxCachedPlaces bounds a placeCache; a GeoLite2-City file has a few
// hundred thousand distinct records, and traffic concentrates on few.
const maxCachedPlaces = 1 << 16

// placeCache keeps decoded records by their offset in one database, which
// identifies a record (many networks share one). When full it starts over,
// which is simpler than an LRU and costs one decode per record again.
type placeCache struct {
	mu     sync.RWMutex
	places map[uintptr]*place
}

// lookup returns the place of a found result, decoding it on first use.
func (c *placeCache) lookup(res maxminddb.Result, languages []string) (*place, error) {
	off := res.Offset()
	c.mu.RLock()
	p, ok := c.places[off]
	c.mu.RUnlock()
	if ok {
		return p, nil
	}
	var rec cityRecord
	if err := res.Decode(&rec); err != nil {
		return nil, fmt.Errorf("decode record at offset %d: %w", off, err)
	}
	p = newPlace(&rec, languages)
	c.mu.Lock()
	if c.places == nil || len(c.places) >= maxCachedPlaces {
		c.places = make(map[uintptr]*place, 1024)
	}
	c.places[off] = p
	c.mu.Unlock()
	return p, nil
}
