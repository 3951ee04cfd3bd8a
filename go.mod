module gridlord

go 1.25.0

require (
	fyne.io/fyne/v2 v2.7.1 // indirect
	github.com/containers/gvisor-tap-vsock v0.8.9 // indirect
	github.com/digitalocean/go-qemu v0.0.0-20250212194115-ee9b0668d242 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/hugelgupf/p9 v0.3.0 // indirect
)
