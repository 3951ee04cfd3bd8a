package window

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gridlord/engine/grid"
	"gridlord/engine/gridfs"
	"gridlord/testing/gridtest"
	"gridlord/testing/testenv"
)

// Colours the window draws (ui/card.go); the screen is read by them.
var (
	ventiColour    = color.NRGBA{0x7b, 0x4f, 0xb8, 0xff}
	fossilColour   = color.NRGBA{0xb8, 0x86, 0x2f, 0xff}
	cpuColour      = color.NRGBA{0x2f, 0x7f, 0xb8, 0xff}
	stoppedColour  = color.NRGBA{0x80, 0x80, 0x80, 0xff}
	startingColour = color.NRGBA{0xe0, 0xc0, 0x30, 0xff}
	runningColour  = color.NRGBA{0x40, 0xd0, 0x60, 0xff}
	linkColour     = color.NRGBA{0x9a, 0xa4, 0xb5, 0xff}
)

// The binary is built once per test process: every window test runs the
// same one.
var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
)

// gridlordBinary builds the real gridlord (cgo, GLFW) once.
func gridlordBinary(t testing.TB) string {
	t.Helper()
	testenv.Tool(t, "gcc")
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "glbin")
		if err != nil {
			buildErr = err
			return
		}
		buildBin = filepath.Join(dir, "gridlord")
		build := exec.Command("go", "build", "-o", buildBin, "./cmd/gridlord")
		build.Dir = repoRoot(t)
		if out, err := build.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build gridlord: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

// screen is one X display (Xvfb) and the tools that look at it and act on
// it like a person: import for screenshots, xwininfo to find windows,
// xdotool for the mouse and keyboard.
type screen struct {
	t        testing.TB
	display  string
	importer string
	xwininfo string
	xdotool  string
}

func newScreen(t testing.TB) *screen {
	t.Helper()
	return &screen{
		t:        t,
		importer: testenv.Tool(t, "import"),
		xwininfo: testenv.Tool(t, "xwininfo"),
		xdotool:  testenv.Tool(t, "xdotool"),
		display:  startXvfb(t),
	}
}

// env is the environment of programs on this display.
func (s *screen) env(extra ...string) []string {
	return append(append(os.Environ(), "DISPLAY="+s.display), extra...)
}

// hasWindow reports whether a window titled title is mapped.
func (s *screen) hasWindow(title string) bool {
	out, _ := exec.Command(s.xwininfo, "-display", s.display, "-root", "-tree").Output()
	return strings.Contains(string(out), `"`+title+`"`)
}

// shot photographs the whole screen, keeps it in artifacts/ as name and
// returns it.
func (s *screen) shot(name string) image.Image {
	s.t.Helper()
	path := filepath.Join(artifactDir(s.t), name)
	if out, err := exec.Command(s.importer, "-display", s.display, "-window", "root", path).CombinedOutput(); err != nil {
		s.t.Fatalf("screenshot: %v\n%s", err, out)
	}
	f, err := os.Open(path)
	if err != nil {
		s.t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		s.t.Fatalf("decode screenshot %s: %v", path, err)
	}
	s.t.Logf("screenshot %s", path)
	return img
}

// xdo runs xdotool with args on this display.
func (s *screen) xdo(args ...string) {
	s.t.Helper()
	cmd := exec.Command(s.xdotool, args...)
	cmd.Env = s.env()
	if out, err := cmd.CombinedOutput(); err != nil {
		s.t.Fatalf("xdotool %v: %v\n%s", args, err, out)
	}
}

// click moves the mouse to p, rests a moment as a hand does, and clicks
// button once (1 left, 3 right).
func (s *screen) click(p image.Point, button int) {
	s.t.Helper()
	s.xdo("mousemove", strconv.Itoa(p.X), strconv.Itoa(p.Y))
	time.Sleep(150 * time.Millisecond)
	s.xdo("click", strconv.Itoa(button))
}

// doubleClick clicks the left button twice in quick succession at p.
func (s *screen) doubleClick(p image.Point) {
	s.t.Helper()
	s.xdo("mousemove", strconv.Itoa(p.X), strconv.Itoa(p.Y))
	time.Sleep(150 * time.Millisecond)
	s.xdo("click", "--repeat", "2", "--delay", "80", "1")
}

// drag presses the left button at from, moves to to in steps and releases.
func (s *screen) drag(from, to image.Point) {
	s.t.Helper()
	s.xdo("mousemove", strconv.Itoa(from.X), strconv.Itoa(from.Y))
	time.Sleep(150 * time.Millisecond)
	s.xdo("mousedown", "1")
	const steps = 12
	for i := 1; i <= steps; i++ {
		x := from.X + (to.X-from.X)*i/steps
		y := from.Y + (to.Y-from.Y)*i/steps
		s.xdo("mousemove", strconv.Itoa(x), strconv.Itoa(y))
		time.Sleep(40 * time.Millisecond)
	}
	time.Sleep(150 * time.Millisecond)
	s.xdo("mouseup", "1")
}

