#!/usr/bin/env bash
# The Debian package test: builds the package from the existing debug build (scripts/build-deb.sh
# with OTPD_DEB_PROFILE=dev: no release build), unpacks it into a temporary root (dpkg-deb -x for
# the files, -e for the maintainer scripts) and checks what an operator gets: the binary, the unit,
# the sample configuration as a conffile, and that the packaged binary passes `check-config` on the
# packaged configuration. As root it also runs postinst (and postrm purge) against that root
# (DPKG_ROOT), which must create the user, the data directory and the pepper, and leave them alone
# when run again.
#
#   scripts/test-deb.sh        # ends with `deb: N passed, N failed[, N skipped]`
set -uo pipefail
cd "$(dirname "$0")/.."

passed=0 failed=0 skipped=0
check() { # check NAME COMMAND...: one result line per check
  local name=$1; shift
  if "$@" >/tmp/otpd-deb-check.$$ 2>&1; then
    passed=$((passed + 1)); echo "ok - $name"
  else
    failed=$((failed + 1)); echo "not ok - $name"; sed 's/^/    /' /tmp/otpd-deb-check.$$ | tail -n 20
  fi
}
skip() { skipped=$((skipped + 1)); echo "SKIPPED deb::$1: $2"; }
finish() { rm -f /tmp/otpd-deb-check.$$; echo "deb: $passed passed, $failed failed, $skipped skipped"; [ "$failed" = 0 ]; }

if ! command -v dpkg-deb >/dev/null 2>&1; then
  skip all "dpkg-deb is not installed"; finish; exit $?
fi
deb=$(OTPD_DEB_PROFILE=dev scripts/build-deb.sh 2>/tmp/otpd-deb-build.$$ | tail -n1)
if [ -z "$deb" ] || [ ! -f "$deb" ]; then
  cat /tmp/otpd-deb-build.$$ >&2; rm -f /tmp/otpd-deb-build.$$
  failed=$((failed + 1)); echo "not ok - the package builds"; finish; exit $?
fi
rm -f /tmp/otpd-deb-build.$$
passed=$((passed + 1)); echo "ok - the package builds ($deb, $(du -k "$deb" | cut -f1) KiB)"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
dpkg-deb -x "$deb" "$root"
dpkg-deb -e "$deb" "$root/DEBIAN"
unit="$root/usr/lib/systemd/system/otpd.service"

check "the binary is /usr/bin/otpd and runs" "$root/usr/bin/otpd" --version
check "control: name, version and dependencies" \
  bash -c "dpkg-deb -f '$deb' Package Version Depends | tee /dev/stderr | grep -qx 'Package: otpd'"
check "the sample configuration is a conffile" grep -qx /etc/otpd/otpd.toml "$root/DEBIAN/conffiles"
check "the packaged configuration is packaging/otpd.toml" cmp "$root/etc/otpd/otpd.toml" packaging/otpd.toml
check "the unit runs /usr/bin/otpd on /etc/otpd/otpd.toml" \
  grep -qx 'ExecStart=/usr/bin/otpd serve --config /etc/otpd/otpd.toml' "$unit"
check "the unit checks the configuration before start" \
  grep -qx 'ExecStartPre=/usr/bin/otpd check-config --config /etc/otpd/otpd.toml' "$unit"
check "the unit runs as the package's user otpd, not a dynamic one" \
  bash -c "grep -qx 'User=otpd' '$unit' && grep -qx 'Group=otpd' '$unit' && ! grep -q DynamicUser '$unit'"
check "nothing refers to /usr/local" bash -c "! grep -rq /usr/local '$unit' '$root/DEBIAN'"
check "the unit's documentation link is packaged" test -f "$root/usr/share/doc/otpd/operations.md"
for script in postinst prerm postrm; do
  check "maintainer script $script is executable shell" \
    bash -c "test -x '$root/DEBIAN/$script' && sh -n '$root/DEBIAN/$script'"
done

# The packaged binary on the packaged configuration. The pepper path of the sample exists only
# under systemd (LoadCredential), so a temporary pepper stands in for it.
pepper=$(mktemp)
head -c 48 /dev/urandom > "$pepper"
check "the packaged binary passes check-config on the packaged configuration" bash -c "
  out=\$(env -i PATH=/usr/bin:/bin OTPD_PEPPER_FILE='$pepper' '$root/usr/bin/otpd' check-config --config '$root/etc/otpd/otpd.toml') &&
  echo \"\$out\" && echo \"\$out\" | grep -qx 'mode = production'"
rm -f "$pepper"

if command -v systemd-analyze >/dev/null 2>&1; then
  check "systemd-analyze verify accepts the packaged unit" bash -c "
    sed 's#/usr/bin/otpd#$root/usr/bin/otpd#g' '$unit' > '$root/otpd.service' &&
    out=\$(systemd-analyze verify '$root/otpd.service' 2>&1) && echo \"\$out\" && test -z \"\$out\""
else
  skip systemd_analyze "systemd-analyze is not installed"
fi

if [ "$(id -u)" = 0 ] && command -v useradd >/dev/null 2>&1; then
  # A minimal /etc in the temporary root, for `useradd --prefix`.
  mkdir -p "$root/etc"
  grep '^root:' /etc/passwd > "$root/etc/passwd"
  grep '^root:' /etc/group > "$root/etc/group"
  echo 'root:*:19000:0:99999:7:::' > "$root/etc/shadow"
  echo 'root:*::' > "$root/etc/gshadow"
  chmod 0640 "$root/etc/shadow" "$root/etc/gshadow"
  check "postinst configure creates the user, data directory and pepper" bash -c "
    DPKG_ROOT='$root' sh '$root/DEBIAN/postinst' configure &&
    uid=\$(awk -F: '\$1==\"otpd\"{print \$3}' '$root/etc/passwd') && test -n \"\$uid\" &&
    grep -q '^otpd:.*:/var/lib/otpd:/usr/sbin/nologin\$' '$root/etc/passwd' &&
    test \"\$(stat -c '%a %u' '$root/var/lib/otpd')\" = \"700 \$uid\" &&
    test \"\$(stat -c '%a %u %s' '$root/etc/otpd/pepper')\" = \"600 \$uid 48\" &&
    test \"\$(stat -c '%a %U' '$root/etc/otpd/otpd.toml')\" = '640 root'"
  check "postinst run again (upgrade) keeps the pepper and the user" bash -c "
    before=\$(sha256sum < '$root/etc/otpd/pepper') &&
    DPKG_ROOT='$root' sh '$root/DEBIAN/postinst' configure 0.1.0-1 &&
    test \"\$(sha256sum < '$root/etc/otpd/pepper')\" = \"\$before\" &&
    test \"\$(grep -c '^otpd:' '$root/etc/passwd')\" = 1"
  check "postrm purge removes the data and the pepper" bash -c "
    DPKG_ROOT='$root' sh '$root/DEBIAN/postrm' purge &&
    test ! -e '$root/var/lib/otpd' && test ! -e '$root/etc/otpd/pepper'"
else
  skip postinst "not root (or no useradd): the maintainer scripts were only syntax-checked"
fi

finish
