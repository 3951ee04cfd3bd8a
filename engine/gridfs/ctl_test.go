package gridfs

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseCtl(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  string
	}{
		{"start", []string{"start"}, ""},
		{"start\n", []string{"start"}, ""},
		{"start\r\n", []string{"start"}, ""},
		{"  wire\tcpu1   fossil1 ", []string{"wire", "cpu1", "fossil1"}, ""},
		{"seed import x '/my disks/a.qcow2'", []string{"seed", "import", "x", "/my disks/a.qcow2"}, ""},
		{"say 'it''s'", []string{"say", "it's"}, ""},
		{"a '' b", []string{"a", "", "b"}, ""},
		{"ab'c d'e", []string{"abc de"}, ""},
		{"", nil, ""},
		{"\n", nil, ""},
		{"up\nup", nil, "one command per write"},
		{"up\n\n", nil, "one command per write"},
		{"a 'b", nil, "unterminated quote"},
		{"a\x00b", nil, "control character 0x00"},
		{"a\x1bb", nil, "control character 0x1b"},
		{"\xff", nil, "not valid UTF-8"},
		{strings.Repeat("a", MaxCtlLine+1), nil, "limit is 4096"},
	} {
		got, err := ParseCtl([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrBadCtl) {
				t.Errorf("ParseCtl(%q) err = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ParseCtl(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestVerbTable(t *testing.T) {
	g := newVerbTable(GridVerbs())
	for _, tc := range []struct {
		words []string
		err   string
	}{
		{[]string{"up"}, ""},
		{[]string{"add", "cpu", "cpu2"}, ""},
		{[]string{"add", "cpu", "cpu2", "9legacy"}, ""},
		{[]string{"add", "cpu"}, "usage: add KIND NAME [SEED]"},
		{[]string{"up", "now"}, "usage: up"},
		{[]string{"seed", "import", "a", "b"}, ""},
		{[]string{"seed"}, "usage: seed import NAME PATH"},
		{[]string{"Up"}, `unknown command "Up"`},
		{nil, "empty command"},
	} {
		err := g.check(tc.words)
		if (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("check(%q) = %v, want %q", tc.words, err, tc.err)
		}
	}
	if u := newVerbTable(NodeVerbs()).usage(); u != "clone NEWNAME\npoweroff\nreset\nrewire TARGET\nstart\nstop\nunwire TARGET\nwire TARGET\n" {
		t.Errorf("node usage:\n%s", u)
	}
}

// FuzzParseCtl: ParseCtl never panics, accepts nothing it should refuse,
// and QuoteWords of what it returns parses back to the same words; the
// verb table's check never panics on its output.
func FuzzParseCtl(f *testing.F) {
	for _, s := range []string{
		"start", "wire cpu1 fossil1\n", "seed import x '/my disks/a.qcow2'",
		"say 'it''s'", "a '' b", "up\nup", "a 'b", "\xff", "move cpu1 120 40\r\n", "\t",
	} {
		f.Add([]byte(s))
	}
	g, n := newVerbTable(GridVerbs()), newVerbTable(NodeVerbs())
	f.Fuzz(func(t *testing.T, b []byte) {
		words, err := ParseCtl(b)
		if err != nil {
			if !errors.Is(err, ErrBadCtl) {
				t.Fatalf("error does not wrap ErrBadCtl: %v", err)
			}
			return
		}
		if len(b) > MaxCtlLine || !utf8.Valid(b) {
			t.Fatalf("accepted %q", b)
		}
		for _, w := range words {
			if strings.ContainsAny(w, "\n\x00") {
				t.Fatalf("word %q from %q holds a control character", w, b)
			}
		}
		q := QuoteWords(words)
		back, err := ParseCtl([]byte(q))
		if len(q) <= MaxCtlLine && (err != nil || !slices.Equal(back, words)) {
			t.Fatalf("round trip %q -> %q -> %q, %v (from %q)", words, q, back, err, b)
		}
		g.check(words)
		n.check(words)
	})
}

// FuzzQuoteWords: any words without control characters survive QuoteWords
// and ParseCtl unchanged.
func FuzzQuoteWords(f *testing.F) {
	f.Add("seed", "/my disks/it's.qcow2")
	f.Add("", "'")
	f.Fuzz(func(t *testing.T, a, b string) {
		words := []string{a, b}
		for _, w := range words {
			if !utf8.ValidString(w) {
				return
			}
			for _, c := range []byte(w) {
				if c < ' ' && c != '\t' || c == 0x7f {
					return
				}
			}
		}
		q := QuoteWords(words)
		if len(q) > MaxCtlLine {
			return
		}
		back, err := ParseCtl([]byte(q))
		if err != nil || !slices.Equal(back, words) {
			t.Fatalf("%q -> %q -> %q, %v", words, q, back, err)
		}
	})
}

// TestHidePasswords: the /identity commands' passwords never reach an
// error's text (the window shows it, the CLI prints it).
func TestHidePasswords(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"set user=glenda authdom=lab password=s3cret-pw cpu1", "set user=glenda authdom=lab password=(hidden) cpu1"},
		{"seed build x '/my cds/9.iso' user=u authdom=d 'password=two words'", "seed build x '/my cds/9.iso' user=u authdom=d password=(hidden)"},
		{"start", "start"},
		{"set 'password=unterminated", "(a command holding a password)"},
	} {
		got := HidePasswords(tc.in)
		if got != tc.want || strings.Contains(got, "s3cret") || strings.Contains(got, "two words") {
			t.Errorf("HidePasswords(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	e := &CtlError{Path: "/identity", Line: HidePasswords("set user=a authdom=b password=s3cret-pw"), Msg: "refused"}
	if strings.Contains(e.Error(), "s3cret") {
		t.Errorf("the error shows the password: %s", e)
	}
}
