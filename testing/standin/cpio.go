package standin

import (
	"fmt"
	"io"
)

// cpioWriter writes an archive in the "newc" format (magic 070701), the one
// the Linux kernel unpacks as an initramfs. Only what the stand-in needs is
// supported: directories, regular files and symlinks, all owned by root.
type cpioWriter struct {
	w    io.Writer
	ino  uint32
	err  error
	done bool
}

const (
	modeDir     = 0o040000
	modeFile    = 0o100000
	modeSymlink = 0o120000
)

func newCPIOWriter(w io.Writer) *cpioWriter { return &cpioWriter{w: w, ino: 1} }

// entry writes one header, name and body, each padded to 4 bytes.
func (c *cpioWriter) entry(name string, mode uint32, body []byte) error {
	if c.err != nil {
		return c.err
	}
	if c.done {
		return fmt.Errorf("cpio: entry %s after trailer", name)
	}
	nlink := 1
	if mode&0o170000 == modeDir {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, len(body), 0, 0, 0, 0, len(name)+1, 0)
	c.ino++
	buf := append([]byte(hdr), name...)
	buf = append(buf, 0)
	buf = pad4(buf)
	buf = append(buf, body...)
	buf = pad4(buf)
	_, c.err = c.w.Write(buf)
	return c.err
}

func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// Dir adds a directory.
func (c *cpioWriter) Dir(name string, perm uint32) error { return c.entry(name, modeDir|perm, nil) }

// File adds a regular file.
func (c *cpioWriter) File(name string, perm uint32, body []byte) error {
	return c.entry(name, modeFile|perm, body)
}

// Symlink adds a symbolic link name -> target.
func (c *cpioWriter) Symlink(name, target string) error {
	return c.entry(name, modeSymlink|0o777, []byte(target))
}

// Close writes the trailer entry. It does not close the underlying writer.
func (c *cpioWriter) Close() error {
	if c.done {
		return c.err
	}
	err := c.entry("TRAILER!!!", 0, nil)
	c.done = true
	return err
}
