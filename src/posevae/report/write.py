"""``posevae report``: read run folders; write the figures, the tables, the GIFs and ``OUT/index.html``."""

from __future__ import annotations

from pathlib import Path

from posevae.errors import UserError
from posevae.report.clips import collect_clips
from posevae.report.figures import FIGURES, write_figures
from posevae.report.html import write_index
from posevae.report.runs import assign_styles, load_run, run_names
from posevae.report.tables import table_rows, write_tables


def write_report(runs: list[Path], out: Path, names: list[str] | None = None, *, gifs: bool = True,
                 title: str = "posevae: KL annealing and teacher forcing") -> Path:
    """Read the run folders; write out/figures/*.png|svg, out/table.md|csv, out/media/ and out/index.html.

    Only the run folders are read (no model, no dataset) and nothing is written into them. ``names`` label
    the runs in legends and the table (default: the folder names). ``gifs`` draws each run's validation GIF
    from its RUN/val_best_frames.npz. Returns the path of index.html.
    """
    if not runs:
        raise UserError("posevae report needs at least one run folder.")
    paths = [Path(r) for r in runs]
    data = [load_run(p, n) for p, n in zip(paths, run_names(paths, names), strict=True)]
    assign_styles(data)
    out = Path(out)
    try:
        (out / "media").mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"Cannot write the report into {out} ({err.strerror or err}): choose a writable "
                        "--out.") from None
    figures = write_figures(data, out / "figures")
    rows = table_rows(data)
    write_tables(rows, out)
    clips = {run.name: collect_clips(run, out / "media", gifs=gifs) for run in data}
    return write_index(out, title=title, rows=rows, figures=figures,
                       captions={name: caption for name, _, caption in FIGURES}, runs=data, clips=clips)
