package seedbuild

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"gridlord/engine/plan9disk"
	"gridlord/engine/plan9disk/nvram"
)

func TestWriteBootDisk(t *testing.T) {
	m := minimalDist()
	mbrCode := bytes.Repeat([]byte{0xAB}, 446)
	pbs := append(bytes.Repeat([]byte{0xEE}, 0x3E), bytes.Repeat([]byte{0xCD}, 400)...)
	kernel := bytes.Repeat([]byte("kernel"), 200000)
	m["386/mbr"] = &fstest.MapFile{Data: mbrCode}
	m["386/pbslba"] = &fstest.MapFile{Data: pbs}
	m["386/9load"] = &fstest.MapFile{Data: bytes.Repeat([]byte("9load"), 60000)}
	m["386/9pccpuf"] = &fstest.MapFile{Data: kernel}
	d, err := Check(m, "cd")
	if err != nil {
		t.Fatal(err)
	}
	ini := InstallerIni(d.Kernel, "installer", "192.168.127.254", "192.168.127.254")
	rec := &nvram.Record{AuthID: "bootes", AuthDom: "grid"}
	if err := rec.SetPassword("password"); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "boot.img")
	if err := d.WriteBootDisk(p, BootDisk{Ini: ini, Nvram: rec}); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteBootDisk(p, BootDisk{Ini: ini}); err == nil {
		t.Error("an existing file was overwritten")
	}
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) != 32<<20 || !bytes.Equal(raw[:446], mbrCode) || raw[510] != 0x55 || raw[511] != 0xAA {
		t.Fatalf("MBR: size %d, code or signature wrong", len(raw))
	}
	e := raw[446:462]
	if e[0] != 0x80 || e[4] != 0x39 || binary.LittleEndian.Uint32(e[8:]) != 63 || binary.LittleEndian.Uint32(e[12:]) != 32<<11-63 {
		t.Errorf("partition entry % x", e)
	}
	pb := raw[63*512 : 64*512]
	if !bytes.Equal(pb[0x3E:0x3E+400], pbs[0x3E:]) || !bytes.Equal(pb[:3], []byte{0xEB, 0x3C, 0x90}) || pb[510] != 0x55 {
		t.Error("the 9fat boot sector lacks pbslba's code")
	}
	fatSecs := int64(binary.LittleEndian.Uint16(pb[22:]))
	if vol := binary.LittleEndian.Uint32(pb[39:]); int64(vol) != 63+2+2*fatSecs {
		t.Errorf("volume ID %d, want the root directory's sector %d", vol, 63+2+2*fatSecs)
	}

	im, closeImg, err := plan9disk.OpenImage(p, false)
	if err != nil {
		t.Fatal(err)
	}
	defer closeImg()
	if _, ok := im.Table.Find("nvram"); !ok {
		t.Error("no nvram partition")
	}
	got, _, err := im.ReadNvram()
	if err != nil || got.AuthID != "bootes" || got.AuthDom != "grid" || got.MachKey != rec.MachKey {
		t.Errorf("nvram %+v, %v", got, err)
	}
	pi, err := im.ReadPlan9Ini()
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"bootfile": "sdC0!9fat!9pccpuf", "nobootprompt": "tcp", "fs": "192.168.127.254", "console": "0", "*nomp": "1"} {
		if got, _ := pi.Get(k); got != v {
			t.Errorf("plan9.ini %s=%q, want %q", k, got, v)
		}
	}
	fsys, err := im.FAT()
	if err != nil {
		t.Fatal(err)
	}
	if b, err := fsys.ReadFile("9pccpuf"); err != nil || !bytes.Equal(b, kernel) {
		t.Errorf("kernel in the 9fat: %d bytes, %v", len(b), err)
	}
	st, err := fsys.Stat("9load")
	if err != nil || !strings.EqualFold(st.ShortName, "9LOAD") {
		t.Errorf("9load: %+v, %v", st, err)
	}

	delete(m, "386/pbslba")
	if err := d.WriteBootDisk(filepath.Join(t.TempDir(), "x.img"), BootDisk{Ini: ini}); err == nil || !strings.Contains(err.Error(), "pbslba") {
		t.Errorf("without pbslba: %v", err)
	}
}
