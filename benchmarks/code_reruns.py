"""Which stages an edit of each file under pipeline/ re-runs: dvc.yaml at a git revision
against the workspace's.

    python benchmarks/code_reruns.py main          # or any revision; --all lists every file

A stage re-runs when a dep covers the edited file (the file itself, or a folder above
it). DVC reads both dvc.yaml files (foreach expanded over that revision's params.yaml),
so a count is of stages as `dvc repro` runs them (finetune@resnet50, ...). The files are
the workspace's tracked files under pipeline/. Prints a summary; then, per stage, how many
of the revision's last --history commits that touched pipeline/ would have re-run it with
either dvc.yaml (the edits as they came, files that have since moved left out); then a
Markdown table of the files whose edit re-runs more stages now (or every file, with
--all), most first. Counts only: whether a re-run stage's outputs change, and so re-run
what follows, depends on the edit. Nothing is written.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from dvc.dependency.param import ParamsDependency
from dvc.repo import Repo

ROOT = Path(__file__).resolve().parents[1]


def stage_deps(repo: Repo) -> dict[str, list[Path]]:
    """Each stage of the checked-out dvc.yaml (foreach expanded) with its deps' paths (not
    its params, which DVC counts among them)."""
    return {stage.name: [Path(dep.def_path) for dep in stage.deps
                         if not isinstance(dep, ParamsDependency)]
            for stage in repo.index.stages}


def rerun(file: Path, deps: dict[str, list[Path]]) -> list[str]:
    """The stages whose deps cover ``file``."""
    return [name for name, paths in deps.items()
            if any(file == path or path in file.parents for path in paths)]


def dep_paths(deps: dict[str, list[Path]], code: bool = False) -> set[Path]:
    """The distinct dep paths (`dvc exp show`'s dep columns), or the code ones alone."""
    return {path for paths in deps.values() for path in paths
            if not code or path.parts[0] in ("pipeline", "stages")}


def history(rev: str, count: int, tracked: set[str]) -> list[set[Path]]:
    """The files under pipeline/ each of ``rev``'s last ``count`` commits changed, kept to
    those still tracked at the same path; commits left with none are left out."""
    log = subprocess.run(["git", "log", "--format=@%H", "--name-only", "-n", str(count), rev],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    commits = [{Path(f) for f in block.split()[1:] if f in tracked}
               for block in log.split("@")[1:]]
    return [files for files in commits if files]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rev", help="the git revision to compare with (e.g. main)")
    parser.add_argument("--all", action="store_true", help="list every file, not only those "
                        "that re-run more stages")
    parser.add_argument("--history", type=int, default=200, metavar="N",
                        help="replay the code edits of the revision's last N commits "
                        "(default 200)")
    args = parser.parse_args()
    with Repo(str(ROOT)) as repo:
        after = stage_deps(repo)
        with repo.switch(args.rev):
            before = stage_deps(repo)
    tracked = subprocess.run(["git", "ls-files", "pipeline"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    rows = []
    for file in map(Path, tracked):
        was, now = rerun(file, before), rerun(file, after)
        rows.append((len(now) - len(was), file.as_posix(), len(was), len(now),
                     sorted(set(now) - set(was)), sorted(set(was) - set(now))))
    rows.sort(key=lambda row: (-row[0], row[1]))

    def lines(rev: str) -> int:
        shown = subprocess.run(["git", "show", f"{rev}:dvc.yaml"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout
        return len(shown.splitlines())

    workspace = len((ROOT / "dvc.yaml").read_text(encoding="utf-8").splitlines())
    print(f"dvc.yaml: {lines(args.rev)} -> {workspace} lines; distinct dep paths (`dvc exp "
          f"show` dep columns): {len(dep_paths(before))} -> {len(dep_paths(after))}, of them "
          f"code (pipeline/, stages/): {len(dep_paths(before, True))} -> "
          f"{len(dep_paths(after, True))}; stage x dep entries (what dvc.lock lists): "
          f"{sum(map(len, before.values()))} -> {sum(map(len, after.values()))}")
    pairs = (sum(r[2] for r in rows), sum(r[3] for r in rows))
    print(f"{len(rows)} files under pipeline/ x {len(after)} stages: {pairs[0]} -> {pairs[1]} "
          f"(file, stage) re-runs; {sum(r[0] > 0 for r in rows)} files re-run more stages, "
          f"{sum(r[0] < 0 for r in rows)} fewer, {sum(r[0] == 0 for r in rows)} the same")
    print()
    commits = history(args.rev, args.history, set(tracked))
    print(f"{len(commits)} of {args.rev}'s last {args.history} commits edited files under "
          "pipeline/ that are still there; the commits that would re-run each stage:")
    print()
    print(f"| stage | at {args.rev} | now |")
    print("|---|---|---|")
    for name in after:
        runs = [sum(any(name in rerun(f, deps) for f in files) for files in commits)
                for deps in (before, after)]
        print(f"| {name} | {runs[0]} | {runs[1]} |")
    print()
    print(f"| file | stages at {args.rev} | now | more | re-runs too | no longer |")
    print("|---|---|---|---|---|---|")
    for more, name, was, now, gained, lost in rows:
        if more > 0 or args.all:
            print(f"| `{name}` | {was} | {now} | {more:+d} | {', '.join(gained) or '-'} "
                  f"| {', '.join(lost) or '-'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
