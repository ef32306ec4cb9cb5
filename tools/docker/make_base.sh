#!/usr/bin/env bash
# Make a local stand-in for a stack's CUDA base image where no registry can be reached (CI): a minimal Debian from
# debootstrap with one Python VERSION copied in, imported into the engine as one image. docker/Dockerfile then builds
# on it with only build arguments changed (APT_PACKAGES="" because this base already has its Python). The machine's
# local CA certificates are trusted in the base (PIP_CERT), so pip in the build reaches the registry the way the host
# does. The debootstrapped root is cached apart from the Python, so the stacks' bases (3.8, 3.11) share one.
# Usage: tools/docker/make_base.sh [TAG] [VERSION]   (VERSION default 3.8; env: DOCKER_HOST, PYTHON_PREFIX,
#        DEBIAN_MIRROR, DEBIAN_SUITE, HMKD_DOCKER_CACHE: where the root and base tarballs are kept between runs)
set -euo pipefail
version=${2:-3.8}
tag=${1:-hmkd-ci-base:bookworm-py$version}
suite=${DEBIAN_SUITE:-bookworm}
prefix=${PYTHON_PREFIX:-${PYTHON38_PREFIX:-}}
cache=${HMKD_DOCKER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hmkd/docker}
docker=${DOCKER:-docker}
py=python$version

if "$docker" image inspect "$tag" >/dev/null 2>&1; then
  echo "make_base: $tag already in the engine"; exit 0
fi

if [ -z "$prefix" ]; then  # pyenv's newest $version build, else none
  prefix=$(ls -d "$HOME"/.pyenv/versions/"$version".* 2>/dev/null | sort -V | tail -n 1 || true)
fi
if [ -z "$prefix" ] || [ ! -x "$prefix/bin/$py" ]; then
  echo "make_base: error: no Python $version build to copy in (set PYTHON_PREFIX to a prefix with bin/$py)" >&2
  exit 1
fi

# The mirror this machine's apt already uses (deb822 or one-line sources), unless given.
mirror=${DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  mirror=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n 1 \
    || true)
fi
if [ -z "$mirror" ]; then
  mirror=$(grep -hsE '^deb ' /etc/apt/sources.list | awk '{print $2}' | grep -v security | head -n 1 || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}

mkdir -p "$cache"
tarball=$cache/base-$suite-py$("$prefix/bin/$py" -c 'import platform; print(platform.python_version())').tar
rootfs=$cache/rootfs-$suite.tar
root=
trap 'if [ -n "$root" ]; then rm -rf "$root"; fi' EXIT
new_root() { root=$(mktemp -d /tmp/hmkd-base.XXXXXX); chmod 755 "$root"; }  # it becomes the image's /: not 0700
if [ ! -s "$tarball" ] && [ ! -s "$rootfs" ]; then
  if ! command -v debootstrap >/dev/null; then
    echo "make_base: installing Debian's debootstrap"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  new_root
  # Shared libraries the Python builds link (ssl, ffi, sqlite, readline, ...) and CA certificates for pip.
  libs=ca-certificates,libssl3,libffi8,libsqlite3-0,libreadline8,libncursesw6,libexpat1,libbz2-1.0,liblzma5,zlib1g
  libs=$libs,libuuid1,libnsl2,libtirpc3,libgomp1
  echo "make_base: debootstrap $suite from $mirror (a few minutes; kept as $rootfs)"
  debootstrap --variant=minbase --include="$libs" "$suite" "$root" "$mirror" >"$cache/debootstrap.log" 2>&1 || {
    tail -n 20 "$cache/debootstrap.log" >&2; exit 1; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/tmp/*
  tar -C "$root" --numeric-owner -cf "$rootfs.tmp" .
  mv "$rootfs.tmp" "$rootfs"
  rm -rf "$root"
  root=
fi
if [ ! -s "$tarball" ]; then
  new_root
  tar -C "$root" --numeric-owner -xpf "$rootfs"
  # Python into /usr/local (its prefix is found from the binary's place); tests and site-packages left out.
  mkdir -p "$root/usr/local/bin" "$root/usr/local/lib" "$root/usr/local/include"
  cp -a "$prefix/bin/$py" "$root/usr/local/bin/"
  ln -sf "$py" "$root/usr/local/bin/python3"
  cp -a "$prefix"/lib/libpython3*.so* "$root/usr/local/lib/"
  cp -a "$prefix/include/$py" "$root/usr/local/include/"
  tar -C "$prefix/lib" -cf - --exclude="$py/test" --exclude="$py/*/test" --exclude="$py/*/tests" \
      --exclude="$py/site-packages/*" --exclude="$py/idlelib" --exclude="$py/tkinter" \
      --exclude="$py/turtledemo" --exclude='*.a' "$py" | tar -C "$root/usr/local/lib" -xf -
  chroot "$root" /sbin/ldconfig
  # This machine's own CAs (a TLS-inspecting egress proxy's, say) so pip in the build trusts what the host trusts.
  if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    chroot "$root" /usr/sbin/update-ca-certificates >/dev/null 2>&1
  fi
  chroot --userspec=65534:65534 "$root" "/usr/local/bin/$py" -c \
    'import ssl, sqlite3, ctypes, lzma, bz2, zlib, venv, ensurepip' >/dev/null  # as a non-root user too
  rm -rf "$root"/tmp/*
  tar -C "$root" --numeric-owner -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  rm -rf "$root"
  root=
fi
"$docker" import --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' \
  --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' --change 'ENV PIP_DEFAULT_TIMEOUT=180' \
  --message "debootstrap $suite minbase + Python $version from $prefix" "$tarball" "$tag" >/dev/null
echo "make_base: imported $tag ($(du -h "$tarball" | cut -f1) rootfs)"
