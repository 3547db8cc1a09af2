"""Mutation testing of the modules that decide (docs/development.md, "Mutation testing").

    nice -n 10 python .ci/mutation.py                 # every module, one after another
    nice -n 10 python .ci/mutation.py stats splits    # some of them
    python .ci/mutation.py --summary                  # the scores of the last runs
    python .ci/mutation.py splits --min-score 90      # CI: fail below 90 % (see MODULES)

mutmut (the dev extra) makes each small bug (a flipped comparison, a dropped argument, an
off-by-one) one at a time and runs the tests that call the function it changed: a bug no
test fails on "survived". Each module runs on its own, with only the fast test files that
cover it (MODULES), so a run takes minutes, not the suite's quarter of an hour: mutmut's
settings shared by every module are in pyproject.toml's ``[tool.mutmut]``; this script
narrows its ``only_mutate`` and test selection to one module at a time, in a process of
its own, and starts that module afresh (its mutants, results and test map).

What it prints per module: mutmut's own closing line (``done/total 🎉 killed 🫥 no tests
⏰ timeout 🤔 suspicious 🙁 survived``), then the score: killed (a timeout counts as
killed) over the mutants that can change behaviour, i.e. all but the surviving ones that
docs/development.md lists as equivalent, each with its reason. A survivor not listed
there is printed with its diff (also in mutants/<module>.survivors.txt).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "development.md"
# One module: the files it mutates, the mutant names it runs (globs; None: all of the
# files'), and the test files that cover it, with a -k to leave out the tests that run
# the code in a subprocess (a stage script, dvc): mutmut maps tests to functions by the
# calls it sees in the test process, and a subprocess of its stats run fails.
MODULES: dict[str, dict] = {
    "stats": {"files": ["pipeline/evaluation/stats.py"],
              "tests": ["tests/test_stats.py", "tests/test_gate.py", "tests/test_evaluation.py",
                        "tests/test_provenance.py",
                        "-k", "not shipped_size and not dvc_metrics_diff"]},
    # Not reliability_chart: it draws the PNG (colours, labels); the figures it draws are
    # reliability_table's.
    "calibration": {"files": ["pipeline/evaluation/calibration.py"],
                    "names": [f"pipeline.evaluation.calibration.x_{f}__mutmut_*" for f in (
                        "apply_temperature", "nll", "reliability", "ece", "fit_temperature",
                        "summary", "unhelpful", "reliability_table")],
                    "tests": ["tests/test_calibration.py", "tests/test_evaluation.py",
                              "-k", "not shipped_size"]},
    "report": {"files": ["pipeline/evaluation/comparison.py", "pipeline/evaluation/choice.py"],
               "names": ["pipeline.evaluation.comparison.x_compare*",
                         "pipeline.evaluation.comparison.xǁModelResultǁ*",
                         "pipeline.evaluation.comparison.xǁReportǁ*",
                         "pipeline.evaluation.choice.*"],
               "tests": ["tests/test_evaluation.py", "tests/test_provenance.py",
                         "-k", "not shipped_size and not dvc_metrics_diff"]},
    "gate": {"files": ["pipeline/gate.py", "pipeline/gating/lock.py",
                       "pipeline/gating/revisions.py", "pipeline/gating/run_results.py"],
             "tests": ["tests/test_gate.py"]},
    # The formats' own runners (TensorFlow, seconds each) are left to pytest: parity's
    # functions are checked on fake runners and a fake clock.
    "parity": {"files": ["pipeline/export/parity.py"],
               "tests": ["tests/test_export.py", "-k", "parity"]},
    "select": {"files": ["pipeline/runtimes/select.py", "pipeline/runtimes/registry.py"],
               "tests": ["tests/test_runtimes.py",
                         "-k", "not imports_no_tensorflow and not does_not_start_tensorflow"]},
    "params": {"files": ["pipeline/core/params.py"],
               "tests": ["tests/test_config.py",
                         "-k", "not params_stage and not exponents_are_numbers"]},
    "splits": {"files": ["pipeline/data/splits.py"], "tests": ["tests/test_manifest.py"]},
    "duplicates": {"files": ["pipeline/data/duplicates.py"],
                   "tests": ["tests/test_images.py", "tests/test_validation.py",
                             "-k", "not stage and not data_docs"]},
    "sources": {"files": ["pipeline/data/sources/archives.py",
                          "pipeline/data/sources/download.py",
                          "pipeline/data/sources/trees.py", "pipeline/data/sources/urls.py"],
                # Not test_source_stage.py: it runs the stages in subprocesses (see above).
                "tests": ["tests/test_source_trees.py", "tests/test_archives.py",
                          "tests/test_download.py", "tests/test_sources.py"]},
    # EXIF orientation, in two parts: what Pillow's side reads (prepare, the contact
    # sheets) and what a model's card says; then the tf.data decoder's own reader, whose
    # graph code makes many mutants (each test traces it: slow). The tests that run a
    # stage in a subprocess are left out (see above).
    "orientation": {"files": ["pipeline/core/image_formats.py", "pipeline/models/card.py"],
                    "tests": ["tests/test_layouts.py", "tests/test_predict.py",
                              "tests/test_serve.py", "-k",
                              "contact_sheets or turned_as or orientation and not "
                              "every_path"]},
    "exif": {"files": ["pipeline/data/input.py"],
             "names": ["pipeline.data.input.x_exif_orientation_of*",
                       "pipeline.data.input.x__exif_and_xmp*",
                       "pipeline.data.input.x__read*", "pipeline.data.input.x__uint*",
                       "pipeline.data.input.x_apply_orientation*"],
             "tests": ["tests/test_layouts.py", "tests/test_input.py", "-k",
                       "orientation and not every_path or exif and not every_path"]},
    # Not the port test: it reads README.md and mkdocs.yml, which mutmut does not copy.
    # mutmut stops a mutant's tests after 30 x (their measured time + timeout_constant) CPU
    # seconds, and counts that as killed; the measured time leaves out the module fixtures
    # (a Keras model, a server), whose TensorFlow threads alone passed the default's 35 s.
    "uploads": {"files": ["pipeline/serving/uploads.py"],
                "tests": ["tests/test_uploads.py", "tests/test_serve.py",
                          "-k", "not dvc_get and not default_port"],
                "settings": {"timeout_constant": 10.0}},
}
KILLED = {"killed", "timeout"}
NAME = re.compile(r"`(pipeline\.[\w.ǁ]+__mutmut_\d+)`")


def equivalent() -> set[str]:
    """The mutants docs/development.md lists as equivalent (its "Equivalent mutants")."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("### Equivalent mutants", 1)[-1].split("\n## ", 1)[0]
    return set(NAME.findall(section))


