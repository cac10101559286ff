#!/bin/sh
# Prints the Debian package version for a "git describe --tags --always
# --dirty" output (the Makefile's VERSION), one that dpkg accepts and that
# sorts the way the releases do:
#
#   v1.2.3                 1.2.3
#   v1.3.0-rc1             1.3.0~rc1           (before 1.3.0)
#   v1.2.3-4-gabc1234      1.2.3+git4.gabc1234 (after 1.2.3)
#   abc1234 (no tag)       0.0.0~gitabc1234    (before any release)
#   any of them -dirty     ...+dirty or ...dirty after the last part
#   devel (no git)         0.0.0~devel
set -eu
v=${1:?usage: debversion.sh GIT-DESCRIBE}
dirty=
case $v in
*-dirty)
	dirty=yes
	v=${v%-dirty}
	;;
esac
# Commits after a tag: TAG-N-gSHA.
after=
if printf '%s\n' "$v" | grep -Eq -- '-[0-9]+-g[0-9a-f]+$'; then
	sha=${v##*-g}
	v=${v%-g*}
	after="+git${v##*-}.g$sha"
	v=${v%-*}
fi
if [ -z "$after" ] && printf '%s\n' "$v" | grep -Eq '^[0-9a-f]{7,40}$'; then
	# No tag: a bare commit id (a tag of 7 or more hex digits and nothing
	# else would read as one too).
	v="0.0.0~git$v"
else
	case $v in
	v[0-9]*) v=${v#v} ;;
	[0-9]*) ;;
	*) v="0.0.0~$v" ;; # "devel" outside git, or a tag not starting with a digit
	esac
fi
# In the tag, "-" starts a pre-release (sorts before the release, "~")
# and anything dpkg refuses in an upstream version becomes ".".
v=$(printf '%s\n' "$v" | sed -e 's/-/~/g' -e 's/[^A-Za-z0-9.+~]/./g')$after
if [ -n "$dirty" ]; then
	case $v in
	*+*) v="$v.dirty" ;;
	*) v="$v+dirty" ;;
	esac
fi
printf '%s\n' "$v"