// gui is a running "gridlord gui" on a screen.
type gui struct {
	t      *testing.T
	cmd    *exec.Cmd
	logs   *testenv.SyncBuffer
	exited chan struct{}
}

// startGUI runs bin with args on s and waits until its window is mapped
// and painted. The process is killed at cleanup (the engine it started is
// not: see cleanupGrid).
func startGUI(t *testing.T, s *screen, bin string, args ...string) *gui {
	t.Helper()
	return startGUIEnv(t, s, bin, nil, args...)
}

// startGUIEnv is startGUI with env added to the window's environment (and
// so to that of an engine it starts).
func startGUIEnv(t *testing.T, s *screen, bin string, env []string, args ...string) *gui {
	t.Helper()
	g := &gui{t: t, cmd: exec.Command(bin, append([]string{"gui"}, args...)...), logs: &testenv.SyncBuffer{}, exited: make(chan struct{})}
	g.cmd.Env = s.env(append([]string{"LANG=en_US.UTF-8"}, env...)...)
	g.cmd.Stdout, g.cmd.Stderr = g.logs, g.logs
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var exitErr error
	go func() { exitErr = g.cmd.Wait(); close(g.exited) }()
	t.Cleanup(func() { g.kill(); t.Logf("gridlord gui output:\n%s", g.logs.String()) })
	deadline := time.Now().Add(2 * time.Minute)
	for !s.hasWindow("Gridlord") {
		if time.Now().After(deadline) {
			t.Fatalf("no Gridlord window appeared on %s", s.display)
		}
		select {
		case <-g.exited:
			t.Fatalf("gridlord exited (%v) before its window appeared:\n%s", exitErr, g.logs.String())
		case <-time.After(200 * time.Millisecond):
		}
	}
	return g
}

// stop closes the window the way a desktop session ending does (SIGTERM)
// and waits for the process to exit.
func (g *gui) stop() {
	g.t.Helper()
	g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
	case <-time.After(20 * time.Second):
		g.t.Error("gridlord gui did not exit within 20 s of SIGTERM")
		g.kill()
	}
}

// kill ends the window's process (idempotent).
func (g *gui) kill() {
	select {
	case <-g.exited:
	default:
		g.cmd.Process.Kill()
		<-g.exited
	}
}

