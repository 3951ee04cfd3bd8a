package grid

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// saveLoopEnv, when set to a grid directory, turns the test binary into the
// child of TestSaveKilled: it saves two versions of that grid alternately
// until it is killed.
const saveLoopEnv = "GRIDLORD_GRID_SAVE_LOOP"

// loopVersion turns the loaded grid into version i%2 of the save loop. The
// versions differ in a node position and in a large unknown member, so a
// save takes long enough to be interrupted in the middle.
func loopVersion(g *Grid, i int) error {
	if err := g.Move("cpu1", float64(i%2), 0); err != nil {
		return err
	}
	if g.unknown == nil {
		g.unknown = map[string]json.RawMessage{}
	}
	g.unknown["padding"] = json.RawMessage(`"` + strings.Repeat(string(rune('a'+i%2)), 256<<10) + `"`)
	return nil
}

func TestMain(m *testing.M) {
	if dir := os.Getenv(saveLoopEnv); dir != "" {
		saveLoop(dir)
		os.Exit(3) // unreachable: saveLoop runs until killed
	}
	os.Exit(m.Run())
}

// saveLoop is the child's body.
func saveLoop(dir string) {
	g, err := Load(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for i := 0; ; i++ {
		if err := loopVersion(g, i); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		if err := g.Save(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		if i == 1 {
			fmt.Println("saving") // both versions are on disk at least once
		}
	}
}

// TestSaveKilled re-runs the test binary as a process that saves the grid in
// a loop, SIGKILLs it at random moments, and checks that grid.json (and
// grid.json.bak) is always exactly one of the versions saved, never a
// broken mix.
func TestSaveKilled(t *testing.T) {
	dir := t.TempDir()
	if _, err := New(dir); err != nil {
		t.Fatal(err)
	}
	base, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	var versions [2][]byte
	for i := range versions {
		if err := loopVersion(base, i); err != nil {
			t.Fatal(err)
		}
		if versions[i], err = base.Marshal(); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]int{}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	const runs = 12
	for run := 0; run < runs; run++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), saveLoopEnv+"="+dir)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || line != "saving\n" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child did not start saving: %q %v; stderr: %s", line, err, stderr.String())
		}
		time.Sleep(time.Duration(rng.IntN(40000)) * time.Microsecond)
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		for _, name := range []string{FileName, BackupName} {
			data, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatalf("run %d: %v", run, err)
			}
			which := -1
			for i, v := range versions {
				if bytes.Equal(data, v) {
					which = i
				}
			}
			if which < 0 {
				t.Fatalf("run %d: %s (%d bytes) is neither saved version", run, name, len(data))
			}
			if _, err := Parse(name, data); err != nil {
				t.Fatalf("run %d: %s does not parse: %v", run, name, err)
			}
			seen[fmt.Sprintf("%s=%d", name, which)]++
		}
		// The next child must still be able to load what is there.
		if _, err := Load(dir); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
	}
	t.Logf("final states over %d kills: %v", runs, seen)
}

