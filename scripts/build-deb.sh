#!/usr/bin/env bash
# Builds the Debian package of otpd with cargo-deb (installed from crates.io when missing).
#
#   scripts/build-deb.sh            # release build, then target/debian/otpd_<version>-1_<arch>.deb
#   OTPD_DEB_PROFILE=dev scripts/build-deb.sh
#                                   # package the existing debug build (target/debug/otpd) without
#                                   # building anything: what the package test uses, because a
#                                   # release build takes minutes here. Not for production.
#
# Prints the path of the package on standard output (everything else goes to standard error).
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE="${OTPD_DEB_PROFILE:-release}"
if ! cargo deb --version >/dev/null 2>&1; then
  echo "== installing cargo-deb from crates.io (once; takes a few minutes)" >&2
  cargo install cargo-deb --version 3.8.0 --locked >&2
fi

# The packaged unit: the binary in /usr/bin, and the package's system user (made by postinst,
# owner of /var/lib/otpd and the pepper) instead of a dynamic one.
mkdir -p target/deb-staging
{
  echo "# systemd unit of the otpd Debian package. Edit /etc/otpd/otpd.toml (oidc_issuer, audience,"
  echo "# smtp_url, ...), then: systemctl enable --now otpd"
  sed -n '/^\[Unit\]/,$p' packaging/otpd.service |
    sed -e 's#/usr/local/bin/otpd#/usr/bin/otpd#g' \
        -e 's#^DynamicUser=yes$#User=otpd\nGroup=otpd#' \
        -e 's#^\# An unprivileged user created by systemd;#\# The system user made by the package;#'
} > target/deb-staging/otpd.service
grep -q '^User=otpd$' target/deb-staging/otpd.service || { echo "unit not rewritten" >&2; exit 1; }

out_dir=target/debian
mkdir -p "$out_dir"
if [ "$PROFILE" = dev ]; then
  [ -x target/debug/otpd ] || cargo build --bin otpd >&2
  # --no-build packages target/debug/otpd as it is; --strip drops the line tables (~10x smaller).
  cargo deb --profile dev --no-build --strip --output "$out_dir" >&2
else
  cargo deb --locked --output "$out_dir" >&2
fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
ls -t "$out_dir"/otpd_"$version"-*.deb | head -n1
