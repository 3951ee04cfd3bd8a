package procstat

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of /proc/PID/stat's times (USER_HZ): 100 on every
// Linux architecture Go supports (it is fixed in the kernel's ABI, whatever
// the kernel's own HZ).
const clockTick = time.Second / 100

// read samples pid from /proc.
func read(pid int) (sample, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return sample{}, err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// the fields that follow start after the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return sample{}, fmt.Errorf("procstat: /proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state): utime is field 14, stime 15, starttime 22.
	if len(f) < 20 {
		return sample{}, fmt.Errorf("procstat: /proc/%d/stat: %d fields", pid, len(f)+2)
	}
	num := func(field int) (int64, error) { return strconv.ParseInt(f[field-3], 10, 64) }
	utime, err1 := num(14)
	stime, err2 := num(15)
	start, err3 := num(22)
	if err := firstErr(err1, err2, err3); err != nil {
		return sample{}, fmt.Errorf("procstat: /proc/%d/stat: %w", pid, err)
	}
	up, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return sample{}, err
	}
	boot, err := strconv.ParseFloat(strings.Fields(string(up) + " 0")[0], 64)
	if err != nil {
		return sample{}, fmt.Errorf("procstat: /proc/uptime: %w", err)
	}
	s := sample{
		uptime: time.Duration(boot*float64(time.Second)) - time.Duration(start)*clockTick,
		cpu:    time.Duration(utime+stime) * clockTick,
	}
	if s.uptime < 0 {
		s.uptime = 0
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return sample{}, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return sample{}, fmt.Errorf("procstat: /proc/%d/status: VmRSS %q: %w", pid, v, err)
			}
			s.rss = kb << 10
		}
	}
	return s, nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
