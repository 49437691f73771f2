#!/bin/sh
# Installs the Debian packages named on the command line that are not installed yet.
# Used by `make deps`; silent when everything is present.
missing=""
for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "diffscope: installing missing Debian packages:$missing" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2 || exit 1
$SUDO apt-get install -y -qq --no-install-recommends $missing >&2 || {
    echo "diffscope: apt-get could not install:$missing" >&2; exit 1; }
