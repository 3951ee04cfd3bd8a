package assets

import (
	"bytes"
	"image/png"
	"testing"
)

func TestIcons(t *testing.T) {
	for _, k := range []string{"venti", "fossil", "cpu", "auth", "fossil+auth"} {
		b, err := KindIcon(k)
		if err != nil || !bytes.HasPrefix(b, []byte("<svg")) {
			t.Errorf("KindIcon(%q): %v, not an SVG", k, err)
		}
	}
	if _, err := KindIcon("toaster"); err == nil {
		t.Error("KindIcon of an unknown kind succeeded")
	}
	if _, err := png.Decode(bytes.NewReader(AppIcon())); err != nil {
		t.Errorf("AppIcon is not a PNG: %v", err)
	}
}