def _mutants(module: str) -> dict[str, int | None]:
    """mutmut's exit code of each of ``module``'s mutants (None: not run), from its files."""
    spec, out = MODULES[module], {}
    for file in spec["files"]:
        meta = ROOT / "mutants" / f"{file}.meta"
        if meta.is_file():
            out |= json.loads(meta.read_text())["exit_code_by_key"]
    if spec.get("names"):
        from fnmatch import fnmatch

        out = {k: v for k, v in out.items() if any(fnmatch(k, n) for n in spec["names"])}
    return out


def score(module: str, listed: set[str]) -> dict:
    from mutmut.stats import status_by_exit_code

    status = {k: status_by_exit_code[v] for k, v in _mutants(module).items()}
    survivors = sorted(k for k, s in status.items() if s not in KILLED)
    equivalents = [k for k in survivors if k in listed]
    killed = sum(s in KILLED for s in status.values())
    counted = len(status) - len(equivalents)
    return {"mutants": len(status), "killed": killed, "equivalent": len(equivalents),
            "survived": [k for k in survivors if k not in listed],
            "score": 100.0 * killed / counted if counted else 0.0}


def run_one(module: str, children: int) -> None:
    """In a process of its own: mutmut run on ``module`` alone, survivors' diffs saved."""
    import mutmut.configuration as configuration

    spec = MODULES[module]
    config = configuration.config()  # pyproject.toml's [tool.mutmut]
    config.only_mutate = spec["files"]
    config.pytest_add_cli_args_test_selection = spec["tests"]
    for key, value in spec.get("settings", {}).items():
        setattr(config, key, value)
    from mutmut.__main__ import cli

    try:
        cli.main(["run", "--max-children", str(children), *spec.get("names", [])],
                 standalone_mode=False)
    except SystemExit as stop:  # mutmut exits on a failed clean run or forced-fail check
        if stop.code:
            raise
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    listed = equivalent()
    with open(ROOT / "mutants" / f"{module}.survivors.txt", "w", encoding="utf-8") as out:
        for name in score(module, set())["survived"]:
            file = next(f for f in spec["files"]
                        if name.startswith(f[:-3].replace("/", ".") + "."))
            mark = " (listed as equivalent)" if name in listed else ""
            out.write(f"# {name}{mark}\n{get_diff_for_mutant(name, path=Path(file))}\n")


