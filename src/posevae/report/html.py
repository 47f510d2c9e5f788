"""The report page, ``OUT/index.html``: the table, the figures and, per run, its GIFs with their PSNR curves.

The page opens from disk with no server and no network: every image is a file beside it, referenced by a
relative path (figures/..., media/...), the CSS is inline, there is no script and no web font.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from posevae.files import atomic_write_text
from posevae.report.tables import TABLE_NOTE, table_display

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       margin: 2rem auto; max-width: 1120px; padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
h3 { margin-bottom: .3rem; }
table { border-collapse: collapse; margin: 1rem 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ccc; padding: .3rem .6rem; } td { text-align: right; }
td:first-child, td:nth-child(2) { text-align: left; } th { background: #f3f3f3; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(480px, 1fr)); gap: 1.2rem; }
figure { margin: 0; } figure img { width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .9rem; color: #444; }
.clips { display: flex; flex-wrap: wrap; gap: 1.5rem; }
.clip { width: 520px; max-width: 100%; }
.clip img.gif { width: 100%; height: auto; image-rendering: pixelated; display: block; }
.clip img.curve { width: 100%; height: auto; display: block; }
.swatch { display: inline-block; width: 1.6em; height: .35em; vertical-align: middle; margin-right: .4em; }
.note { color: #8a4b00; } .small { font-size: .85rem; color: #555; }
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _rel(path: Path, root: Path) -> str:
    return _e(path.relative_to(root).as_posix())


def _table(rows: Sequence[dict[str, Any]]) -> str:
    header, cells = table_display(rows)
    out = ["<table>", "<tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in cells]
    out.append("</table>")
    return "\n".join(out)


def write_index(out: Path, *, title: str, rows: Sequence[dict[str, Any]], figures: Mapping[str, list[Path]],
                captions: Mapping[str, str], runs: Sequence[Any], clips: Mapping[str, tuple[list[Any], str]],
                ) -> Path:
    """Write ``out/index.html`` from the report's parts (see :func:`posevae.report.write.write_report`)."""
    legend = [f'<span class="swatch" style="background:{_e(r.style.colour)}"></span>{_e(r.name)} '
              f"(<code>{_e(r.path)}</code>)" for r in runs]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        (f'<p class="small">Made by <code>posevae report</code> on {datetime.now():%Y-%m-%d %H:%M} from '
         f"{len(runs)} run{'s' if len(runs) != 1 else ''}: {', '.join(legend)}.</p>"),
        "<h2>Table 1: validation and test PSNR</h2>",
        _table(rows),
        (f'<p class="small">{_e(TABLE_NOTE)} Also as <a href="table.csv">table.csv</a> and '
         '<a href="table.md">table.md</a>.</p>'),
        "<h2>Figures</h2>",
        '<div class="figures">',
    ]
    for i, (name, paths) in enumerate(figures.items(), start=1):
        png = next(p for p in paths if p.suffix == ".png")
        svg = next((p for p in paths if p.suffix == ".svg"), None)
        link = f' (<a href="{_rel(svg, out)}">SVG</a>)' if svg else ""
        caption = captions.get(name, "")
        parts.append(f'<figure id="{_e(name)}"><a href="{_rel(png, out)}">'
                     f'<img src="{_rel(png, out)}" alt="{_e(caption or name)}"></a>'
                     f"<figcaption><b>Figure {i}.</b> {_e(caption)}{link}</figcaption></figure>")
    parts.append("</div>")
    parts.append("<h2>Predicted and true frames</h2>")
    parts.append('<p class="small">Each GIF shows the prediction on the left and the ground truth on the '
                 "right; the curve under it is the PSNR of each frame of that GIF (solid: whole frame; "
                 "dotted: the pose region only, the pixels of the frame's pose label dilated by 1 px).</p>")
    for run in runs:
        run_clips, note = clips.get(run.name, ([], ""))
        parts.append(f'<h3><span class="swatch" style="background:{_e(run.style.colour)}"></span>'
                     f'{_e(run.name)}'
                     f' <span class="small">(KL annealing: {_e(run.strategy)})</span></h3>')
        if note:
            parts.append(f'<p class="note">{_e(note)}</p>')
        if not run_clips:
            parts.append('<p class="note">No GIFs for this run.</p>')
            continue
        parts.append('<div class="clips">')
        for clip in run_clips:
            parts.append(
                f'<div class="clip"><b>{_e(clip.title)}</b> '
                f'<span class="small">(left: predicted, right: true)</span>'
                f'<img class="gif" src="{_rel(clip.gif, out)}" alt="{_e(run.name)}: {_e(clip.title)}, '
                f'predicted | true"><img class="curve" src="{_rel(clip.curve, out)}" '
                f'alt="per-frame PSNR of {_e(run.name)}: {_e(clip.title)}"></div>')
        parts.append("</div>")
    parts.append("</body></html>")
    path = out / "index.html"
    atomic_write_text(path, "\n".join(parts) + "\n")
    return path
