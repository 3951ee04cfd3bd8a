package images

import (
	"strings"
	"testing"
)

func TestBuiltin(t *testing.T) {
	c := Builtin()
	want := []string{"9legacy-grid-seed", "plan9-4e-cpu-auth-fossil-venti", "plan9-4e-cpu-min", "9front-amd64"}
	if got := strings.Join(c.Names(), " "); got != strings.Join(want, " ") {
		t.Fatalf("built-in seeds %q, want %q", got, want)
	}
	// Facts from plan9-grid-roles.md: F boots 9legacy 9pccpuf (and so can a
	// cpu), Cmin boots the 4e 9pccpu, both on rtl8139 + IDE, 386.
	f, _ := c.Lookup("plan9-4e-cpu-auth-fossil-venti")
	if f.Family != Family9legacy || f.Kernel("fossil+auth") != "9pccpuf" || f.Kernel("cpu") != "9pccpuf" ||
		f.LocalRoot != "local!#S/sdC0/fossil" || f.LocalSysname != "helix" || f.NIC != "rtl8139" ||
		f.DiskBus != "ide" || f.Arch != Arch386 || f.AuthID != "bootes" || f.AuthDom != "grid" {
		t.Errorf("golden fossil seed does not match plan9-grid-roles.md: %+v", f)
	}
	m, _ := c.Lookup("plan9-4e-cpu-min")
	if m.Family != Family4e || m.Kernel("cpu") != "9pccpu" || m.CanPlay("fossil") || m.Size != 16<<20 || m.Format != FormatRaw {
		t.Errorf("minimal cpu seed does not match plan9-grid-roles.md 3.3: %+v", m)
	}
	n, _ := c.Lookup("9front-amd64")
	if n.Family.RoleByKernel() || n.CanPlay("fossil") || n.Kernel("cpu") != "9pc64" || n.Arch != ArchAMD64 {
		t.Errorf("9front seed: %+v", n)
	}
	// The shipped seed (its file is checked in images/seeds): the
	// default passwords are listed, so people can see and change them.
	sh, _ := c.Lookup("9legacy-grid-seed")
	if sh.Shipped == "" || sh.Password("bootes", "grid") != "password" || sh.Password("bootes", "other") != "" || sh.Password("nobody", "grid") != "" {
		t.Errorf("shipped seed: %+v", sh)
	}
	// Honesty: no seed claims a checksum or URL nobody verified.
	for _, s := range c.Seeds {
		if s.SHA256 == "" && !s.IsUnverified("sha256") {
			t.Errorf("%s: no checksum and not marked unverified", s.Name)
		}
		if s.URL == "" && !s.IsUnverified("url") {
			t.Errorf("%s: no url and not marked unverified", s.Name)
		}
	}
	// Builtin returns copies: editing one does not change the next.
	c.Seeds[0].Name = "changed"
	if Builtin().Seeds[0].Name == "changed" {
		t.Error("Builtin shares state between calls")
	}
}

func TestParseCatalogErrors(t *testing.T) {
	good := `{"name":"x","family":"4e","arch":"386","format":"raw","roles":["cpu"],"nic":"rtl8139","diskBus":"ide","kernels":{"cpu":"9pccpu"},"unverified":["sha256"]}`
	for _, tc := range []struct{ in, want string }{
		{`{"version":1,"seeds":[` + good + `]}`, ""},
		{`{"version":2,"seeds":[]}`, "catalog version 2"},
		{`{"version":1,"seeds":[` + good + `,` + good + `]}`, `seed name "x" used twice`},
		{`{"version":1,"seedz":[]}`, `unknown field "seedz"`},
		{`{"version":1,"seeds":[` + strings.Replace(good, `"4e"`, `"5e"`, 1) + `]}`, `family "5e"`},
		{`{"version":1,"seeds":[` + strings.Replace(good, `"cpu":"9pccpu"`, `"cpu":""`, 1) + `]}`, "role cpu has no valid kernel"},
		{`{"version":1,"seeds":[` + strings.Replace(good, `["cpu"]`, `["cpu","fossil"]`, 1) + `]}`, "role fossil has no valid kernel"},
		{`{"version":1,"seeds":[` + strings.Replace(good, `,"unverified":["sha256"]`, ``, 1) + `]}`, "no sha256"},
		{`{"version":1,"seeds":[` + strings.Replace(good, `"family":"4e"`, `"family":"9front"`, 1) + `]}`, ""},
		{`{"version":1,"seeds":[` + strings.Replace(good, `"family":"4e","arch":"386","format":"raw","roles":["cpu"]`, `"family":"9front","arch":"386","format":"raw","roles":["fossil"]`, 1) + `]}`, "9front has no fossil"},
		{`{"version":1`, "unexpected EOF"},
	} {
		_, err := ParseCatalog("test.json", []byte(tc.in))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: unexpected error %v", tc.in, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "test.json")):
			t.Errorf("%s: error %v, want one starting test.json and containing %q", tc.in, err, tc.want)
		}
	}
}

func TestLocal(t *testing.T) {
	c := Builtin()
	like, _ := c.Lookup("plan9-4e-cpu-auth-fossil-venti")
	s, err := Local("my-fossil", "/tmp/f.qcow2", 1<<30, []byte("QFI\xfb\x00\x00\x00\x03"), "", like)
	if err != nil {
		t.Fatal(err)
	}
	if s.Format != FormatQcow2 || s.Path != "/tmp/f.qcow2" || s.Size != 1<<30 || s.Kernel("fossil") != "9pccpuf" || s.Vac != "" {
		t.Errorf("Local: %+v", s)
	}
	s.Kernels["fossil"] = "changed"
	if like.Kernels["fossil"] != "9pccpuf" {
		t.Error("Local shares the template's kernel map")
	}
	r, err := Local("my-cpu", "/tmp/c.img", 16<<20, []byte{0xeb, 0x3c}, strings.Repeat("ab", 32), like)
	if err != nil || r.Format != FormatRaw || r.SHA256 != strings.Repeat("ab", 32) {
		t.Errorf("raw Local: %+v %v", r, err)
	}
	if _, err := Local("Bad Name", "/x", 1, nil, "", like); err == nil || !strings.Contains(err.Error(), "name") {
		t.Errorf("bad name accepted: %v", err)
	}
	if _, err := Local("x", "/x", 1, nil, "", Seed{}); err == nil {
		t.Error("Local without template succeeded")
	}
}

func FuzzParseCatalog(f *testing.F) {
	f.Add(catalogJSON)
	f.Add([]byte(`{"version":1,"seeds":[]}`))
	f.Add([]byte(`{"version":1,"seeds":[{"name":"x"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCatalog("fuzz.json", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.json") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, s := range c.Seeds {
			if err := s.Validate(); err != nil {
				t.Fatalf("accepted an invalid seed: %v", err)
			}
		}
	})
}
