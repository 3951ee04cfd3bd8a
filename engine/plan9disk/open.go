package plan9disk

import (
	"fmt"

	"gridlord/engine/qcow2"
)

// OpenImage opens a raw or qcow2 disk image file (qcow2 writes go to the
// top image of its backing chain, as engine/qcow2 does them) and reads its
// Plan 9 partition table. The returned function closes the file.
func OpenImage(path string, writable bool) (*Image, func() error, error) {
	open := qcow2.OpenReadOnly
	if writable {
		open = qcow2.Open
	}
	d, err := open(path)
	if err != nil {
		return nil, nil, err
	}
	im, err := Open(d)
	if err != nil {
		d.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return im, d.Close, nil
}
