#!/usr/bin/env bash
# Builds the Debian package (cargo deb) and checks what it holds with dpkg-deb -c.
# With --install (as root), also installs it and runs the installed binary.
#
# Usage: contrib/deb/build.sh [--install]        → target/debian/nymvisor_<version>_<arch>.deb
set -euo pipefail
cd "$(dirname "$0")/../.."

command -v cargo-deb >/dev/null || cargo install cargo-deb --locked -q
cargo build --release --locked -q -p nymvisor
NV=target/release/nymvisor

# the man page, with the version in its header, and the completions
mkdir -p target/assets
"$NV" man | gzip -9n > target/assets/nymvisor.1.gz
"$NV" completions bash > target/assets/nymvisor.bash
"$NV" completions zsh > target/assets/_nymvisor
"$NV" completions fish > target/assets/nymvisor.fish

cargo deb -p nymvisor --no-build --locked -q
DEB=$(ls -t target/debian/nymvisor_*.deb | head -1)
echo "built $DEB"

contents=$(dpkg-deb -c "$DEB")
for want in \
    ./usr/bin/nymvisor \
    ./usr/share/man/man1/nymvisor.1.gz \
    ./usr/share/bash-completion/completions/nymvisor \
    ./usr/share/zsh/vendor-completions/_nymvisor \
    ./usr/share/fish/vendor_completions.d/nymvisor.fish \
    ./lib/systemd/system/nymvisor@.service \
    ./lib/systemd/system/nymvisor-mirror.service \
    ./lib/systemd/system/nymvisor-mirror.timer \
    ./usr/share/doc/nymvisor/README.md \
    ./usr/share/doc/nymvisor/OPERATOR_GUIDE.md \
    ./usr/share/doc/nymvisor/grafana/nymvisor.json; do
  if ! grep -q " $want\$" <<<"$contents"; then
    echo "missing from $DEB: $want" >&2
    echo "$contents" >&2
    exit 1
  fi
done
version=$(dpkg-deb -f "$DEB" Version)
version=${version%-*}   # the upstream version, without the Debian revision
if ! zcat target/assets/nymvisor.1.gz | grep -q "^\.TH.*$version"; then
  echo "the man page header does not carry the version $version" >&2
  exit 1
fi
echo "contents checked: binary, man page, completions, systemd template, mirror service and timer, docs"

if [ "${1:-}" = --install ]; then
  dpkg -i "$DEB" >/dev/null
  /usr/bin/nymvisor -V | grep -q "nymvisor $version"
  test -f /lib/systemd/system/nymvisor@.service
  getent passwd nym >/dev/null
  echo "installed with dpkg -i: /usr/bin/nymvisor $version, user nym, nymvisor@.service"
fi
