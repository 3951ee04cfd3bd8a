package mirror

import (
	"encoding/json"
	"testing"
)

// FuzzParseState feeds position files to parseState: it must not panic,
// and what it accepts must encode and parse back the same (saveState's
// encoding; TestStateRoundTrip covers the file itself).
func FuzzParseState(f *testing.F) {
	f.Add([]byte(`{"addr":"127.0.0.1:17034","store":"0badf00d","pos":{"arena":3,"offset":4096},"blocks":10,"bytes":8000,"skipped":1}`))
	f.Add([]byte(`{"addr":"[::1]:1","store":"x","pos":{"arena":0,"offset":64}}`))
	f.Add([]byte(`{"addr":"h:1","store":"x","pos":{"arena":-1,"offset":1e30}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseState(b)
		if err != nil {
			return
		}
		b2, err := json.Marshal(s) // as saveState writes it
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseState(b2)
		if err != nil || got != s {
			t.Fatalf("round trip of %+v: %+v, %v", s, got, err)
		}
	})
}

// FuzzParseList feeds mirror lists to parseList: no panic, and an
// accepted list encodes and parses back the same.
func FuzzParseList(f *testing.F) {
	f.Add(encodeList([]string{"127.0.0.1:17034", "[::1]:1"}))
	f.Add([]byte(`{"version":1,"mirrors":[]}`))
	f.Add([]byte(`{"version":1,"mirrors":[{"addr":"x:1"},{"addr":"x:1"}]}`))
	f.Add([]byte(`{"version":2}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := parseList(b)
		if err != nil {
			return
		}
		got, err := parseList(encodeList(l))
		if err != nil || !slicesEqual(got, l) {
			t.Fatalf("round trip of %q: %q, %v", l, got, err)
		}
	})
}
