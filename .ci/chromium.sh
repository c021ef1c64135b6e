#!/usr/bin/env bash
# Print the path of a headless-capable Chromium, installing Debian's `chromium` when none is found.
# Exit 77 when none can be installed (callers skip their browser checks).
set -uo pipefail
find_browser() {
  for name in chromium chromium-browser google-chrome google-chrome-stable; do
    if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return 0; fi
  done
  return 1
}
find_browser && exit 0
if [ "$(id -u)" -eq 0 ]; then SUDO=""
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"
else echo "chromium: not installed, and no root or passwordless sudo to install it" >&2; exit 77
fi
if ! command -v apt-get >/dev/null; then echo "chromium: not installed and no apt-get" >&2; exit 77; fi
log=$(mktemp)
if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
      --no-install-recommends chromium; } >"$log" 2>&1; then
  echo "chromium: apt-get install failed:" >&2; tail -5 "$log" >&2; rm -f "$log"; exit 77
fi
rm -f "$log"
find_browser || { echo "chromium: installed but not on PATH" >&2; exit 77; }
