#!/bin/sh
# Builds the lab's stand-in vLLM base image as a root-file-system tarball (for docker import):
# Debian + Python + real Ray + the real vLLM 0.33.0 Python sources (from its PyPI sdist, so
# image patches apply to them for real) + the stand-in `vllm` command and the plan engine.
# Usage: build_standin.sh DEST.tar SUITE MIRROR RAY_VERSION SDIST_URL SDIST_SHA256 STANDIN_DIR
#                         PLAN_DIR PYTHON
# Wheels and the sdist are downloaded on the host (its pip and CA settings apply), then
# installed into the root file system offline.
set -eu
dest=$1 suite=$2 mirror=$3 ray=$4 url=$5 sha=$6 standin=$7 plan=$8 python=$9
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/root"
debootstrap --variant=minbase --include=python3,python3-pip,ca-certificates,procps,iproute2 \
  "$suite" "$root" "$mirror"
"$python" -m pip download --quiet --disable-pip-version-check --only-binary :all: \
  --dest "$root/tmp/wheels" "ray==$ray" 2>&1 | grep -v '^WARNING: Location' || true
chroot "$root" env PIP_CONFIG_FILE=/dev/null python3 -m pip install --quiet \
  --break-system-packages --no-cache-dir --no-index --find-links /tmp/wheels "ray==$ray"
rm -rf "$root/tmp/wheels"
site="$root/usr/local/lib/python3.11/dist-packages"
curl -sSfL -o "$work/vllm.tar.gz" "$url"
echo "$sha  $work/vllm.tar.gz" | sha256sum -c - >/dev/null
version=$(basename "$url" .tar.gz | sed 's/^vllm-//')
mkdir -p "$work/src" "$site/vllm-$version.dist-info"
tar -xzf "$work/vllm.tar.gz" -C "$work/src" "vllm-$version/vllm"
mv "$work/src/vllm-$version/vllm" "$site/vllm"
printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s\nSummary: vLLM %s Python sources without kernels (dgxspark lab stand-in image)\n' \
  "$version" "$version" > "$site/vllm-$version.dist-info/METADATA"
printf 'dgxspark-lab\n' > "$site/vllm-$version.dist-info/INSTALLER"
: > "$site/vllm-$version.dist-info/RECORD"
mkdir -p "$root/usr/local/lib/dgxspark"
cp "$standin/vllm_standin.py" "$root/usr/local/lib/dgxspark/"
cp -r "$plan" "$root/usr/local/lib/dgxspark/plan"
find "$root/usr/local/lib/dgxspark" -name '__pycache__' -prune -exec rm -rf {} +
printf '#!/bin/sh\nexec python3 /usr/local/lib/dgxspark/vllm_standin.py "$@"\n' > "$root/usr/local/bin/vllm"
chmod 755 "$root/usr/local/bin/vllm"
printf 'dgxspark lab stand-in: vLLM %s sources, ray %s, no GPU, no kernels\n' "$version" "$ray" \
  > "$root/etc/dgxspark-standin"
rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"* "$root/root/.cache"
tar -C "$root" -cf "$dest.tmp" .
mv "$dest.tmp" "$dest"
