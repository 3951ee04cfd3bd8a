package plan9disk

import (
	"bytes"
	"fmt"
	"io"
	"strings"
)

// ConfigBlock says where a text config block lives in a partition.
type ConfigBlock struct {
	Partition string // partition name, e.g. "fossil"
	Offset    int64  // byte offset inside the partition
	Max       int64  // bytes reserved for it, header included
	Header    string // first line, e.g. "fossil config\n"
}

// FossilConfig is the fossil config block: 1 KiB at 127 KiB into the fossil
// partition (fossil/conf, boot's local.c).
func FossilConfig() ConfigBlock {
	return ConfigBlock{Partition: "fossil", Offset: 127 << 10, Max: 1 << 10, Header: "fossil config\n"}
}

// VentiConfig is the venti config block: 8 KiB at 248 KiB into the arenas
// partition (venti/conf).
func VentiConfig() ConfigBlock {
	return ConfigBlock{Partition: "arenas", Offset: 248 << 10, Max: 8 << 10, Header: "venti config\n"}
}

// ReadConfig returns the body of the config block (the text after the
// header line, up to the first NUL).
func ReadConfig(r io.ReaderAt, b ConfigBlock) (string, error) {
	buf := make([]byte, b.Max)
	if _, err := r.ReadAt(buf, b.Offset); err != nil {
		return "", fmt.Errorf("read %s config block: %w", b.Partition, err)
	}
	if i := bytes.IndexByte(buf, 0); i >= 0 {
		buf = buf[:i]
	}
	if !bytes.HasPrefix(buf, []byte(b.Header)) {
		return "", fmt.Errorf("%s partition has no config block at %d KiB (want a %q header line)", b.Partition, b.Offset>>10, strings.TrimSpace(b.Header))
	}
	return string(buf[len(b.Header):]), nil
}

// WriteConfig replaces the config block with header+body, NUL-padded to
// the block size, as fossil/conf -w and venti/conf -w do, and syncs w when
// it can.
func WriteConfig(w io.WriterAt, b ConfigBlock, body string) error {
	if body != "" && !strings.HasSuffix(body, "\n") {
		body += "\n"
	}
	text := b.Header + body
	if strings.IndexByte(text, 0) >= 0 {
		return fmt.Errorf("%s config contains a NUL byte", b.Partition)
	}
	if int64(len(text)) >= b.Max {
		return fmt.Errorf("%s config is %d bytes; the block holds less than %d", b.Partition, len(text), b.Max)
	}
	buf := make([]byte, b.Max)
	copy(buf, text)
	if _, err := w.WriteAt(buf, b.Offset); err != nil {
		return fmt.Errorf("write %s config block: %w", b.Partition, err)
	}
	if s, ok := w.(interface{ Sync() error }); ok {
		if err := s.Sync(); err != nil {
			return fmt.Errorf("write %s config block: %w", b.Partition, err)
		}
	}
	return nil
}

// SetFossilVenti points file system fsys (usually "main") of a fossil
// config body at a venti server: it replaces an existing "fsys NAME venti
// ..." line or adds one just before "fsys NAME open". addr is a dial string
// such as "tcp!10.0.2.20!17034"; empty removes the line.
func SetFossilVenti(body, fsys, addr string) string {
	lines := strings.SplitAfter(body, "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	want := ""
	if addr != "" {
		want = fmt.Sprintf("fsys %s venti %s\n", fsys, addr)
	}
	var out []string
	done := false
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) >= 3 && f[0] == "fsys" && f[1] == fsys && f[2] == "venti" {
			if !done && want != "" {
				out = append(out, want)
			}
			done = true
			continue
		}
		if !done && want != "" && len(f) >= 3 && f[0] == "fsys" && f[1] == fsys && f[2] == "open" {
			out = append(out, want)
			done = true
		}
		if !strings.HasSuffix(l, "\n") {
			l += "\n"
		}
		out = append(out, l)
	}
	if !done && want != "" {
		out = append(out, want)
	}
	return strings.Join(out, "")
}
