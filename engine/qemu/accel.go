package qemu

import (
	"gridlord/engine/atomicfile"

	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"
)

// EnvAccel overrides the accelerator choice ("tcg", "kvm", "hvf", "whpx").
const EnvAccel = "GRIDLORD_ACCEL"

// probeExit is QEMU's exit status when the probe guest ran: the guest
// writes 0x21 to the isa-debug-exit port, and QEMU exits with (0x21<<1)|1.
const probeExit = 0x21<<1 | 1

// probeKernel returns a 48-byte multiboot kernel ("a.out kludge" header,
// loaded at 1 MiB) whose code counts down from 2^24 and then writes 0x21 to
// I/O port 0xf4 and halts. With
// -device isa-debug-exit,iobase=0xf4 that makes QEMU exit with probeExit,
// which proves the accelerator really executed guest instructions.
func probeKernel() []byte {
	const magic, flags, base = 0x1BADB002, 0x00010000, 0x100000
	b := make([]byte, 0x30)
	le := binary.LittleEndian
	le.PutUint32(b[0:], magic)
	le.PutUint32(b[4:], flags)
	le.PutUint32(b[8:], uint32(0x100000000-(magic+flags)))
	le.PutUint32(b[12:], base)      // header_addr
	le.PutUint32(b[16:], base)      // load_addr
	le.PutUint32(b[20:], 0)         // load_end_addr: whole file
	le.PutUint32(b[24:], 0)         // bss_end_addr: none
	le.PutUint32(b[28:], base+0x20) // entry_addr
	copy(b[0x20:], []byte{
		0xB9, 0x00, 0x00, 0x00, 0x01, // mov ecx, 1<<24
		0x49,       // loop: dec ecx
		0x75, 0xFD, // jnz loop
		0xB0, 0x21, // mov al, 0x21
		0xE6, 0xF4, // out 0xf4, al
		0xF4,       // hlt
		0xEB, 0xFD, // jmp hlt
	})
	return b
}

// ProbeAccel boots a trivial guest with accel and reports whether it ran
// to completion within timeout. An accelerator that QEMU accepts but that
// never runs the guest (as KVM does on some hosts) fails here.
func ProbeAccel(ctx context.Context, binary, accel, workDir string, timeout time.Duration) error {
	kf, err := os.CreateTemp(workDir, "accel-probe-*.kernel")
	if err != nil {
		return fmt.Errorf("accelerator probe: %w", err)
	}
	defer os.Remove(kf.Name())
	_, err = kf.Write(probeKernel())
	if cerr := kf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("accelerator probe: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "-nodefaults", "-no-user-config", "-display", "none",
		"-accel", accel, "-m", "16", "-kernel", kf.Name(),
		"-device", "isa-debug-exit,iobase=0xf4,iosize=0x04")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return fmt.Errorf("accelerator %s: the probe guest did not finish within %v", accel, timeout)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == probeExit {
		return nil
	}
	if err == nil {
		return fmt.Errorf("accelerator %s: QEMU exited 0 without running the probe guest: %s", accel, out)
	}
	return fmt.Errorf("accelerator %s: %w: %s", accel, err, out)
}

// probeTimeout bounds the accelerator probe. TCG runs the probe guest in
// about 0.1 s and a working KVM faster; on a host where KVM is accepted but
// only crawls (nested without hardware support: the trivial guest needed
// 7 s, a Linux guest printed nothing in 40 s) the probe must fail.
const probeTimeout = 3 * time.Second

// nativeAccel is the hardware accelerator to try on this OS, if any.
func nativeAccel() string {
	switch runtime.GOOS {
	case "linux":
		f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
		if err != nil {
			return ""
		}
		f.Close()
		return "kvm"
	case "darwin":
		return "hvf"
	case "windows":
		return "whpx"
	}
	return ""
}

// probeRecord is one cached probe result.
type probeRecord struct {
	Accel    string    `json:"accel"`
	Works    bool      `json:"works"`
	Error    string    `json:"error,omitempty"`
	ProbedAt time.Time `json:"probedAt"`
}

// ChooseAccel returns the accelerator to use with the QEMU binary: the
// value of GRIDLORD_ACCEL when set; else the OS's hardware accelerator (kvm
// when /dev/kvm is usable, hvf on macOS, whpx on Windows) if a probe guest
// proves it works; else tcg. Probe results are cached in cacheDir (empty
// means no cache), keyed by the binary's path, size and time and the host
// kernel, so the probe runs once per QEMU install.
func ChooseAccel(ctx context.Context, binary, cacheDir string, log *slog.Logger) (string, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if v := os.Getenv(EnvAccel); v != "" {
		switch v {
		case "kvm", "hvf", "whpx", "tcg":
			return v, nil
		}
		return "", fmt.Errorf("%s=%q: want kvm, hvf, whpx or tcg", EnvAccel, v)
	}
	accel := nativeAccel()
	if accel == "" {
		return "tcg", nil
	}
	path, err := exec.LookPath(binary)
	if err != nil {
		return "", notInstalled(binary, err)
	}
	key := probeKey(path, accel)
	var cache map[string]probeRecord
	cacheFile := ""
	if cacheDir != "" {
		cacheFile = filepath.Join(cacheDir, "accel-probe.json")
		if b, err := os.ReadFile(cacheFile); err == nil {
			json.Unmarshal(b, &cache)
		}
		if r, ok := cache[key]; ok {
			if r.Works {
				return r.Accel, nil
			}
			return "tcg", nil
		}
	}
	work := cacheDir
	if work == "" {
		work = os.TempDir()
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return "", fmt.Errorf("accelerator probe cache %s: %w", work, err)
	}
	perr := ProbeAccel(ctx, path, accel, work, probeTimeout)
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	rec := probeRecord{Accel: accel, Works: perr == nil, ProbedAt: time.Now().UTC()}
	if perr != nil {
		rec.Error = perr.Error()
		log.Warn("hardware accelerator does not work; using tcg (set GRIDLORD_ACCEL to override)", "accel", accel, "err", perr)
	}
	if cacheFile != "" {
		if cache == nil {
			cache = make(map[string]probeRecord)
		}
		cache[key] = rec
		b, _ := json.MarshalIndent(cache, "", "\t")
		if err := atomicfile.Write(cacheFile, b, 0o644); err != nil {
			log.Warn("cannot cache the accelerator probe", "file", cacheFile, "err", err)
		}
	}
	if rec.Works {
		return accel, nil
	}
	return "tcg", nil
}

func probeKey(path, accel string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00", path, accel, runtime.GOOS)
	if st, err := os.Stat(path); err == nil {
		fmt.Fprintf(h, "%d\x00%d\x00", st.Size(), st.ModTime().UnixNano())
	}
	if rel, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h.Write(rel)
	}
	return accel + "-" + hex.EncodeToString(h.Sum(nil))[:16]
}
