# Shortcuts; the scripts are the source of truth.
.PHONY: run test build fuzz windows

run:
	scripts/run.sh

test:
	scripts/test.sh

build:
	go build -o bin/gridlord ./cmd/gridlord

fuzz:
	scripts/fuzz.sh 30s

# Cross-build the GUI for Windows (needs gcc-mingw-w64-x86-64, installed by scripts/setup.sh).
windows:
	CGO_ENABLED=1 GOOS=windows GOARCH=amd64 CC=x86_64-w64-mingw32-gcc go build -ldflags -H=windowsgui -o bin/gridlord.exe ./cmd/gridlord
