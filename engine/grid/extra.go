package grid

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// Extra holds the JSON members of an object that this version of Gridlord
// does not know, exactly as they were read, so that a grid.json written by
// a newer Gridlord survives a load and save by this one. Every object in
// grid.json embeds it.
type Extra struct {
	unknown map[string]json.RawMessage
}

// UnknownFields returns the names of the preserved unknown members, sorted.
func (e *Extra) UnknownFields() []string {
	var names []string
	for k := range e.unknown {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// clone returns a deep copy of e.
func (e Extra) clone() Extra {
	if e.unknown == nil {
		return Extra{}
	}
	m := make(map[string]json.RawMessage, len(e.unknown))
	for k, v := range e.unknown {
		m[k] = slices.Clone(v)
	}
	return Extra{unknown: m}
}

// jsonNames returns the member names encoding/json uses for the fields of
// struct type t (following embedded structs without tags).
func jsonNames(t reflect.Type) []string {
	var names []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			names = append(names, jsonNames(f.Type)...)
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		names = append(names, name)
	}
	return names
}

// decodeObject unmarshals data into v (a pointer to a struct whose type has
// no UnmarshalJSON of its own) and keeps the members v does not know in
// extra.
func decodeObject(data []byte, v any, extra *Extra) error {
	if err := json.Unmarshal(data, v); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		return err
	}
	// encoding/json matches member names case-insensitively; so do we.
	known := jsonNames(reflect.TypeOf(v).Elem())
	extra.unknown = nil
	for k, raw := range all {
		if slices.ContainsFunc(known, func(n string) bool { return strings.EqualFold(n, k) }) {
			continue
		}
		if extra.unknown == nil {
			extra.unknown = map[string]json.RawMessage{}
		}
		extra.unknown[k] = raw
	}
	return nil
}

// encodeObject marshals v (a struct value whose type has no MarshalJSON)
// and appends the preserved unknown members, sorted by name, after the
// known ones. A preserved member whose name a known field now uses is
// dropped: the known field wins.
func encodeObject(v any, extra Extra) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if len(extra.unknown) == 0 {
		return b, nil
	}
	known := jsonNames(reflect.TypeOf(v))
	var buf bytes.Buffer
	buf.Write(b[:len(b)-1]) // drop the closing brace
	first := len(b) == 2    // "{}"
	for _, k := range extra.UnknownFields() {
		if slices.ContainsFunc(known, func(n string) bool { return strings.EqualFold(n, k) }) {
			continue
		}
		if !first {
			buf.WriteByte(',')
		}
		first = false
		kb, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		buf.Write(kb)
		buf.WriteByte(':')
		if !json.Valid(extra.unknown[k]) {
			return nil, fmt.Errorf("preserved member %q is not valid JSON", k)
		}
		buf.Write(extra.unknown[k])
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}
