#!/usr/bin/env bash
# System packages the test suite needs beyond PyPI, from Debian's archive: a real rsyslog with its TLS
# driver (the SIEM delivery tests start private instances on loopback) and the openssl CLI (their
# certificates). Run as root; does nothing when they are already installed.
set -euo pipefail
if command -v rsyslogd >/dev/null && command -v openssl >/dev/null && dpkg -s rsyslog-gnutls >/dev/null 2>&1; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends rsyslog rsyslog-gnutls openssl >/dev/null
