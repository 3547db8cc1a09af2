#!/usr/bin/env bash
# Regenerate plots.html: a DVC plots HTML template with Vega, Vega-Lite and
# vega-embed inlined, so `dvc plots show` / `dvc plots diff` pages render
# offline (DVC's default page loads these libraries from cdn.jsdelivr.net).
#
# Usage:  reports/templates/build_plots_template.sh [OUTPUT]
#         (OUTPUT defaults to plots.html next to this script)
# To bump a library, change the pinned version below (or override it through the
# environment, e.g. VEGA_VERSION=5.33.1), rerun, and re-check a rendered page.
# Stay on the majors DVC's dvc_render targets (vega 5, vega-lite 5,
# vega-embed 6): DVC's built-in plot templates are Vega-Lite v5 specs.
# Requires: npm (with access to the npm registry), node, tar, sed.
# The output depends only on the pinned tarballs and this script, so a rerun
# reproduces plots.html byte for byte.
set -euo pipefail

VEGA_VERSION="${VEGA_VERSION:-5.33.1}"
VEGA_LITE_VERSION="${VEGA_LITE_VERSION:-5.23.0}"
VEGA_EMBED_VERSION="${VEGA_EMBED_VERSION:-6.29.0}"

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-${script_dir}/plots.html}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Download and unpack name@version into $work/name; print its npm integrity.
fetch() {
    local name="$1" version="$2"
    mkdir -p "$work/tgz" "$work/$name"
    npm pack --silent --json --pack-destination "$work/tgz" "${name}@${version}" \
        > "$work/$name.json"
    tar -xzf "$work/tgz/${name}-${version}.tgz" -C "$work/$name" --strip-components=1
    node -e '
        const [, pkgFile, packFile, want] = process.argv;
        const pkg = require(pkgFile);
        const packed = require(packFile)[0];
        if (pkg.version !== want) throw new Error(`${pkg.name}: got ${pkg.version}, wanted ${want}`);
        if (pkg.license !== "BSD-3-Clause") throw new Error(`${pkg.name}: licence is ${pkg.license}, review before inlining`);
        console.log(packed.integrity);
    ' "$work/$name/package.json" "$work/$name.json" "$version"
}

vega_integrity="$(fetch vega "$VEGA_VERSION")"
vega_lite_integrity="$(fetch vega-lite "$VEGA_LITE_VERSION")"
vega_embed_integrity="$(fetch vega-embed "$VEGA_EMBED_VERSION")"

# Minified UMD builds, minus their sourceMappingURL comments (no .map is shipped).
for f in vega/build/vega.min.js vega-lite/build/vega-lite.min.js vega-embed/build/vega-embed.min.js; do
    sed '/^\/\/# sourceMappingURL=/d' "$work/$f" > "$work/$(basename "$f")"
    # Inline <script> bodies must not close the element or open a comment, and
    # must not contain DVC's placeholders (DVC does plain string replacement).
    if grep -qiE '</script|<!--|\{(plot_divs|scripts|refresh_tag)\}' "$work/$(basename "$f")"; then
        echo "error: $f contains text that cannot be inlined safely" >&2
        exit 1
    fi
done

# vega-lite and vega-embed ship the licence text; the vega tarball has none
# (its package.json says BSD-3-Clause, same UW Interactive Data Lab licence).
license_file="$work/vega-lite/LICENSE"
[[ -f "$license_file" ]] || license_file="$work/vega-embed/LICENSE"

tmp_out="$work/plots.html"
{
    cat <<HEADER
<!--
  DVC plots HTML template with Vega, Vega-Lite and vega-embed inlined, so the
  pages written by "dvc plots show" and "dvc plots diff" render offline.

  GENERATED FILE: do not edit by hand. Regenerate with
  reports/templates/build_plots_template.sh (it fetches the pinned versions
  with "npm pack" from the npm registry).

  Inlined (build/*.min.js of each npm package, sourceMappingURL comments removed):
    vega        ${VEGA_VERSION}  licence BSD-3-Clause  npm ${vega_integrity}
    vega-lite   ${VEGA_LITE_VERSION}  licence BSD-3-Clause  npm ${vega_lite_integrity}
    vega-embed  ${VEGA_EMBED_VERSION}  licence BSD-3-Clause  npm ${vega_embed_integrity}
  All three: Copyright (c) 2015, University of Washington Interactive Data Lab.
  https://github.com/vega/vega  https://github.com/vega/vega-lite
  https://github.com/vega/vega-embed

  Use it with:  dvc plots show --html-template reports/templates/plots.html
  or in .dvc/config (DVC resolves this relative path from the .dvc folder):
    [plots]
        html_template = ../reports/templates/plots.html

  DVC replaces the plot_divs placeholder in <body> with the charts. The scripts
  placeholder is deliberately left out so DVC does not add its CDN <script> tags.

  Licence text (BSD-3-Clause) of the inlined packages:

HEADER
    sed 's/^/  /; s/[[:space:]]*$//' "$license_file"
    cat <<'PAGE'
-->
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{refresh_tag}
<title>DVC Plots</title>
<style>
  body {
    margin: 1.5rem 2rem;
    font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
    font-size: 15px;
    line-height: 1.45;
    color: #1f2328;
    background: #fff;
  }
  table { border-spacing: 15px; }
  img { max-width: 100%; height: auto; }
  .vega-embed { margin: 0 0 2rem; }
  .vega-embed summary { opacity: 0.6; }
  /* A picture's revisions (dvc plots diff): DVC writes them in one row that does not wrap,
     each at its full size, so the second is cut. Here each takes an equal share of the
     page's width, its picture scaled to fit. */
  div[style*="nowrap"] { display: flex; flex-wrap: wrap; white-space: normal !important; }
  div[style*="nowrap"] > p { flex-basis: 100%; }
  div[style*="nowrap"] > div { flex: 1 1 0; min-width: 0; }
</style>
PAGE
    printf '<script>/* vega %s */\n' "$VEGA_VERSION"
    cat "$work/vega.min.js"
    printf '</script>\n<script>/* vega-lite %s */\n' "$VEGA_LITE_VERSION"
    cat "$work/vega-lite.min.js"
    printf '</script>\n<script>/* vega-embed %s */\n' "$VEGA_EMBED_VERSION"
    cat "$work/vega-embed.min.js"
    cat <<'PAGE'
</script>
</head>
<body>
{plot_divs}
</body>
</html>
PAGE
} > "$tmp_out"

# Each DVC placeholder we use must appear exactly once; the CDN one not at all.
[[ "$(grep -o '{plot_divs}' "$tmp_out" | wc -l)" -eq 1 ]]
[[ "$(grep -o '{refresh_tag}' "$tmp_out" | wc -l)" -eq 1 ]]
if grep -q '{scripts}' "$tmp_out"; then
    echo "error: template must not contain the scripts placeholder" >&2
    exit 1
fi

mkdir -p "$(dirname "$out")"
mv "$tmp_out" "$out"
echo "wrote $out ($(wc -c < "$out") bytes): vega ${VEGA_VERSION}, vega-lite ${VEGA_LITE_VERSION}, vega-embed ${VEGA_EMBED_VERSION}"
