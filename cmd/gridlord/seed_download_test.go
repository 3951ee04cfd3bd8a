package main

import (
	"strings"
	"testing"
)

// An unknown seed name is a usage error that lists the catalog's seeds;
// images.Download's own tests cover fetching and checksum verification.
func TestSeedDownloadExplains(t *testing.T) {
	_, errOut, code := runInProcess(t, "seed", "download", "-o", t.TempDir(), "no-such-seed")
	if code != 2 || !strings.Contains(errOut, "no seed \"no-such-seed\" in the catalog") {
		t.Errorf("unknown seed: exit %d: %s", code, errOut)
	}
}
