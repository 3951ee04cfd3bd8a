#!/bin/busybox sh
# /init of the Gridlord stand-in guest: a Debian kernel plus busybox, booted
# with -kernel/-initrd. It loads the NIC and power-button modules, takes an
# address by DHCP, prints the ready line and then runs a shell on the console.
/bin/busybox mkdir -p /proc /sys /dev /tmp /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
name=standin
for w in $(cat /proc/cmdline); do
	case "$w" in
	standin.name=*) name="${w#standin.name=}" ;;
	esac
done
hostname "$name"
echo "standin: init started on $name"
for m in $(cat /lib/modules/order); do
	insmod "/lib/modules/$m" || echo "standin: insmod $m failed"
done
ip link set lo up
# Bring the NIC up now: the e1000 link takes seconds to come up, which then
# overlaps with the power-button setup below.
nic=no
ip link set eth0 up 2>/dev/null && nic=yes

# Power off when the ACPI power button (QMP system_powerdown) is pressed.
# The evdev node is opened here, before the ready line, so a press that
# comes any time after the ready line is queued even if the watcher
# subshell has not been scheduled yet. evdev reads whole 24-byte
# input_event records.
pwr=""
for i in $(seq 100); do
	for d in /sys/class/input/input*; do
		[ "$(cat "$d/name" 2>/dev/null)" = "Power Button" ] || continue
		for e in "$d"/event*; do
			[ -e "/dev/input/${e##*/}" ] && pwr="/dev/input/${e##*/}"
		done
	done
	[ -n "$pwr" ] && break
	sleep 0.1
done
if [ -n "$pwr" ]; then
	exec 3<"$pwr"
	(n=$(dd bs=24 count=1 <&3 2>/dev/null | wc -c)
	 if [ "$n" -gt 0 ]; then
		echo "standin: power button pressed, powering off"
		sync; poweroff -f
	 fi) &
	exec 3<&-
else
	echo "standin: no power button found"
fi

ip=none
if [ "$nic" = yes ]; then
	if udhcpc -i eth0 -s /etc/udhcpc.script -q -n -t 20 -T 1 >/tmp/udhcpc.log 2>&1; then
		ip=$(cat /tmp/ip 2>/dev/null)
	else
		echo "standin: dhcp failed"; cat /tmp/udhcpc.log
	fi
fi
echo "GRIDLORD-STANDIN READY name=$name ip=$ip"
export PS1='standin# ' HOME=/ TERM=dumb
while :; do
	sh </dev/console >/dev/console 2>&1
done
