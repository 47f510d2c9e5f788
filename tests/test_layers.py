"""The package's layers (README, "Development"): imports run one way, down, and never across the middle.

Read from the source with ``ast`` (nothing is imported), lazy imports inside functions included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "posevae"

# Lowest first. A part may import the parts of lower layers, and of its own layer only where SIDEWAYS says.
LAYERS: list[set[str]] = [
    {"errors", "schedules"},  # no posevae import at all
    {"config", "device", "files"},  # typed config, device and precision, atomic writes
    {"model", "data", "losses", "metrics", "media", "run_folder"},  # the network, the data, pure functions
    {"training", "evaluation", "report"},  # never one another
    {"jobs"},  # demo, compare: training, evaluation and report in a row
    {"cli"},  # argparse only
    {"__main__"},  # python -m posevae
]
# the losses score the model's StepOutput; the person loss weighs the pose region the metric scores
SIDEWAYS = {("losses", "model"), ("losses", "metrics")}
ROOT = "__init__"  # posevae/__init__.py: the version, imported by the CLI for --version


def part_of(module: str) -> str:
    """'posevae.training.loop' -> 'training'; 'posevae' -> '__init__'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def layer_of(part: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if part in layer)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, imported posevae module) of every import in the file, at the top or inside a function."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "posevae":
            names = ([f"{node.module}.{a.name}" for a in node.names] if node.module == "posevae"
                     else [node.module])
            found += [(node.lineno, name) for name in names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "posevae"]
    return found


def source_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py")


def test_every_part_has_a_layer():
    modules = [".".join(("posevae", *p.relative_to(PACKAGE).with_suffix("").parts)) for p in source_files()]
    parts = {part_of(module) for module in modules}
    assert parts <= set().union(*LAYERS), sorted(parts - set().union(*LAYERS))


@pytest.mark.parametrize("path", source_files(), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_imports_run_down_the_layers(path: Path):
    here = part_of(".".join(("posevae", *path.relative_to(PACKAGE).with_suffix("").parts)))
    wrong = []
    for line, module in imports_of(path):
        there = part_of(module)
        if there in (here, ROOT) or module == "posevae.__version__":
            continue
        upward = layer_of(there) > layer_of(here)
        across = layer_of(there) == layer_of(here) and (here, there) not in SIDEWAYS
        if upward or across:
            wrong.append(f"line {line}: {module} ({'a higher layer' if upward else 'across its layer'})")
    assert not wrong, f"{path.relative_to(PACKAGE)} imports " + "; ".join(wrong)


# inside data/: the demo renderer and poses from your own video are siblings; neither imports the other
SIBLINGS = (("data", "video"), ("data", "demo"))


@pytest.mark.parametrize("path", [p for p in source_files() if p.relative_to(PACKAGE).parts[:2] in SIBLINGS],
                         ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_data_video_and_data_demo_never_import_each_other(path: Path):
    here = path.relative_to(PACKAGE).parts[1]
    other = "posevae.data." + ("demo" if here == "video" else "video")
    wrong = [f"line {line}: {module}" for line, module in imports_of(path)
             if module == other or module.startswith(other + ".")]
    assert not wrong, f"{path.relative_to(PACKAGE)} imports " + "; ".join(wrong)
