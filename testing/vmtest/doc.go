// Package vmtest holds the VM runtime's integration tests: stand-in Linux
// guests (gridlord/testing/standin) booted through engine/qemu's
// Supervisor, with consoles through engine/console and NICs on an
// engine/network switch. They run only with GRIDLORD_INTEGRATION=1, under
// TCG (GRIDLORD_ACCEL=tcg is set by the tests).
package vmtest
