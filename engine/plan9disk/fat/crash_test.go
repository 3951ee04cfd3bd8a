package fat

import (
	"bytes"
	"errors"
	"testing"
)

// logDev records every write made through it.
type logDev struct {
	*memDev
	log []struct {
		off  int64
		data []byte
	}
}

func (l *logDev) WriteAt(p []byte, off int64) (int, error) {
	l.log = append(l.log, struct {
		off  int64
		data []byte
	}{off, append([]byte(nil), p...)})
	return l.memDev.WriteAt(p, off)
}

// TestCrashAtEveryWrite replays a plan9.ini rewrite and a file creation
// write by write: after any prefix of the writes (a crash), the volume
// opens, plan9.ini reads as either the old or the new text, the new file
// is either absent or complete, and the other files are intact.
func TestCrashAtEveryWrite(t *testing.T) {
	for _, w := range widths {
		t.Run(w.name, func(t *testing.T) {
			dev, fs := newFS(t, w.opts)
			oldIni := bytes.Repeat([]byte("bootfile=sdC0!9fat!9pcf\n"), 200) // several clusters
			kernel := bytes.Repeat([]byte{0x9c}, 50000)
			for name, data := range map[string][]byte{"plan9.ini": oldIni, "9pcf": kernel} {
				if err := fs.WriteFile(name, data); err != nil {
					t.Fatal(err)
				}
			}
			orig := append([]byte(nil), dev.b...)
			ld := &logDev{memDev: dev}
			lfs, err := Open(ld, int64(len(dev.b)), fixedClock)
			if err != nil {
				t.Fatal(err)
			}
			newIni := []byte("bootfile=sdC0!9fat!9pccpuf\nventi=tcp!10.0.2.20!17034\n")
			if err := lfs.WriteFile("plan9.ini", newIni); err != nil {
				t.Fatal(err)
			}
			nvr := bytes.Repeat([]byte{7}, 512)
			if err := lfs.WriteFile("Some Long Name.nvr", nvr); err != nil {
				t.Fatal(err)
			}
			t.Logf("%d writes", len(ld.log))
			for k := 0; k <= len(ld.log); k++ {
				img := &memDev{b: append([]byte(nil), orig...)}
				for _, wr := range ld.log[:k] {
					img.WriteAt(wr.data, wr.off)
				}
				cfs, err := Open(img, int64(len(img.b)))
				if err != nil {
					t.Fatalf("after %d writes: open: %v", k, err)
				}
				ini, err := cfs.ReadFile("plan9.ini")
				if err != nil || !(bytes.Equal(ini, oldIni) || bytes.Equal(ini, newIni)) {
					t.Fatalf("after %d writes: plan9.ini = %d bytes, %v", k, len(ini), err)
				}
				if b, err := cfs.ReadFile("9pcf"); err != nil || !bytes.Equal(b, kernel) {
					t.Fatalf("after %d writes: 9pcf damaged: %v", k, err)
				}
				if b, err := cfs.ReadFile("some long name.nvr"); err == nil {
					if !bytes.Equal(b, nvr) {
						t.Fatalf("after %d writes: new file visible but incomplete", k)
					}
				} else if !errors.Is(err, ErrNotExist) {
					t.Fatalf("after %d writes: new file: %v", k, err)
				}
			}
		})
	}
}