// shortTemp is a temporary directory with a short path (unix socket paths
// inside a grid directory are limited to about 100 bytes), removed at
// cleanup.
func shortTemp(t *testing.T, prefix string) string {
	t.Helper()
	d, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// dialEngine connects to the engine serving dir, waiting for it to come up.
func dialEngine(t *testing.T, ctx context.Context, dir string) *gridfs.Client {
	t.Helper()
	for {
		c, err := gridfs.Dial(ctx, filepath.Join(dir, grid.SocketName))
		if err == nil {
			t.Cleanup(func() { c.Close() })
			return c
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no engine answers in %s: %v", dir, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// nodeState is the first word of /nodes/NAME/status.
func nodeState(ctx context.Context, c *gridfs.Client, name string) (string, error) {
	b, err := c.ReadFile(ctx, "nodes/"+name+"/status")
	if err != nil {
		return "", err
	}
	st, _, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
	return st, nil
}

// cleanupGrid stops the grid in dir, its engine and any VM left behind.
func cleanupGrid(t testing.TB, dir string) { gridtest.Cleanup(t, dir) }

// region is the bounding box of the pixels of colour c (within a small
// distance) inside r, and how many there are.
func region(img image.Image, r image.Rectangle, c color.NRGBA) (image.Rectangle, int) {
	var box image.Rectangle
	n := 0
	r = r.Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if isColour(img.At(x, y), c) {
				p := image.Rect(x, y, x+1, y+1)
				if n == 0 {
					box = p
				} else {
					box = box.Union(p)
				}
				n++
			}
		}
	}
	return box, n
}

// card finds the card of colour c on img: the bounding box of that colour,
// which must be at least card-sized.
func card(t *testing.T, img image.Image, what string, c color.NRGBA) image.Rectangle {
	t.Helper()
	box, n := region(img, img.Bounds(), c)
	if n < 3000 || box.Dx() < 120 || box.Dy() < 40 {
		t.Fatalf("no %s card on the screen (%d pixels of its colour in %v)", what, n, box)
	}
	return box
}

// badge is the state colour whose badge shows in a card box (the badge is
// a 10-pixel dot at the card's (52,46) at zoom 1), or "" if none does.
func badge(img image.Image, box image.Rectangle) string {
	for name, c := range map[string]color.NRGBA{"stopped": stoppedColour, "starting": startingColour, "running": runningColour} {
		if _, n := region(img, box, c); n >= 30 {
			return name
		}
	}
	return ""
}

// countColour counts the pixels within a small distance of c.
func countColour(img image.Image, c color.NRGBA) int {
	_, n := region(img, img.Bounds(), c)
	return n
}

func isColour(px color.Color, c color.NRGBA) bool {
	r, g, b, _ := px.RGBA()
	return near(r>>8, c.R) && near(g>>8, c.G) && near(b>>8, c.B)
}

func near(v uint32, want uint8) bool {
	d := int(v) - int(want)
	return d >= -6 && d <= 6
}

// nodeMenu is the order of a cpu card's right-click menu (ui/menu.go),
// separators left out: the keyboard walks it with the Down key.
var nodeMenu = []string{"Start", "Stop", "Power off", "Reset disk…", "Console", "Drawterm", "Clone…", "Reset identity…", "Properties…", "Delete"}

// menuItem right-clicks at p and picks the cpu menu's item label with the
// keyboard, as a person does when the menu is open (Down to it, Return).
func menuItem(s *screen, p image.Point, label string) {
	s.t.Helper()
	k := -1
	for i, l := range nodeMenu {
		if l == label {
			k = i
		}
	}
	if k < 0 {
		s.t.Fatalf("no menu item %q", label)
	}
	s.click(p, 3)
	time.Sleep(500 * time.Millisecond)
	for i := 0; i <= k; i++ {
		s.xdo("key", "Down")
	}
	s.shot("menu-" + strings.TrimSuffix(label, "…") + ".png")
	s.xdo("key", "Return")
}

// fillReset types into the open Reset identity wizard, as a person does
// with Tab between the fields: host owner user, password twice; without
// keyfs it clears the Users box.
func fillReset(s *screen, user, password string, keyfs bool) {
	s.t.Helper()
	s.xdo("key", "Tab", "Tab", "Tab") // Machine, Auth domain, Host owner
	s.xdo("key", "ctrl+a")
	s.xdo("type", "--delay", "30", user)
	s.xdo("key", "Tab")
	s.xdo("type", "--delay", "30", password)
	s.xdo("key", "Tab")
	s.xdo("type", "--delay", "30", password)
	if !keyfs {
		s.xdo("key", "Tab", "Tab", "space") // Disk, then Users
	}
	time.Sleep(500 * time.Millisecond)
}

// primaryColour is the fill of a dialog's default button (Fyne's theme
// primary colour, dark variant).
var primaryColour = color.NRGBA{0x29, 0x6f, 0xf6, 0xff}

// waitDialog waits until a dialog shows (its default button in the primary
// colour) and returns the screenshot it was seen on.
func waitDialog(t *testing.T, s *screen, shot string) image.Image {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; {
		img := s.shot(shot)
		if b := largestPatch(img, primaryColour); b.Dx() >= 40 && b.Dy() >= 20 {
			return img
		}
		if time.Now().After(deadline) {
			t.Fatalf("no dialog with a default button appeared (see %s)", shot)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// primaryButton is the centre of the dialog's default button on img.
func primaryButton(t *testing.T, img image.Image) image.Point {
	t.Helper()
	b := largestPatch(img, primaryColour)
	if b.Dx() < 40 || b.Dy() < 20 {
		t.Fatalf("no default button on the screen (largest primary-coloured patch %v)", b)
	}
	return image.Pt((b.Min.X+b.Max.X)/2, (b.Min.Y+b.Max.Y)/2)
}

// largestPatch is the bounding box of the largest 4-connected patch of
// pixels of colour c: a button, not a one-pixel underline elsewhere.
func largestPatch(img image.Image, c color.NRGBA) image.Rectangle {
	r := img.Bounds()
	seen := make([]bool, r.Dx()*r.Dy())
	idx := func(x, y int) int { return (y-r.Min.Y)*r.Dx() + x - r.Min.X }
	var best image.Rectangle
	bestN := 0
	var stack []image.Point
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if seen[idx(x, y)] || !isColour(img.At(x, y), c) {
				continue
			}
			box, n := image.Rect(x, y, x+1, y+1), 0
			seen[idx(x, y)] = true
			stack = append(stack[:0], image.Pt(x, y))
			for len(stack) > 0 {
				p := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				n++
				box = box.Union(image.Rect(p.X, p.Y, p.X+1, p.Y+1))
				for _, q := range []image.Point{{p.X + 1, p.Y}, {p.X - 1, p.Y}, {p.X, p.Y + 1}, {p.X, p.Y - 1}} {
					if q.In(r) && !seen[idx(q.X, q.Y)] && isColour(img.At(q.X, q.Y), c) {
						seen[idx(q.X, q.Y)] = true
						stack = append(stack, q)
					}
				}
			}
			if n > bestN {
				best, bestN = box, n
			}
		}
	}
	return best
}

// textPixels counts the light pixels in r: text of the dark theme.
func textPixels(img image.Image, r image.Rectangle) int {
	n := 0
	r = r.Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			if cr>>8 > 0xb0 && cg>>8 > 0xb0 && cb>>8 > 0xb0 {
				n++
			}
		}
	}
	return n
}
