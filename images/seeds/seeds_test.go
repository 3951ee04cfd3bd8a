package seeds

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gridlord/engine/plan9disk"
	"gridlord/engine/plan9disk/nvram"
	"gridlord/engine/qcow2"
	"gridlord/images"
)

// TestShippedSeedMatchesCatalog checks every fact the catalog states about
// each shipped image against the image itself: checksum, format, virtual
// size, the kernels of its roles in 9fat, the sysname and root in
// plan9.ini, the nvram identity (and that the host owner's key is the one
// of the listed default password), the partitions a fossil+venti needs.
func TestShippedSeedMatchesCatalog(t *testing.T) {
	cat := images.Builtin()
	shipped := 0
	for _, s := range cat.Seeds {
		if s.Shipped == "" {
			continue
		}
		shipped++
		t.Run(s.Name, func(t *testing.T) {
			r, size, err := Open(s.Shipped)
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			if _, err := io.Copy(h, io.NewSectionReader(r, 0, size)); err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(h.Sum(nil)); got != s.SHA256 {
				t.Fatalf("SHA-256 %s, catalog %s", got, s.SHA256)
			}
			path, err := Extract(t.TempDir(), s.Shipped, s.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			if st, err := os.Stat(path); err != nil || st.Size() != size || st.Mode().Perm() != 0o444 {
				t.Fatalf("extracted %s: %v %v", path, st, err)
			}
			if again, err := Extract(filepath.Dir(path), s.Shipped, s.SHA256); err != nil || again != path {
				t.Fatalf("second extract: %s %v", again, err)
			}
			im, err := qcow2.OpenReadOnly(path)
			if err != nil {
				t.Fatal(err)
			}
			defer im.Close()
			if string(s.Format) != "qcow2" || im.Size() != s.Size {
				t.Fatalf("format %s, virtual size %d; catalog %s %d", "qcow2", im.Size(), s.Format, s.Size)
			}
			p9, err := plan9disk.Open(im)
			if err != nil {
				t.Fatal(err)
			}
			for _, part := range []string{"9fat", "nvram", "fossil", "arenas", "isect"} {
				if _, ok := p9.Table.Find(part); !ok {
					t.Errorf("no %s partition", part)
				}
			}
			fs, err := p9.FAT()
			if err != nil {
				t.Fatal(err)
			}
			for role, k := range s.Kernels {
				if st, err := fs.Stat(k); err != nil || st.Size < 1<<20 {
					t.Errorf("role %s: kernel %s in 9fat: %+v %v", role, k, st, err)
				}
			}
			ini, err := p9.ReadPlan9Ini()
			if err != nil {
				t.Fatal(err)
			}
			if v, _ := ini.Get("sysname"); v != s.LocalSysname {
				t.Errorf("plan9.ini sysname=%s, catalog %s", v, s.LocalSysname)
			}
			if v, _ := ini.Get("nobootprompt"); v != s.LocalRoot {
				t.Errorf("plan9.ini nobootprompt=%s, catalog root %s", v, s.LocalRoot)
			}
			if v, _ := ini.Get("venti"); v != s.LocalVenti {
				t.Errorf("plan9.ini venti=%s, catalog %s", v, s.LocalVenti)
			}
			if v, _ := ini.Get("bootfile"); !strings.HasSuffix(v, "!"+s.Kernels["fossil+auth"]) {
				t.Errorf("plan9.ini bootfile=%s, catalog fossil+auth kernel %s", v, s.Kernels["fossil+auth"])
			}
			rec, _, err := p9.ReadNvram()
			if err != nil {
				t.Fatal(err)
			}
			if rec.AuthID != s.AuthID || rec.AuthDom != s.AuthDom {
				t.Errorf("nvram %s@%s, catalog %s@%s", rec.AuthID, rec.AuthDom, s.AuthID, s.AuthDom)
			}
			if key := nvramKey(t, s.Password(s.AuthID, s.AuthDom)); key != rec.MachKey {
				t.Errorf("nvram machine key %x is not the key of the listed password of %s", rec.MachKey, s.AuthID)
			}
		})
	}
	if shipped == 0 {
		t.Fatal("no catalog seed ships with Gridlord")
	}
}

func TestExtractRefusesWrongChecksum(t *testing.T) {
	dir := t.TempDir()
	if _, err := Extract(dir, Names()[0], strings.Repeat("0", 64)); err == nil || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("wrong checksum: %v", err)
	}
	if _, err := Extract(dir, "nosuch.qcow2", ""); err == nil || !strings.Contains(err.Error(), "ships") {
		t.Fatalf("unknown name: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("refused extracts left %v", ents)
	}
}

func nvramKey(t *testing.T, password string) [nvram.DESKeyLen]byte {
	t.Helper()
	if password == "" {
		t.Fatal("the catalog lists no password for the host owner")
	}
	return nvram.PassToDESKey(password)
}
