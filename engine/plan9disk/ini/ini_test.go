package ini

import (
	"bytes"
	"testing"
)

// installer is the plan9.ini the 4e installer wrote (plan9-disk-layout.md).
const installer = `bootfile=sdC0!9fat!9pcf
bootargs=local!#S/sdC0/fossil
bootdisk=local!#S/sdC0/fossil
venti=#S/sdC0/arenas
*nobiosload=1
*nomp=1
baud=9600
console=0
dmamode=yes
installmode=text
partition=new
mouseport=ps2
monitor=xga
vgasize=1024x768x16
`

const menu = "# boot menu\r\n" +
	"[menu]\r\n" +
	"menuitem=cpu, CPU server\r\n" +
	"menuitem=term, Terminal\r\n" +
	"menudefault=cpu, 5\r\n" +
	"\r\n" +
	"[common]\r\n" +
	"console=0 b115200\r\n" +
	"\r\n" +
	"[cpu]\r\n" +
	"bootfile=sdC0!9fat!9pccpuf\r\n" +
	"# keep this comment\r\n" +
	"\r\n" +
	"[term]\r\n" +
	"bootfile=sdC0!9fat!9pcf"

func mustParse(t *testing.T, s string) *File {
	t.Helper()
	f, err := Parse([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(f.Bytes()); got != s {
		t.Fatalf("round trip changed the text:\n%q\nwant\n%q", got, s)
	}
	return f
}

func TestGetSetDeleteInstaller(t *testing.T) {
	f := mustParse(t, installer)
	if v, ok := f.Get("venti"); !ok || v != "#S/sdC0/arenas" {
		t.Fatalf("venti = %q, %v", v, ok)
	}
	if v, _ := f.Get("*nomp"); v != "1" {
		t.Fatalf("*nomp = %q", v)
	}
	if err := f.Set("venti", "tcp!10.0.2.20!17034"); err != nil {
		t.Fatal(err)
	}
	if err := f.Set("bootfile", "sdC0!9fat!9pccpuf"); err != nil {
		t.Fatal(err)
	}
	if err := f.Set("nobootprompt", "local!#S/sdC0/fossil"); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"installmode", "mouseport", "monitor", "vgasize"} {
		if !f.Delete(k) {
			t.Fatalf("delete %s: not found", k)
		}
	}
	if f.Delete("nosuchkey") {
		t.Fatal("deleted a missing key")
	}
	want := `bootfile=sdC0!9fat!9pccpuf
bootargs=local!#S/sdC0/fossil
bootdisk=local!#S/sdC0/fossil
venti=tcp!10.0.2.20!17034
*nobiosload=1
*nomp=1
baud=9600
console=0
dmamode=yes
partition=new
nobootprompt=local!#S/sdC0/fossil
`
	if got := string(f.Bytes()); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestSectionsKeepLayout(t *testing.T) {
	f := mustParse(t, menu)
	if got := f.Sections(); len(got) != 4 || got[0] != "menu" || got[3] != "term" {
		t.Fatalf("sections %q", got)
	}
	if v, ok := f.GetIn("cpu", "bootfile"); !ok || v != "sdC0!9fat!9pccpuf" {
		t.Fatalf("cpu bootfile = %q %v", v, ok)
	}
	if _, ok := f.Get("bootfile"); ok {
		t.Fatal("top part has no bootfile")
	}
	f.SetIn("cpu", "nobootprompt", "local!#S/sdC0/fossil")
	f.SetIn("term", "user", "glenda")
	f.Set("sysname", "cpu1")
	f.SetIn("new", "k", "v")
	want := "# boot menu\r\n" +
		"sysname=cpu1\r\n" +
		"[menu]\r\n" +
		"menuitem=cpu, CPU server\r\n" +
		"menuitem=term, Terminal\r\n" +
		"menudefault=cpu, 5\r\n" +
		"\r\n" +
		"[common]\r\n" +
		"console=0 b115200\r\n" +
		"\r\n" +
		"[cpu]\r\n" +
		"bootfile=sdC0!9fat!9pccpuf\r\n" +
		"nobootprompt=local!#S/sdC0/fossil\r\n" +
		"# keep this comment\r\n" +
		"\r\n" +
		"[term]\r\n" +
		"bootfile=sdC0!9fat!9pcf\r\n" +
		"user=glenda\r\n" +
		"[new]\r\n" +
		"k=v\r\n"
	if got := string(f.Bytes()); got != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
}

func TestDuplicatesCollapse(t *testing.T) {
	f := mustParse(t, "a=1\nb=2\nA=3\n")
	if v, _ := f.Get("A"); v != "1" {
		t.Fatalf("case-insensitive get = %q", v)
	}
	f.Set("a", "9")
	if got := string(f.Bytes()); got != "a=9\nb=2\n" {
		t.Fatalf("got %q", got)
	}
}

func TestRejects(t *testing.T) {
	f := mustParse(t, "")
	for _, k := range []string{"", " a", "a=b", "a\nb", "[x"} {
		if f.Set(k, "v") == nil {
			t.Errorf("key %q accepted", k)
		}
	}
	if f.Set("k", "two\nlines") == nil {
		t.Error("value with newline accepted")
	}
	if _, err := Parse([]byte("a=b\x00")); err == nil {
		t.Error("NUL accepted")
	}
	if _, err := Parse(bytes.Repeat([]byte("a"), MaxSize+1)); err == nil {
		t.Error("oversized input accepted")
	}
}

// FuzzParse checks that parsing never panics, round-trips exactly, and that
// a Set is readable back and leaves a parseable file.
func FuzzParse(f *testing.F) {
	f.Add([]byte(installer))
	f.Add([]byte(menu))
	f.Add([]byte("a=b\r\nc\n[x]\n=y\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		if !bytes.Equal(p.Bytes(), b) {
			t.Fatalf("round trip changed %q to %q", b, p.Bytes())
		}
		for _, sec := range append([]string{""}, p.Sections()...) {
			if err := p.SetIn(sec, "gridlordkey", "v1"); err != nil {
				t.Fatal(err)
			}
			if v, ok := p.GetIn(sec, "gridlordkey"); !ok || v != "v1" {
				t.Fatalf("section %q: set then get = %q, %v\n%q", sec, v, ok, p.Bytes())
			}
		}
		q, err := Parse(p.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := q.Get("gridlordkey"); !ok || v != "v1" {
			t.Fatalf("reparsed get = %q %v\n%q", v, ok, p.Bytes())
		}
	})
}
