#!/bin/sh
# Builds the simulated Sparks' Debian root file system into DEST (atomically: DEST.tmp, then
# a rename). Usage: build_rootfs.sh DEST SUITE MIRROR PKG1,PKG2,...
set -eu
dest=$1 suite=$2 mirror=$3 packages=$4
tmp="$dest.tmp"
rm -rf "$tmp"
mkdir -p "$(dirname "$dest")"
debootstrap --variant=minbase --include="$packages" "$suite" "$tmp" "$mirror"

# Docker inside an nspawn node: no iptables, no bridge (lab-feasibility.md); overlay2 storage on
# the host directory the lab binds to /var/lib/docker (lab_nodes), so image layers are shared.
mkdir -p "$tmp/etc/docker"
cat > "$tmp/etc/docker/daemon.json" <<'JSON'
{"iptables": false, "ip6tables": false, "ip-forward": false, "ip-masq": false,
 "bridge": "none", "storage-driver": "overlay2"}
JSON
# Netplan renders for systemd-networkd; each node gets its own machine id at first boot.
chroot "$tmp" systemctl enable systemd-networkd.service >/dev/null 2>&1
: > "$tmp/etc/machine-id"
rm -f "$tmp/var/lib/dbus/machine-id"
# Keys only; the lab's controller key is put in root's authorized_keys per node.
mkdir -p "$tmp/etc/ssh/sshd_config.d"
printf 'PasswordAuthentication no\nPermitRootLogin prohibit-password\nUseDNS no\n' \
  > "$tmp/etc/ssh/sshd_config.d/10-lab.conf"
# No per-user systemd: user@.service cannot start in an nspawn node on a cgroup-v1 host, and
# pam_systemd then stalls new SSH sessions for up to a minute.
sed -i '/pam_systemd.so/d' "$tmp/etc/pam.d/common-session"
apt-get -o RootDir="$tmp" clean >/dev/null 2>&1 || true
printf 'suite=%s\npackages=%s\n' "$suite" "$packages" > "$tmp/etc/dgxspark-lab-rootfs"
mv "$tmp" "$dest"