// TestSaveBackup: each Save keeps the previous file as grid.json.bak; a save
// that changes nothing rewrites nothing; an invalid grid is not written.
func TestSaveBackup(t *testing.T) {
	dir := t.TempDir()
	g, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(dir); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second New in the same directory: %v", err)
	}
	first, _ := os.ReadFile(filepath.Join(dir, FileName))
	if err := g.Rename("cpu1", "cpu7"); err != nil {
		t.Fatal(err)
	}
	if err := g.Save(); err != nil {
		t.Fatal(err)
	}
	second, _ := os.ReadFile(filepath.Join(dir, FileName))
	bak, _ := os.ReadFile(filepath.Join(dir, BackupName))
	if !bytes.Equal(bak, first) || bytes.Equal(second, first) || !strings.Contains(string(second), `"cpu7"`) {
		t.Errorf("backup is not the previous version")
	}
	if err := g.Save(); err != nil {
		t.Fatal(err)
	}
	if bak2, _ := os.ReadFile(filepath.Join(dir, BackupName)); !bytes.Equal(bak2, first) {
		t.Error("an unchanged save replaced the backup")
	}
	g.Nodes[1].Name = "bad name" // bypassing the methods
	if err := g.Save(); err == nil || !strings.Contains(err.Error(), "refusing to write an invalid grid") {
		t.Errorf("invalid grid saved: %v", err)
	}
	if now, _ := os.ReadFile(filepath.Join(dir, FileName)); !bytes.Equal(now, second) {
		t.Error("a refused save changed grid.json")
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != FileName && e.Name() != BackupName {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
	// grid.json broken behind the grid's back: the save sets it aside and
	// keeps the good backup.
	g.Nodes[1].Name = "fossil1"
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte("{broken"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := g.Rename("cpu7", "cpu8"); err != nil {
		t.Fatal(err)
	}
	if err := g.Save(); err != nil {
		t.Fatal(err)
	}
	bad, _ := os.ReadFile(filepath.Join(dir, BadName))
	if bak3, _ := os.ReadFile(filepath.Join(dir, BackupName)); string(bad) != "{broken" || !bytes.Equal(bak3, first) {
		t.Errorf("broken grid.json: bad=%q, backup kept=%v", bad, bytes.Equal(bak3, first))
	}
	loaded, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Node("cpu8") == nil || loaded.Dir() != dir {
		t.Errorf("loaded grid: %+v", loaded)
	}
}

// TestUnknownFields: members a newer Gridlord might write, at every level,
// survive Load, changes and Save unchanged.
func TestUnknownFields(t *testing.T) {
	dir := t.TempDir()
	if _, err := New(dir); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, FileName)
	data, _ := os.ReadFile(path)
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	future := map[string]any{"futureTop": map[string]any{"a": []any{1.0, "x", nil}}}
	doc["futureTop"] = future["futureTop"]
	doc["network"].(map[string]any)["ipv6"] = "fd00::/64"
	for _, n := range doc["nodes"].([]any) {
		n := n.(map[string]any)
		n["futureNode"] = map[string]any{"color": "red", "n": 7.0}
		n["position"].(map[string]any)["z"] = 3.0
	}
	for _, l := range doc["links"].([]any) {
		l.(map[string]any)["futureLink"] = true
	}
	doc["seeds"] = []any{map[string]any{"name": "mine", "family": "4e", "arch": "386", "format": "raw", "roles": []any{"cpu"},
		"nic": "rtl8139", "diskBus": "ide", "kernels": map[string]any{"cpu": "9pccpu"}, "path": "/x/cpu.img", "futureSeed": "s"}}
	data, _ = json.Marshal(doc)
	// A number beyond float64 must survive byte for byte: raw JSON, not any.
	data = bytes.Replace(data, []byte(`"futureTop":{`), []byte(`"huge":123456789012345678901234567890,"futureTop":{`), 1)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}

	g, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(g.UnknownFields(), " "); got != "futureTop huge" {
		t.Errorf("top-level unknown fields %q", got)
	}
	if err := g.Rename("cpu1", "cpu2"); err != nil {
		t.Fatal(err)
	}
	if _, err := g.AddNode(NodeSpec{Kind: KindCPU, Seed: "mine"}); err != nil {
		t.Fatal(err)
	}
	if err := g.Save(); err != nil {
		t.Fatal(err)
	}
	saved, _ := os.ReadFile(path)
	if !bytes.Contains(saved, []byte(`"huge": 123456789012345678901234567890`)) {
		t.Error("big number not preserved byte for byte")
	}
	var back map[string]any
	if err := json.Unmarshal(saved, &back); err != nil {
		t.Fatal(err)
	}
	check := func(what string, got, want any) {
		t.Helper()
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		if !bytes.Equal(g, w) {
			t.Errorf("%s: %s, want %s", what, g, w)
		}
	}
	check("futureTop", back["futureTop"], future["futureTop"])
	check("network.ipv6", back["network"].(map[string]any)["ipv6"], "fd00::/64")
	nodes := back["nodes"].([]any)
	for i, n := range nodes[:3] {
		n := n.(map[string]any)
		check(fmt.Sprintf("nodes[%d].futureNode", i), n["futureNode"], map[string]any{"color": "red", "n": 7.0})
		check(fmt.Sprintf("nodes[%d].position.z", i), n["position"].(map[string]any)["z"], 3.0)
	}
	if nodes[2].(map[string]any)["name"] != "cpu2" {
		t.Error("rename lost")
	}
	if _, ok := nodes[3].(map[string]any)["futureNode"]; ok {
		t.Error("a new node got another node's unknown fields")
	}
	for i, l := range back["links"].([]any) {
		check(fmt.Sprintf("links[%d].futureLink", i), l.(map[string]any)["futureLink"], true)
	}
	check("seeds[0].futureSeed", back["seeds"].([]any)[0].(map[string]any)["futureSeed"], "s")
	// A second load and save changes nothing.
	g2, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := g2.Marshal()
	if !bytes.Equal(again, saved) {
		t.Errorf("second round trip differs:\n%s\nvs\n%s", again, saved)
	}
}

