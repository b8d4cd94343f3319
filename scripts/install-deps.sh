#!/usr/bin/env bash
# Install what mailmesh needs to build and test, on Debian, as root.
# Non-interactive; debconf is preseeded so that no system slapd or Postfix
# gets configured or started. Quick when everything is already there.
set -euo pipefail
pkgs=(build-essential cmake pkg-config clang clang-format
      libevent-dev libprotobuf-c-dev protobuf-c-compiler libc-ares-dev libldap2-dev libjansson-dev
      libssl-dev libcmocka-dev
      slapd ldap-utils dnsmasq-base postfix swaks python3 openssl graphviz groff-base
      nftables chromium)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# --list: only say what is missing (scripts/demo.sh tells the user)
if [ "${1:-}" = --list ]; then echo "${missing[*]:-}"; exit 0; fi
[ ${#missing[@]} -eq 0 ] && exit 0
export DEBIAN_FRONTEND=noninteractive
echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
