package gridfs

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/hugelgupf/p9/linux"
	"github.com/hugelgupf/p9/p9"

	"gridlord/engine/console"
)

// recEngine is a minimal Engine recording ctl commands.
type recEngine struct {
	got [][]string
}

func (r *recEngine) GridJSON() ([]byte, error) { return []byte("{}\n"), nil }
func (r *recEngine) Ctl(ctx context.Context, w []string) error {
	r.got = append(r.got, w)
	if w[0] == "down" {
		return errors.New("cannot stop:\nfossil1 busy")
	}
	return nil
}
func (r *recEngine) Nodes() []string { return []string{"cpu1"} }
func (r *recEngine) NodeCtl(ctx context.Context, n string, w []string) error {
	r.got = append(r.got, append([]string{n}, w...))
	return nil
}
func (r *recEngine) NodeStatus(string) (string, error)        { return "stopped", nil }
func (r *recEngine) NodeIni(string) ([]byte, error)           { return nil, nil }
func (r *recEngine) Console(string) (*console.Hub, error)     { return nil, errors.New("none") }
func (r *recEngine) NodeLog(string) ([]byte, error)           { return nil, nil }
func (r *recEngine) NodeDrawterm(string) ([]byte, error)      { return nil, nil }
func (r *recEngine) Identity(context.Context, []string) error { return nil }
func (r *recEngine) Seeds() ([]string, error)                 { return nil, nil }
func (r *recEngine) VentiStats() ([]byte, error)              { return nil, nil }
func (r *recEngine) VentiMirrors() ([]byte, error)            { return nil, nil }
func (r *recEngine) Changed() <-chan struct{}                 { return make(chan struct{}) }

// FuzzCtlWrite drives /ctl's write path with arbitrary bytes: a write either
// reaches the engine with exactly ParseCtl's words and succeeds, or fails
// with an errno, and the writer's next read is one "error: ..." line.
func FuzzCtlWrite(f *testing.F) {
	for _, s := range []string{"up", "down\n", "wire a b", "frob", "", "up\nup", "add cpu 'x y'", "\xff\xfe"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e := &recEngine{}
		root := newRoot(New(e).(*attacher))
		_, file, err := root.Walk([]string{"ctl"})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := file.Open(p9.ReadWrite); err != nil {
			t.Fatal(err)
		}
		n, werr := file.WriteAt(b, 0)
		buf := make([]byte, 8192)
		rn, rerr := file.ReadAt(buf, 0)
		if rerr != nil && rerr != io.EOF {
			t.Fatal(rerr)
		}
		out := string(buf[:rn])
		if werr == nil {
			words, perr := ParseCtl(b)
			if perr != nil || n != len(b) || len(e.got) != 1 || !slices.Equal(e.got[0], words) {
				t.Fatalf("write %q ok (%d) but engine got %q (parse %q, %v)", b, n, e.got, words, perr)
			}
			if strings.HasPrefix(out, "error:") {
				t.Fatalf("successful write followed by %q", out)
			}
			return
		}
		var en linux.Errno
		if !errors.As(werr, &en) {
			t.Fatalf("write error %v is not an errno", werr)
		}
		if !strings.HasPrefix(out, "error: ") || strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
			t.Fatalf("after failed write %q: read %q", b, out)
		}
	})
}
