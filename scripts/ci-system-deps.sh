#!/usr/bin/env bash
# System packages the test suite needs beyond PyPI, from Debian's archive: a real rsyslog with its TLS
# driver (the SIEM delivery tests start private instances on loopback), the openssl CLI (their
# certificates), a headless Chromium with its driver (the HTML report is opened in a real browser) and a
# Java 17 runtime (the Spark parity tests run the feature stage on a local Spark session).
# Run as root; does nothing when every one of them is already installed.
set -euo pipefail
packages=(rsyslog rsyslog-gnutls openssl chromium chromium-driver openjdk-17-jre-headless)
missing=()
for package in "${packages[@]}"; do
  [ "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null)" = "install ok installed" ] || missing+=("$package")
done
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
