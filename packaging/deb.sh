#!/bin/sh
# Builds the lakka Debian package (make deb): the static binary for GOARCH
# (default: this machine's), then go tool nfpm with packaging/nfpm.yaml.
# Prints the path of the package: $DIST/lakka_<version>_<arch>.deb.
#
# Environment (the Makefile sets them): GO, VERSION (git describe),
# LDFLAGS, DIST (default dist), DEB_MAINTAINER; GOARCH for another
# architecture.
set -eu
cd "$(dirname "$0")/.."
go=${GO:-go}
dist=${DIST:-dist}
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo devel)}
ldflags=${LDFLAGS:-"-X main.version=$version"}
maintainer=${DEB_MAINTAINER:-"Lakka maintainers <maintainers@lakka-cache.invalid>"}
goarch=$("$go" env GOARCH)
goarm=
case $goarch in
386) arch=i386 ;;
arm) arch=armhf goarm=7 ;; # Debian's armhf is ARMv7 with hardware floats
ppc64le) arch=ppc64el ;;
mips64le) arch=mips64el ;;
mipsle) arch=mipsel ;;
*) arch=$goarch ;;
esac
deb_version=$(packaging/debversion.sh "$version")
# The files' times in the package: the commit's, so that a build of one
# commit gives the same package.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
CGO_ENABLED=0 GOOS=linux GOARCH=$goarch GOARM=$goarm \
	"$go" build -trimpath -ldflags "$ldflags" -o "$tmp/lakka" ./cmd/lakka

mkdir -p "$dist"
out=$dist/lakka_${deb_version}_$arch.deb
rm -f "$out"
# nfpm runs on this machine whatever GOARCH the package is for.
LAKKA_BIN=$tmp/lakka DEB_VERSION=$deb_version DEB_ARCH=$arch DEB_MAINTAINER=$maintainer \
	GOOS= GOARCH= GOARM= \
	"$go" tool nfpm package --config packaging/nfpm.yaml --packager deb --target "$out" >/dev/null
echo "$out"
