#!/usr/bin/env bash
# Installs what wallgate needs and is missing: Debian packages (ffmpeg, and chromium and sip-tester with --tests)
# and the npm dependencies.
# Safe to run again: it only acts on what is absent or stale. Runs before `npm start`, `npm run demo`
# and (with --tests) `npm test`.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v ffmpeg >/dev/null 2>&1 || need_pkgs+=(ffmpeg)
# The browser tests run Debian's Chromium from this path; the gateway itself never needs it.
if [ "${1:-}" = "--tests" ] && [ ! -x /usr/bin/chromium ]; then need_pkgs+=(chromium); fi
# sipp, a foreign SIP client for the GB/T 28181 registration tests.
if [ "${1:-}" = "--tests" ] && ! command -v sipp >/dev/null 2>&1; then need_pkgs+=(sip-tester); fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "setup: installing ${need_pkgs[*]} from Debian" >&2
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# npm ci when node_modules is missing or older than the lock file.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm dependencies" >&2
  npm ci --no-audit --no-fund >&2
fi
