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
