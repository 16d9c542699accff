#!/usr/bin/env bash
# A Chinese font for the glyph tests (tests/http_glyphs.rs renders CJK ideographs from it; without
# one that test skips). Idempotent: installs Debian's fonts-wqy-microhei (5 MB) only when neither
# it nor fonts-noto-cjk is there. Call before `cargo test`: bash .ci/fonts.sh
set -euo pipefail
if [ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || compgen -G '/usr/share/fonts/opentype/noto/NotoSansCJK-*.ttc' >/dev/null; then
  echo "== a CJK font is installed"
  exit 0
fi
command -v apt-get >/dev/null || { echo "no apt-get: install a CJK font and set CITYGRID_CJK_FONTS=DIR"; exit 1; }
echo "== installing fonts-wqy-microhei"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq && apt-get install -y -qq fonts-wqy-microhei
