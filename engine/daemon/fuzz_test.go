package daemon

import (
	"strings"
	"testing"

	"gridlord/engine/atomicfile"
	"gridlord/engine/grid"
)

func TestParseImportOptions(t *testing.T) {
	o, err := parseImportOptions([]string{"like=plan9-4e-cpu-min", "kernel=/k", "ready=x y", "setup=cpu:echo a=b", "setup=cpu:ls"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Like != "plan9-4e-cpu-min" || o.Boot == nil || o.Boot.Kernel != "/k" || o.Boot.Ready != "x y" ||
		strings.Join(o.Boot.Setup["cpu"], "|") != "echo a=b|ls" {
		t.Fatalf("%+v %+v", o, o.Boot)
	}
	for _, bad := range [][]string{{"kernel"}, {"frob=1"}, {"setup=nokind"}, {"setup=toaster:ls"}} {
		if _, err := parseImportOptions(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if o, _ := parseImportOptions([]string{"like=x"}); o.Boot != nil {
		t.Error("like= alone made a direct boot record")
	}
}

// FuzzParseImportOptions: seed import options arrive as ctl words from any
// gridfs client.
func FuzzParseImportOptions(f *testing.F) {
	f.Add("like=plan9-4e-cpu-min\x00kernel=/k\x00setup=cpu:echo hi")
	f.Add("ready=(\x00append=a=b")
	f.Add("=\x00setup=:")
	f.Fuzz(func(t *testing.T, s string) {
		o, err := parseImportOptions(strings.Split(s, "\x00"))
		if err == nil && o.Boot != nil {
			o.Boot.validate() // must not panic
		}
	})
}

// FuzzLoadBoot: boot.json is read back from the grid directory, where a
// user may have edited it.
func FuzzLoadBoot(f *testing.F) {
	f.Add([]byte(`{"s":{"kernel":"/k","ready":"x","setup":{"cpu":["ls"]}}}`))
	f.Add([]byte(`{`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		if err := atomicfile.Write(dir+"/"+grid.BootName, b, 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := loadBoot(dir)
		if err != nil {
			if !strings.Contains(err.Error(), grid.BootName) {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, r := range m {
			r.validate()
		}
	})
}

func TestParseSeedBuild(t *testing.T) {
	o, err := ParseSeedBuild(strings.Fields("seed build lab /cd/9legacy.iso user=alice authdom=lab password=wonderland profile=full sysname=helix size=2048"))
	if err != nil {
		t.Fatal(err)
	}
	if o.Name != "lab" || o.From != "/cd/9legacy.iso" || o.Identity.User != "alice" || o.Identity.AuthDom != "lab" ||
		o.Identity.Password != "wonderland" || o.Profile != "full" || o.Sysname != "helix" || o.Size != 2048<<20 {
		t.Fatalf("%+v", o)
	}
	for _, bad := range []string{
		"seed build lab /cd user=alice authdom=lab",                      // no password
		"seed build lab /cd user=alice authdom=lab password=ab",          // too short
		"seed build lab /cd user=alice authdom=lab password=pw12 size=0", // no size
		"seed build lab /cd user=alice authdom=lab password=pw12 frob=1",
		"seed build lab /cd user=al:ice authdom=lab password=pw12",
		"seed import lab /cd",
	} {
		if _, err := ParseSeedBuild(strings.Fields(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		} else if strings.Contains(err.Error(), "pw12") {
			t.Errorf("%q: the error shows the password: %v", bad, err)
		}
	}
}

// FuzzParseSeedBuild: the seed build command arrives as /identity words
// from any gridfs client; whatever it accepts names a seed and a source,
// with an identity that can be typed at a Plan 9 console.
func FuzzParseSeedBuild(f *testing.F) {
	f.Add("seed build lab /cd/9legacy.iso user=alice authdom=lab password=wonderland profile=grid size=1024")
	f.Add("seed build x y password= user= authdom=")
	f.Fuzz(func(t *testing.T, line string) {
		o, err := ParseSeedBuild(strings.Fields(line))
		if err != nil {
			return
		}
		if err := o.Identity.Validate(); err != nil || o.Name == "" || o.From == "" {
			t.Errorf("accepted %+v: %v", o, err)
		}
	})
}
