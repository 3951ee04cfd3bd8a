package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"gridlord/engine/atomicfile"
)

// Progress is told how many bytes of a download have arrived and how many
// are expected (-1 when the server does not say).
type Progress func(done, total int64)

// FileName is the name a downloaded seed gets in its directory:
// NAME.raw or NAME.qcow2.
func (s *Seed) FileName() string { return s.Name + "." + string(s.Format) }

// Download fetches seed s from s.URL into dir/s.FileName() and returns that
// path. The bytes go to a temporary file in dir (engine/atomicfile) that is
// hashed as it is written; only when the SHA-256 matches s.SHA256 is it
// synced and renamed into place, so a failed or tampered download never leaves a file that
// looks complete. A seed without a recorded checksum is refused unless
// allowUnverified is set; its checksum is then only reported in the error
// of a later mismatch. client may be nil (http.DefaultClient).
func Download(ctx context.Context, client *http.Client, s Seed, dir string, allowUnverified bool, progress Progress) (string, error) {
	if s.URL == "" {
		return "", fmt.Errorf("download seed %s: the catalog knows no download address; get the image yourself and run \"gridlord seed import %s FILE\"", s.Name, s.Name)
	}
	if s.SHA256 == "" && !allowUnverified {
		return "", fmt.Errorf("download seed %s: the catalog records no checksum, so the download cannot be verified; allow unverified downloads to fetch it anyway", s.Name)
	}
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	if err != nil {
		return "", fmt.Errorf("download seed %s: %w", s.Name, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("download seed %s from %s: %w", s.Name, s.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("download seed %s from %s: server answered %s", s.Name, s.URL, resp.Status)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("download seed %s: %w", s.Name, err)
	}
	dst := filepath.Join(dir, s.FileName())
	err = atomicfile.WriteFunc(dst, 0o644, func(f *os.File) error {
		h := sha256.New()
		pw := &progressWriter{total: resp.ContentLength, progress: progress}
		if _, err := io.Copy(io.MultiWriter(f, h, pw), resp.Body); err != nil {
			return fmt.Errorf("from %s: %w", s.URL, err)
		}
		if sum := hex.EncodeToString(h.Sum(nil)); s.SHA256 != "" && sum != s.SHA256 {
			return fmt.Errorf("from %s: SHA-256 is %s, the catalog says %s; the file was discarded", s.URL, sum, s.SHA256)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("download seed %s: %w", s.Name, err)
	}
	return dst, nil
}

// progressWriter counts bytes for a Progress callback.
type progressWriter struct {
	done, total int64
	progress    Progress
}

func (p *progressWriter) Write(b []byte) (int, error) {
	p.done += int64(len(b))
	if p.progress != nil {
		p.progress(p.done, p.total)
	}
	return len(b), nil
}
