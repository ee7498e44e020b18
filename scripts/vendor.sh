#!/usr/bin/env bash
# `make vendor`: re-fetch the browser assets Genesis ships (Swagger UI, ReDoc, Lightweight Charts) from the npm
# registry at pinned versions, check each tarball's SHA-256, copy the files we serve with their licences, and write
# manifest.json. The output is committed: `make run` and the tests never need the network.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=src/genesis/api/web/static/vendor
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# package  version  licence  sha256 of the npm tarball  files to keep (path inside the package)
PACKAGES=(
  "swagger-ui-dist|5.35.0|Apache-2.0|1b8e891893404ea4c3558b6a87e2a3e494e7eedba41168c2ece5800a391a6ea6|swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css favicon-32x32.png oauth2-redirect.js LICENSE NOTICE"
  "redoc|2.5.4|MIT|44922df4d0eb45c1b066c09ec251e6bd9bd7ded16bc69e87613337b9d911a56e|bundles/redoc.standalone.js bundles/redoc.standalone.js.LICENSE.txt LICENSE"
  "lightweight-charts|5.2.1|Apache-2.0|64310292298df4dd527494865e5d91d447f8bb397b68de3912c2a6465025ee5e|dist/lightweight-charts.standalone.production.mjs LICENSE"
)

rm -rf "$DEST"
mkdir -p "$DEST"
manifest="{"
sep=""
for entry in "${PACKAGES[@]}"; do
  IFS='|' read -r name version licence sha files <<<"$entry"
  (cd "$WORK" && npm pack --silent "$name@$version" >/dev/null)
  tarball="$WORK/$name-$version.tgz"
  actual=$(sha256sum "$tarball" | cut -d' ' -f1)
  if [ "$actual" != "$sha" ]; then
    echo "vendor: $name@$version tarball has SHA-256 $actual, expected $sha" >&2
    exit 1
  fi
  mkdir -p "$WORK/$name" && tar -xzf "$tarball" -C "$WORK/$name"
  out="$DEST/$name-$version"
  mkdir -p "$out"
  filelist=""
  for f in $files; do
    cp "$WORK/$name/package/$f" "$out/$(basename "$f")"
  done
  case "$name" in
    redoc)
      # ReDoc renders <img src="https://cdn.redoc.ly/redoc/logo-mini.svg"> in its sidebar, unconditionally: on a
      # closed network it fails, and under our CSP it is a violation. An empty data: URL makes the <img> fail
      # at once; ReDoc's own onError handler then removes it.
      sed -i 's|https://cdn.redoc.ly/redoc/logo-mini.svg|data:,|g' "$out/redoc.standalone.js"
      if grep -q 'cdn.redoc.ly' "$out/redoc.standalone.js"; then
        echo "vendor: redoc still references cdn.redoc.ly after patching" >&2
        exit 1
      fi
      ;;
    lightweight-charts)
      # The licence asks for TradingView's attribution notice (NOTICE in the GitHub repository, not in the npm
      # package) beside the code and on the page; the console's footer shows it with the link.
      printf 'TradingView Lightweight Charts\nCopyright (c) 2023 TradingView, Inc. https://www.tradingview.com/\n' \
        >"$out/NOTICE"
      ;;
  esac
  for f in $(cd "$out" && ls | sort); do
    fsha=$(sha256sum "$out/$f" | cut -d' ' -f1)
    filelist="$filelist${filelist:+, }\"$f\": \"$fsha\""
  done
  manifest="$manifest$sep
  \"$name\": {\"version\": \"$version\", \"license\": \"$licence\", \"tarball_sha256\": \"$sha\",
    \"files\": {$filelist}}"
  sep=","
done
printf '%s\n}\n' "$manifest" >"$DEST/manifest.json"
echo "vendored into $DEST:"
du -sh "$DEST"/* | sed 's/^/  /'