// TestLoadErrors: a broken grid.json gives an error naming the file and the
// problem, and Load leaves the file as it was.
func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	g, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	good, _ := g.Marshal()
	path := filepath.Join(dir, FileName)
	cpu, fossil, venti := g.Node("cpu1"), g.Node("fossil1"), g.Node("venti")
	edit := func(old, new string) string {
		s := strings.Replace(string(good), old, new, 1)
		if s == string(good) {
			t.Fatalf("edit %q did not apply", old)
		}
		return s
	}
	for _, tc := range []struct{ data, want string }{
		{"", "file is empty"},
		{"{\n  \"version\": 1,\n  \"name\": grid\n}", "line 3, column 11: invalid character 'g'"},
		{"[1, 2", "unexpected end of JSON input"},
		{`{"name":"grid"}`, `no "version" number`},
		{`{"version":2}`, "schema version 2 was written by a newer Gridlord (this one reads up to 1): upgrade Gridlord"},
		{`{"version":"1"}`, `no "version" number`},
		{edit(`"kind": "cpu"`, `"kind": "terminal"`), `node 2 (cpu1): kind "terminal" is not one of`},
		{edit(`"name": "cpu1"`, `"name": "fossil1"`), "node 2 (fossil1): name used twice"},
		{edit(`"name": "cpu1"`, `"name": "1cpu"`), `node name "1cpu" must start with a letter`},
		{edit(`"ip": "`+cpu.IP.String()+`"`, `"ip": "10.0.8.5"`), "node 2 (cpu1): ip 10.0.8.5 is outside the grid's subnet 10.0.9.0/24"},
		{edit(`"ip": "`+cpu.IP.String()+`"`, `"ip": "`+fossil.IP.String()+`"`), "ip 10.0.9.10 is also fossil1's"},
		{edit(`"ip": "`+cpu.IP.String()+`"`, `"ip": "10.0.9.1"`), "is the network's gateway"},
		{edit(`"ip": "`+cpu.IP.String()+`"`, `"ip": "ten"`), `ParseAddr("ten")`},
		{edit(`"mac": "`+cpu.MAC.String()+`"`, `"mac": "zz"`), `mac "zz" is not six hex bytes`},
		{edit(`"mac": "`+cpu.MAC.String()+`"`, `"mac": "01:00:5e:00:00:01"`), "must be a non-zero unicast address"},
		{edit(`"mac": "`+cpu.MAC.String()+`"`, `"mac": "`+fossil.MAC.String()+`"`), "is also fossil1's"},
		{edit(`"ip": "10.0.9.254"`, `"ip": "10.0.9.253"`), "the embedded venti's ip must be the network's host address 10.0.9.254"},
		{edit(`"memoryMB": 512`, `"memoryMB": -1`), "memoryMB -1 is out of range"},
		{edit(`"memoryMB": 512`, `"memoryMB": "lots"`), "JSON string where int was expected"},
		{edit(`"subnet": "10.0.9.0/24"`, `"subnet": "10.0.9.1/24"`), "has host bits set (did you mean 10.0.9.0/24?)"},
		{edit(`"to": "`+fossil.ID.String()+`"`, `"to": "`+venti.ID.String()+`"`), "links[1]: cannot wire cpu1 to venti: a root link goes from a cpu to a fossil, not from a cpu to a venti"},
		{edit(`"to": "`+fossil.ID.String()+`"`, `"to": "00000000-0000-0000-0000-000000000001"`), "links[1]: to end 00000000-0000-0000-0000-000000000001 is not a node of the grid"},
		{edit(`"kind": "root"`, `"kind": "archive"`), "links[1]: cannot wire cpu1 to fossil1: an archive link goes from a fossil to a venti"},
		{edit(`"appliedGen": 0`, `"appliedGen": 9`), "appliedGen 9 is ahead of configGen 1"},
	} {
		if err := os.WriteFile(path, []byte(tc.data), 0o644); err != nil {
			t.Fatal(err)
		}
		before, _ := os.Stat(path)
		_, err := Load(dir)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("load %.60q:\n got %v\nwant an error naming %s and saying %q", tc.data, err, path, tc.want)
		}
		after, _ := os.Stat(path)
		if now, _ := os.ReadFile(path); string(now) != tc.data || !after.ModTime().Equal(before.ModTime()) {
			t.Errorf("load %.60q changed the file", tc.data)
		}
	}
	if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("load from an empty directory: %v", err)
	}
}

// FuzzLoad feeds arbitrary bytes to Load: it must not panic, must name the
// file in every error, must leave the file untouched, and whatever it
// accepts must marshal and parse back to the same bytes.
func FuzzLoad(f *testing.F) {
	g, err := Default()
	if err != nil {
		f.Fatal(err)
	}
	good, _ := g.Marshal()
	f.Add(good)
	f.Add([]byte(`{"version":1,"name":"g","network":{"subnet":"10.0.0.0/24","gateway":"10.0.0.1","host":"10.0.0.254"},"nodes":[],"links":[]}`))
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":1,"name":"g","x":{"y":[1,2,{}]}}`))
	f.Add([]byte("{\n\"version\": 1,\n\"nodes\": [null]}"))
	f.Add([]byte(`[]`))
	dir := f.TempDir()
	path := filepath.Join(dir, FileName)
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		g, err := Load(dir)
		if now, _ := os.ReadFile(path); !bytes.Equal(now, data) {
			t.Fatal("Load changed the file")
		}
		if err != nil {
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		out, err := g.Marshal()
		if err != nil {
			t.Fatalf("marshal of a loaded grid: %v", err)
		}
		g2, err := Parse("again", out)
		if err != nil {
			t.Fatalf("a loaded grid does not parse back: %v\n%s", err, out)
		}
		out2, _ := g2.Marshal()
		if !bytes.Equal(out, out2) {
			t.Fatalf("round trip not stable:\n%s\nvs\n%s", out, out2)
		}
		g2.Check()
		for _, n := range g2.Nodes {
			g2.Config(n.Name)
		}
	})
}
