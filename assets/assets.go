// Package assets embeds Gridlord's icons: one per node kind and the
// application icon.
package assets

import (
	_ "embed"
	"fmt"
)

//go:embed venti.svg
var ventiSVG []byte

//go:embed fossil.svg
var fossilSVG []byte

//go:embed cpu.svg
var cpuSVG []byte

//go:embed auth.svg
var authSVG []byte

//go:embed icon.png
var iconPNG []byte

// KindIcon returns the SVG icon for a node kind: "venti", "fossil", "cpu",
// "auth" or "fossil+auth" (drawn as a fossil).
func KindIcon(kind string) ([]byte, error) {
	switch kind {
	case "venti":
		return ventiSVG, nil
	case "fossil", "fossil+auth":
		return fossilSVG, nil
	case "cpu":
		return cpuSVG, nil
	case "auth":
		return authSVG, nil
	}
	return nil, fmt.Errorf("no icon for node kind %q", kind)
}

// AppIcon returns the application icon as PNG.
func AppIcon() []byte { return iconPNG }
