// Package packaging holds no Go code of the agent: its directory holds what the .deb packages and
// scripts/install.sh are made of (deb/: the control template, conffiles and maintainer scripts;
// lib.sh: the shell functions they share with install.sh), and its tests build the packages with
// scripts/deb.sh and check them with the real tools: dpkg-deb -c/-f, dpkg --root into a throw-away
// root (maintainer scripts run without chroot, with DPKG_ROOT set, so the machine's own dpkg
// database and user database are never touched), the armhf binary under qemu-arm-static as an ARMv6
// CPU, systemd-analyze verify and security on the unit, and install.sh into a throw-away root.
//
// The tests need dpkg, systemd (systemd-analyze, systemd-sysusers or useradd) and qemu-arm-static;
// scripts/test.sh installs them, and a test fails, never skips, when one is missing.
package packaging
