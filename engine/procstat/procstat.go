// Package procstat measures a process's live figures for a node's status:
// how long it has run, its CPU use and its resident memory (RSS). On Linux
// it reads /proc/PID/stat, /proc/PID/status and /proc/uptime; elsewhere the
// figures are unknown (ErrUnsupported).
package procstat

import (
	"errors"
	"sync"
	"time"
)

// ErrUnsupported: this OS's figures are not measured.
var ErrUnsupported = errors.New("procstat: process figures are not measured on this OS")

// Figures are a process's live figures.
type Figures struct {
	// Uptime is how long the process has run.
	Uptime time.Duration
	// CPU is its CPU use in percent of one core: over the time since the
	// previous Measure of the same process by the same Meter, or since it
	// started for the first.
	CPU float64
	// RSS is its resident memory in bytes.
	RSS int64
}

// sample is one reading of a process.
type sample struct {
	uptime time.Duration // since the process started
	cpu    time.Duration // user + system time used
	rss    int64
}

// Meter measures processes, remembering each one's last sample for its CPU
// use. It is safe for concurrent use; the zero value is ready.
type Meter struct {
	mu   sync.Mutex
	last map[int]sample
}

// Measure returns pid's figures.
func (m *Meter) Measure(pid int) (Figures, error) {
	s, err := read(pid)
	if err != nil {
		return Figures{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.last == nil {
		m.last = map[int]sample{}
	}
	prev, ok := m.last[pid]
	if !ok || prev.uptime > s.uptime || prev.cpu > s.cpu {
		prev = sample{} // first reading, or the pid is another process now
	}
	m.last[pid] = s
	f := Figures{Uptime: s.uptime, RSS: s.rss}
	if wall := s.uptime - prev.uptime; wall > 0 {
		f.CPU = 100 * float64(s.cpu-prev.cpu) / float64(wall)
	}
	return f, nil
}

// Forget drops what the meter remembers of pid (it ended).
func (m *Meter) Forget(pid int) {
	m.mu.Lock()
	delete(m.last, pid)
	m.mu.Unlock()
}
