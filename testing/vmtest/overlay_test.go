package vmtest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"gridlord/engine/console"
	"gridlord/engine/plan9disk/fat"
	"gridlord/engine/qcow2"
	"gridlord/engine/qemu"
	"gridlord/testing/standin"
	"gridlord/testing/testenv"
)

// TestGuestReadsOurOverlay boots a stand-in guest on a linked clone that
// engine/qcow2 made of a seed that qemu-img made (compressed qcow2 v3) and
// in which engine/plan9disk/fat replaced a file: the guest reads, through
// QEMU's IDE disk, both the new file (our copy-on-write clusters) and the
// seed's untouched file (through the backing chain).
func TestGuestReadsOurOverlay(t *testing.T) {
	qemuImg := testenv.Tool(t, "qemu-img")
	mkfs := testenv.Tool(t, "mkfs.fat")
	mcopy := testenv.Tool(t, "mcopy")
	dir := t.TempDir()
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	// The seed: a FAT volume with two files, compressed into qcow2 by qemu-img.
	raw := filepath.Join(dir, "seed.raw")
	run(mkfs, "-C", raw, "8192")
	for name, text := range map[string]string{"seed.txt": "SEED-FILE-THROUGH-BACKING\n", "conf.txt": "OLD-CONFIG\n"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		run(mcopy, "-i", raw, p, "::"+name)
	}
	seed := filepath.Join(dir, "seed.qcow2")
	run(qemuImg, "convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "compat=1.1", raw, seed)

	// Our linked clone, and the file replaced in it by our FAT writer.
	overlay := filepath.Join(dir, "node.qcow2")
	if err := qcow2.CreateOverlay(overlay, seed); err != nil {
		t.Fatal(err)
	}
	img, err := qcow2.Open(overlay)
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := fat.Open(img, img.Size())
	if err != nil {
		t.Fatal(err)
	}
	if err := fsys.WriteFile("conf.txt", []byte("NEW-CONFIG-WRITTEN-BY-GRIDLORD\n")); err != nil {
		t.Fatal(err)
	}
	if err := img.Close(); err != nil {
		t.Fatal(err)
	}
	run(qemuImg, "check", overlay)

	// A stand-in with the IDE disk drivers.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	im, err := standin.Build(ctx, standin.Options{Modules: append(standin.DefaultModules(), "ata_piix", "sd_mod")})
	if err != nil {
		t.Fatalf("build stand-in guest with disk drivers: %v", err)
	}
	sup := newSupervisor(t, shortTempDir(t), nil)
	s := spec(im, "reader")
	s.Disks = []qemu.Disk{{Path: overlay, Format: "qcow2"}}
	n := start(t, sup, s)
	e := console.NewExpecter(n.Console, true)
	waitReady(t, e)
	// grep -c counts the lines holding each marker on the whole disk.
	shell(t, e, `echo found-new=$(grep -c NEW-CONFIG-WRITTEN-BY-GRIDLORD /dev/sda)`, regexp.MustCompile(`found-new=1\r?\n`))
	shell(t, e, `echo found-seed=$(grep -c SEED-FILE-THROUGH-BACKING /dev/sda)`, regexp.MustCompile(`found-seed=1\r?\n`))
}