def fresh(module: str) -> None:
    """Forget ``module``'s mutants, results and mutmut's test map: the run starts over."""
    (ROOT / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)
    for file in MODULES[module]["files"]:
        for suffix in ("", ".meta", ".spans"):
            (ROOT / "mutants" / f"{file}{suffix}").unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("modules", nargs="*", metavar="MODULE",
                        help=f"of {', '.join(MODULES)} (default: all)")
    parser.add_argument("--summary", action="store_true",
                        help="only print the scores of the last runs")
    parser.add_argument("--min-score", type=float, default=None,
                        help="exit 1 when a module's score is below this percentage")
    parser.add_argument("--children", type=int, default=os.cpu_count() or 2,
                        help="mutants tested at once (default: the CPU count)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    if args.worker:
        run_one(args.worker, args.children)
        return 0
    unknown = sorted(set(args.modules) - set(MODULES))
    if unknown:
        parser.error(f"unknown module(s) {', '.join(unknown)}; known: {', '.join(MODULES)}")
    modules = args.modules or list(MODULES)
    if not args.summary:
        (ROOT / "mutants").mkdir(exist_ok=True)
        for module in modules:
            fresh(module)
            log = ROOT / "mutants" / f"{module}.log"
            start, load = time.monotonic(), os.getloadavg()[0]
            with open(log, "w", encoding="utf-8") as out:
                done = subprocess.run([sys.executable, __file__, "--worker", module,
                                       "--children", str(args.children)],
                                      stdout=out, stderr=subprocess.STDOUT)
            text = log.read_text(encoding="utf-8", errors="replace")
            closing = [line for line in re.split(r"[\r\n⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]", text) if "🎉" in line]
            print(f"{module}: {closing[-1].strip() if closing else 'no result'} "
                  f"({time.monotonic() - start:.0f} s, load {load:.1f} -> "
                  f"{os.getloadavg()[0]:.1f}; log {log.relative_to(ROOT)})", flush=True)
            if done.returncode:
                print(f"{module}: mutmut failed (exit {done.returncode}); see the log",
                      file=sys.stderr)
                return 2
    listed, low = equivalent(), []
    print(f"\n{'module':<12} {'mutants':>7} {'killed':>6} {'equivalent':>10} "
          f"{'survived':>8} {'score':>6}")
    for module in modules:
        s = score(module, listed)
        print(f"{module:<12} {s['mutants']:>7} {s['killed']:>6} {s['equivalent']:>10} "
              f"{len(s['survived']):>8} {s['score']:>5.1f}%")
        if args.min_score is not None and s["score"] < args.min_score:
            low.append(module)
    for module in modules:
        survivors = score(module, listed)["survived"]
        if survivors:
            print(f"\n{module}: {len(survivors)} surviving, not listed as equivalent "
                  f"(diffs: mutants/{module}.survivors.txt):")
            print("\n".join(f"  {name}" for name in survivors))
    if low:
        print(f"\nbelow {args.min_score:g} %: {', '.join(low)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
