//go:build !linux

package procstat

func read(int) (sample, error) { return sample{}, ErrUnsupported }
