package qcow2

// Info describes one image of a backing chain.
type Info struct {
	// Path is where the image was opened; backing paths are resolved
	// against the directory of the image that names them.
	Path string `json:"path"`
	// Format is FormatQcow2 or FormatRaw.
	Format string `json:"format"`
	// VirtualSize is the size of the disk the guest sees, in bytes.
	VirtualSize int64 `json:"virtual_size"`
	// FileSize is the length of the image file in bytes.
	FileSize int64 `json:"file_size"`
	// Version is the qcow2 version (2 or 3); 0 for raw.
	Version int `json:"version,omitempty"`
	// Compat is qemu-img's name for the version ("0.10" or "1.1"); "" for raw.
	Compat string `json:"compat,omitempty"`
	// ClusterSize is the qcow2 cluster size in bytes; 0 for raw.
	ClusterSize int64 `json:"cluster_size,omitempty"`
	// RefcountBits is the width of a refcount entry; 0 for raw.
	RefcountBits int `json:"refcount_bits,omitempty"`
	// LazyRefcounts reports the lazy-refcounts compatible feature bit.
	LazyRefcounts bool `json:"lazy_refcounts,omitempty"`
	// BackingFile is the backing file name as recorded in the image ("" if
	// none).
	BackingFile string `json:"backing_file,omitempty"`
	// BackingFormat is the backing file's format as recorded in the image
	// ("" if not recorded).
	BackingFormat string `json:"backing_format,omitempty"`
	// Backing describes the next image down the chain; nil at the base.
	Backing *Info `json:"backing,omitempty"`
}

// Chain returns the images of the chain, top first.
func (in *Info) Chain() []*Info {
	var c []*Info
	for p := in; p != nil; p = p.Backing {
		c = append(c, p)
	}
	return c
}

// Info describes the image and its backing chain.
func (im *Image) Info() Info {
	im.mu.Lock()
	defer im.mu.Unlock()
	in := Info{Path: im.path, Format: im.format, VirtualSize: im.size, FileSize: im.fileSize}
	if h := im.h; h != nil {
		in.Version = int(h.version)
		in.Compat = h.compat()
		in.ClusterSize = im.cs
		in.RefcountBits = 1 << h.refcountOrder
		in.LazyRefcounts = h.compatible&compatLazyRefcounts != 0
		in.BackingFile, in.BackingFormat = h.backingFile, h.backingFormat
	}
	if im.backing != nil {
		b := im.backing.Info()
		in.Backing = &b
	}
	return in
}
