package standin

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"gridlord/testing/testenv"
)

func TestParseApt(t *testing.T) {
	dep := []byte("linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n")
	if got := parseAptDepends(dep); got != "linux-image-6.1.0-56-amd64" {
		t.Errorf("parseAptDepends = %q", got)
	}
	if got := parseAptDepends([]byte("linux-image-amd64\n")); got != "" {
		t.Errorf("parseAptDepends(no deps) = %q, want empty", got)
	}
	show := []byte("Package: linux-image-6.1.0-56-amd64\nSource: linux-signed-amd64 (6.1.192+2)\nVersion: 6.1.192-2\n")
	if got := parseAptVersion(show); got != "6.1.192-2" {
		t.Errorf("parseAptVersion = %q", got)
	}
}

func TestParseModinfoDepends(t *testing.T) {
	data := []byte("license=GPL\x00depends=virtio,virtio_ring\x00intree=Y\x00")
	got := parseModinfoDepends(data)
	if strings.Join(got, " ") != "virtio virtio_ring" {
		t.Errorf("depends = %q", got)
	}
	if got := parseModinfoDepends([]byte("depends=\x00")); len(got) != 0 {
		t.Errorf("empty depends = %q", got)
	}
}

// TestCPIOListsWithCpio checks our newc writer against GNU cpio.
func TestCPIOListsWithCpio(t *testing.T) {
	cpio := testenv.Tool(t, "cpio")
	var buf bytes.Buffer
	w := newCPIOWriter(&buf)
	w.Dir("bin", 0o755)
	w.File("bin/hello", 0o755, []byte("hello\n"))
	w.Symlink("bin/sh", "hello")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(cpio, "-it", "--quiet")
	cmd.Stdin = &buf
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -it: %v: %s", err, out)
	}
	if got := strings.Fields(string(out)); strings.Join(got, " ") != "bin bin/hello bin/sh" {
		t.Errorf("cpio lists %q", got)
	}
}

func TestCPIOPadding(t *testing.T) {
	var buf bytes.Buffer
	w := newCPIOWriter(&buf)
	w.File("a", 0o644, []byte("xyz"))
	w.Close()
	if buf.Len()%4 != 0 {
		t.Errorf("archive length %d not a multiple of 4", buf.Len())
	}
	if err := w.File("b", 0o644, nil); err == nil {
		t.Error("entry after trailer accepted")
	}
	if !bytes.HasPrefix(buf.Bytes(), []byte("070701")) {
		t.Errorf("magic = %q", buf.Bytes()[:6])
	}
	_ = io.Discard
}

func TestBuild(t *testing.T) {
	testenv.Integration(t)
	im, err := Build(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{im.Kernel, im.Initrd} {
		if st, err := os.Stat(p); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", p, err)
		}
	}
	again, err := Build(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if *again != *im {
		t.Errorf("second build = %+v, want the cached %+v", again, im)
	}
	t.Logf("kernel %s (%s), initrd %s", im.Kernel, im.KernelRelease, im.Initrd)
}

func FuzzParseModinfoDepends(f *testing.F) {
	f.Add([]byte("license=GPL\x00depends=virtio,virtio_ring\x00"))
	f.Add([]byte("depends=\x00"))
	f.Add([]byte("depends=a,,b, c\x00depends=d"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, d := range parseModinfoDepends(data) {
			if d == "" || strings.ContainsAny(d, ",\x00") || strings.TrimSpace(d) != d {
				t.Fatalf("bad module name %q from %q", d, data)
			}
		}
	})
}
