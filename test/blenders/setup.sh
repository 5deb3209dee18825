#!/usr/bin/env bash
# Installs a newer Blender from a newer Debian release into a chroot and writes a wrapper that runs
# it as if it were installed here (same paths, same working folder), for the tests' SKYFARM_BLENDER.
#
#   test/blenders/setup.sh trixie|sid [FOLDER …]
#
# trixie has Blender 4.3, sid 5.x. The chroot is /srv/<suite> (CHROOT_DIR=/other/dir for another
# parent folder); the wrapper /usr/local/bin/blender-<suite> (WRAPPER_DIR for another folder).
# The folders named (and /tmp, /root, /home) are bind-mounted at the same paths inside, so the files
# the tests make are where Blender looks. Needs root. Safe to run again: it only adds what is missing.
set -euo pipefail
suite="${1:?usage: $0 trixie|sid [FOLDER …]}"
shift
root="${CHROOT_DIR:-/srv}/$suite"
wrapper="${WRAPPER_DIR:-/usr/local/bin}/blender-$suite"
mirror="${DEBIAN_MIRROR:-}"
if [ -z "$mirror" ]; then
  # The mirror this machine's apt uses.
  mirror="$(grep -rhoE '^(URIs:|deb) +https?://[^ ]+/debian/?$' /etc/apt/sources.list /etc/apt/sources.list.d/ \
    2>/dev/null | head -n 1 | awk '{print $2}' || true)"
  mirror="${mirror:-http://deb.debian.org/debian}"
fi

if ! command -v debootstrap >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap
fi
if [ ! -x "$root/usr/bin/apt-get" ]; then
  echo "blenders: debootstrap $suite from $mirror into $root"
  rm -rf "$root"
  mkdir -p "$(dirname "$root")"
  debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$root.log" 2>&1 || {
    tail -n 30 "$root.log"
    exit 1
  }
fi

bind() {
  local source="$1" target="$root$1"
  [ -e "$source" ] || return 0
  mkdir -p "$target"
  # A mount left by an earlier run may show a folder since deleted and made again (a fresh clone at
  # the same path): the chroot would see the old, empty one. Mounted means the same folder, else again.
  if mountpoint -q "$target"; then
    [ "$(stat -c '%d:%i' "$source")" = "$(stat -c '%d:%i' "$target")" ] && return 0
    echo "blenders: $target shows a folder that is gone; binding $source again"
    umount -l "$target"
  fi
  mount --bind "$source" "$target"
}
bind /proc
bind /dev
bind /dev/pts
bind /dev/shm
bind /tmp
bind /root
bind /home
for folder in "$@"; do bind "$(readlink -f "$folder")"; done
ln -sf /proc/self/mounts "$root/etc/mtab"

if [ ! -x "$root/usr/bin/blender" ]; then
  packages="blender python3 xvfb xauth libegl1 libegl-mesa0"
  # sid's Blender prints a traceback at every start without these.
  [ "$suite" = "sid" ] && packages="$packages python3-cattr python3-requests"
  echo "blenders: installing $packages in $root"
  # The mirror may serve a frozen snapshot whose Release file has expired.
  chroot "$root" apt-get -o Acquire::Check-Valid-Until=false update >"$root.log" 2>&1 &&
    DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get install -y --no-install-recommends $packages \
      >>"$root.log" 2>&1 || {
    tail -n 30 "$root.log"
    exit 1
  }
  chroot "$root" apt-get clean
fi

cat >"$wrapper.new" <<WRAPPER
#!/bin/sh
# Blender from Debian $suite in the chroot $root (test/blenders/setup.sh): same paths, same working folder.
# Its Mesa keeps its own shader cache: caches of the host's and the other chroot's Mesa versions in one
# folder once ended an Eevee render with SIGBUS.
export MESA_SHADER_CACHE_DIR="\${MESA_SHADER_CACHE_DIR:-\${HOME:-/root}/.cache/skyfarm-mesa-$suite}"
exec chroot $root /bin/sh -c 'cd "\$0" 2>/dev/null || cd /; exec /usr/bin/blender "\$@"' "\$PWD" "\$@"
WRAPPER
chmod 755 "$wrapper.new"
mv -f "$wrapper.new" "$wrapper" # in one step: a test may be starting this Blender right now
"$wrapper" --version 2>/dev/null | head -n 1 | sed "s|^|blenders: $wrapper: |"
