#!/bin/bash
# Build the gpuwatchd Debian package into dist/ (the .deb, .changes and .buildinfo).
#
#   scripts/build-deb.sh [--lint]
#
# dpkg-buildpackage wants ./debian, which this repository keeps in packaging/debian so that
# the unit (systemd/gpuwatchd.service) has one source. So: copy the tree into a temporary
# stage, put packaging/debian there as debian/ and the unit into it, fetch the vendored
# wheels (pinned by version and SHA-256, packaging/vendor-requirements.txt), build with the
# system Python, copy the results to dist/. The work tree is never touched outside dist/
# and build/vendor-wheels/ (a download cache, git-ignored).
#
# --lint: then run lintian --pedantic on the .changes; any error or warning fails the build.
# Environment: DIST_DIR (default ./dist), GPUWATCHD_WHEEL_CACHE (default ./build/vendor-wheels).
set -euo pipefail

# pybuild must see Debian's /usr/bin/python3 (3.11, with python3-systemd etc.), never a
# pyenv or venv interpreter earlier on PATH: it picks "python3" from PATH.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

root=$(cd "$(dirname "$0")/.." && pwd)
dist=${DIST_DIR:-$root/dist}
cache=${GPUWATCHD_WHEEL_CACHE:-$root/build/vendor-wheels}
lint=no
for arg in "$@"; do
    case $arg in
        --lint) lint=yes ;;
        *) echo "usage: $0 [--lint]" >&2; exit 2 ;;
    esac
done

need() {  # need COMMAND APT-PACKAGE
    command -v "$1" >/dev/null 2>&1 || {
        echo "build-deb.sh: '$1' not found: apt-get install $2" >&2; exit 1; }
}
need dpkg-buildpackage dpkg-dev
need dh debhelper
need pybuild "dh-python pybuild-plugin-pyproject"
need python3 python3
python3 -m pip --version >/dev/null 2>&1 || {
    echo "build-deb.sh: pip for /usr/bin/python3 not found: apt-get install python3-pip" >&2
    exit 1; }
[ "$lint" = no ] || need lintian lintian

stage=$(mktemp -d "${TMPDIR:-/tmp}/gpuwatchd-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
src=$stage/gpuwatchd
mkdir -p "$src" "$stage/home"

# The tree as git sees it (tracked + untracked-but-not-ignored): no .venv, dist/, caches.
if git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
    (cd "$root" && git ls-files -z --cached --others --exclude-standard) |
        (cd "$root" && tar --null --ignore-failed-read -T - -cf - 2>/dev/null) |
        tar -C "$src" -xf -
else
    tar -C "$root" --exclude=./.git --exclude=./.venv --exclude=./dist --exclude=./build \
        --exclude=__pycache__ -cf - . | tar -C "$src" -xf -
fi

cp -a "$root/packaging/debian" "$src/debian"
cp "$root/systemd/gpuwatchd.service" "$src/debian/gpuwatchd.service"

version=$(cd "$src" && dpkg-parsechangelog -S Version)
code_version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$src/gpuwatchd/__init__.py")
if [ "$version" != "$code_version" ]; then
    echo "build-deb.sh: packaging/debian/changelog says $version but gpuwatchd/__init__.py" \
         "says $code_version: add a changelog entry (dch -v $code_version)" >&2
    exit 1
fi

# Vendored wheels: from the local cache when it has them (offline rebuilds), else from PyPI.
# --require-hashes: a wheel whose SHA-256 differs from the pinned one is refused.
reqs=$root/packaging/vendor-requirements.txt
mkdir -p "$cache" "$src/packaging/vendor"
fetch() {  # fetch DEST [PIP OPTIONS]: pip's own config files are ignored (reproducible)
    PIP_CONFIG_FILE=/dev/null python3 -m pip download --quiet --disable-pip-version-check \
        --no-deps --only-binary=:all: --require-hashes --dest "$1" -r "$reqs" "${@:2}" \
        >> "$stage/pip.log" 2>&1
}
if ! fetch "$src/packaging/vendor" --no-index --find-links "$cache"; then
    fetch "$cache" && fetch "$src/packaging/vendor" --no-index --find-links "$cache" || {
        cat "$stage/pip.log" >&2
        echo "build-deb.sh: could not fetch the wheels pinned in $reqs" >&2
        exit 1
    }
fi

# A clean environment: no pip configuration, no virtualenv, no user site-packages.
(cd "$src" && env -i PATH="$PATH" HOME="$stage/home" LC_ALL=C.UTF-8 \
    DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-}" \
    dpkg-buildpackage -us -uc -b) > "$stage/build.log" 2>&1 || {
    tail -n 60 "$stage/build.log" >&2
    echo "build-deb.sh: dpkg-buildpackage failed (last 60 lines above)" >&2
    exit 1
}

mkdir -p "$dist"
rm -f "$dist"/gpuwatchd_*
cp "$stage"/gpuwatchd_"$version"_*.deb "$stage"/gpuwatchd_"$version"_*.changes \
   "$stage"/gpuwatchd_"$version"_*.buildinfo "$dist"/
ls -1 "$dist"/gpuwatchd_*

if [ "$lint" = yes ]; then
    lintian --pedantic --display-info --fail-on error,warning "$dist"/gpuwatchd_*.changes
fi
