"""Great Expectations' Data Docs made to read offline, as files opened from disk.

GX 1.x writes pages that load Bootstrap, jQuery, bootstrap-table, Font Awesome and Vega
from CDNs: offline the index is blank (its tables are built by bootstrap-table from data
in a script), the pages are unstyled, and pass/fail shows nothing (Font Awesome icons).
:func:`make_offline` rewrites the written site in place: every CDN ``<link>``/``<script>``
and every script goes, the index's tables are written out as HTML from the same data,
pass/fail becomes a visible word with a mark, the logo is GX's own copy in ``static/``,
and one small stylesheet is inlined. Nothing on the pages loads from the network.
"""

from __future__ import annotations

import ast
import html
import os
import re
from pathlib import Path

from pipeline.core.io import write_text

_REMOTE_ASSET = re.compile(
    r"<link\b[^>]*href=\"https?://[^\"]*\"[^>]*/?>|<script\b[^>]*src=\"https?://[^\"]*\"[^>]*>"
    r"\s*</script>", re.IGNORECASE)
_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", re.IGNORECASE | re.DOTALL)
_TABLE_SCRIPT = re.compile(
    r"\$\('#(?P<id>[\w-]+)'\)\.bootstrapTable\(.*?columns: (?P<columns>\[.*?\]),?\n"
    r"\s*data: (?P<data>\[.*?\]),?\n", re.DOTALL)
_ICON = re.compile(r"<i class=\"(?P<classes>[^\"]*\bfa-[\w-]+[^\"]*)\"[^>]*>\s*</i>")
_STATUS = {
    "fa-check-circle": '<span class="gx-status gx-pass" title="passed">&#10004; passed</span>',
    "fa-times": '<span class="gx-status gx-fail" title="failed">&#10008; failed</span>',
    "fa-exclamation-triangle": '<span class="gx-status gx-warn">&#9888; warning</span>',
}
_LOGO = re.compile(r"https://great-expectations-web-assets\.s3[^\"]*/logo-long\.png[^\"]*")

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #212529;
       margin: 0; background: #fff; }
a { color: #0b5cad; text-decoration: none; } a:hover { text-decoration: underline; }
.container-fluid { padding: 16px 32px; } .row { display: flex; flex-wrap: wrap; }
.col-12, .col-sm-12, .col-xs-12 { flex: 0 0 100%; max-width: 100%; }
.col-6 { flex: 0 0 50%; max-width: 50%; }
@media (min-width: 768px) { .col-md-2 { flex: 0 0 16.6%; max-width: 16.6%; }
  .col-md-10 { flex: 0 0 83.3%; max-width: 83.3%; padding-left: 24px; box-sizing: border-box; } }
.navbar { display: flex; align-items: center; gap: 16px; padding: 8px 32px;
          border-bottom: 1px solid #dee2e6; background: #f8f9fa; }
.navbar img { height: 28px; } .breadcrumb { display: flex; list-style: none; margin: 0;
  padding: 0; gap: 8px; } .breadcrumb-item + .breadcrumb-item::before { content: "/ "; }
.nav { list-style: none; padding: 0; margin: 0; } .nav-tabs { display: flex; gap: 4px;
  border-bottom: 1px solid #dee2e6; margin-bottom: 8px; }
.nav-tabs .nav-link { display: block; padding: 6px 12px; border: 1px solid #dee2e6;
  border-bottom: 0; border-radius: 4px 4px 0 0; background: #f8f9fa; }
.nav-link { display: block; padding: 3px 6px; } .tab-pane { display: block; margin-bottom: 24px; }
.card { border: 1px solid #dee2e6; border-radius: 6px; margin: 0 0 16px; background: #fff; }
.card-header { padding: 8px 12px; background: #f1f3f5; border-bottom: 1px solid #dee2e6; }
.card-body { padding: 12px; }
.alert { padding: 6px 10px; border-radius: 4px; background: #eef1f4; margin: 4px 0; }
table, .table { border-collapse: collapse; width: 100%; margin: 8px 0 16px; }
th, td { border: 1px solid #dee2e6; padding: 5px 8px; text-align: left; vertical-align: top; }
thead th, table.gx-index th { background: #f1f3f5; }
tbody tr:nth-child(even) { background: #fafbfc; }
.badge { display: inline-block; padding: 1px 6px; border-radius: 4px; font-size: 90%;
         background: #e9ecef; font-family: ui-monospace, monospace; }
.text-success, .gx-pass { color: #1e7e34; } .text-danger, .gx-fail { color: #c82333; }
.gx-warn { color: #a66a00; } .gx-status { font-weight: 600; white-space: nowrap; }
.d-none, .modal, .btn, #ge-cta-footer, .ge-index-page-table-toolbar { display: none; }
h1, h2, h3, h4, h5, h6 { margin: 12px 0 8px; } h1 { font-size: 24px; } h2 { font-size: 20px; }
h3, h4 { font-size: 17px; } h5, h6 { font-size: 15px; }
pre, code { font-family: ui-monospace, monospace; font-size: 13px; }
"""


def make_offline(site: str | Path) -> list[Path]:
    """Rewrite every page of the Data Docs site at ``site`` (see the module docstring);
    returns the pages rewritten."""
    root = Path(site)
    pages = sorted(root.rglob("*.html"))
    for page in pages:
        up = os.path.relpath(root, page.parent).replace(os.sep, "/")
        text = offline_page(page.read_text(encoding="utf-8"), f"{up}/static")
        write_text(page, text)
    return pages


_DONE = "<!-- made offline by pipeline/data/data_docs.py -->"


def offline_page(text: str, static: str) -> str:
    """One page made offline; ``static``: the site's static/ folder relative to the page.
    A page already made offline (GX rewrites only the pages of the new run) is kept."""
    if _DONE in text:
        return text
    for match in _TABLE_SCRIPT.finditer(text):
        table = _table(match["id"], ast.literal_eval(match["columns"]),
                       ast.literal_eval(match["data"]))
        text = re.sub(rf"<table\s+id=\"{re.escape(match['id'])}\"[^>]*>\s*</table>",
                      lambda _, table=table: table, text)
    text = _REMOTE_ASSET.sub("", text)
    text = _SCRIPT.sub("", text)
    text = _ICON.sub(_status, text)
    text = _LOGO.sub(f"{static}/images/logo-long.png", text)
    return text.replace("</head>", f"{_DONE}\n<style>{STYLE}</style>\n</head>", 1)


def _status(match: re.Match[str]) -> str:
    for icon, word in _STATUS.items():
        if icon in match["classes"]:
            return word
    return ""  # decorative icons (help, links): nothing to read


def _table(table_id: str, columns: list[dict], rows: list[dict]) -> str:
    """bootstrap-table's columns and rows as a plain HTML table; a row's link (GX puts it
    in ``_table_row_link_path``) on its first cell."""
    head = "".join(f"<th>{html.escape(str(c.get('title', c['field'])))}</th>" for c in columns)
    body = []
    for row in sorted(rows, key=lambda r: -float(r.get("_run_time_sort") or 0)):
        cells = []
        for i, column in enumerate(columns):
            cell = str(row.get(column["field"], ""))  # GX's own HTML
            link = row.get("_table_row_link_path")
            if link and i == (1 if len(columns) > 1 and "success" in columns[0]["field"] else 0):
                cell = f'<a href="{html.escape(link)}">{cell}</a>'
            cells.append(f"<td>{cell}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (f'<table id="{table_id}" class="gx-index"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")
