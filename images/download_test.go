package images

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// seedServer serves body at /seed.qcow2 on loopback.
func seedServer(t *testing.T, body []byte) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/seed.qcow2" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func testSeed(url string, body []byte) Seed {
	sum := sha256.Sum256(body)
	return Seed{Name: "test-seed", Format: FormatQcow2, URL: url, SHA256: hex.EncodeToString(sum[:])}
}

func TestDownloadVerifies(t *testing.T) {
	body := bytes.Repeat([]byte("plan9 "), 100000)
	srv := seedServer(t, body)
	dir := t.TempDir()
	var last, total int64
	path, err := Download(context.Background(), srv.Client(), testSeed(srv.URL+"/seed.qcow2", body), dir, false,
		func(done, n int64) { last, total = done, n })
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(dir, "test-seed.qcow2") {
		t.Errorf("downloaded to %s", path)
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("downloaded file differs: %v", err)
	}
	if last != int64(len(body)) || total != int64(len(body)) {
		t.Errorf("last progress %d/%d, want %d/%d", last, total, len(body), len(body))
	}
	assertOnly(t, dir, "test-seed.qcow2")
}

func TestDownloadRejectsWrongChecksum(t *testing.T) {
	body := []byte("the real image")
	srv := seedServer(t, []byte("a tampered image"))
	dir := t.TempDir()
	_, err := Download(context.Background(), srv.Client(), testSeed(srv.URL+"/seed.qcow2", body), dir, false, nil)
	if err == nil || !strings.Contains(err.Error(), "SHA-256 is") || !strings.Contains(err.Error(), "discarded") {
		t.Fatalf("download of a tampered image: %v", err)
	}
	assertOnly(t, dir)
}

func TestDownloadRefusals(t *testing.T) {
	body := []byte("image")
	srv := seedServer(t, body)
	dir := t.TempDir()
	ctx := context.Background()
	noURL := testSeed("", body)
	if _, err := Download(ctx, srv.Client(), noURL, dir, false, nil); err == nil || !strings.Contains(err.Error(), "seed import") {
		t.Errorf("seed without URL: %v", err)
	}
	unverified := testSeed(srv.URL+"/seed.qcow2", body)
	unverified.SHA256 = ""
	if _, err := Download(ctx, srv.Client(), unverified, dir, false, nil); err == nil || !strings.Contains(err.Error(), "no checksum") {
		t.Errorf("seed without checksum: %v", err)
	}
	if _, err := Download(ctx, srv.Client(), unverified, dir, true, nil); err != nil {
		t.Errorf("seed without checksum, allowed: %v", err)
	}
	missing := testSeed(srv.URL+"/nothing", body)
	missing.Name = "missing"
	if _, err := Download(ctx, srv.Client(), missing, dir, false, nil); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("missing file: %v", err)
	}
	assertOnly(t, dir, "test-seed.qcow2")
}

// assertOnly checks dir holds exactly the named files (no partial downloads).
func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Errorf("%s holds %v, want %v", dir, got, names)
	}
}
