"""What several test modules share: the repository root, params, stage runs and file writers.

Test modules import from here, never from each other.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import io
import json
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import tarfile
import warnings
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
STAGES = ROOT / "stages"


# --------------------------------------------------------------------------- params


def repo_params() -> dict:
    """The repository's params.yaml as a plain mapping, to copy and change in a test."""
    return yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))


def changed(raw: dict, changes: Mapping[str, Any] | None = None) -> dict:
    """A copy of ``raw`` with dotted keys set, as ``dvc exp run -S data.images.bad=...`` does.

    Every parent of a dotted key must exist: a typo in a test fails loudly.
    """
    out = copy.deepcopy(raw)
    for dotted, value in (changes or {}).items():
        *parents, key = dotted.split(".")
        node = out
        for part in parents:
            node = node[part]
        node[key] = value
    return out


def params(changes: Mapping[str, Any] | None = None):
    """The repository's params, ``changes`` (dotted keys) applied, parsed and validated."""
    from pipeline.core.params import parse

    return parse(changed(repo_params(), changes))


def write_params(folder: Path, changes: Mapping[str, Any] | None = None) -> Path:
    """A full params.yaml in ``folder`` (created): the repository's, ``changes`` applied."""
    folder.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(changed(repo_params(), changes), allow_unicode=True, sort_keys=False)
    (folder / "params.yaml").write_text(text, encoding="utf-8")
    return folder / "params.yaml"


def head_params(**changes: Any):
    """The ``head`` section of params.yaml with ``changes``."""
    from pipeline.core.params import HeadParams

    return HeadParams(**(repo_params()["head"] | changes))


def augment_params(**changes: Any):
    """params.yaml's ``finetune.resnet50.augment`` with ``changes``."""
    from pipeline.core.params import AugmentParams

    return AugmentParams(**(repo_params()["finetune"]["resnet50"]["augment"] | changes))


def images_params(**changes: Any):
    """The ``data.images`` section of params.yaml with ``changes``."""
    from pipeline.core.params import ImagesParams

    return ImagesParams(**(repo_params()["data"]["images"] | changes))


def validate_params(**changes: Any):
    """The ``validate`` section of params.yaml with ``changes``."""
    from pipeline.core.params import ValidateParams

    return ValidateParams(**(repo_params()["validate"] | changes))


def resnet_recipe(**changes: Any):
    """params.yaml's ``finetune.resnet50`` recipe with ``changes`` (``augment`` as a mapping)."""
    from pipeline.core.params import ResNetRecipe

    return ResNetRecipe(**(repo_params()["finetune"]["resnet50"] | changes))


def wrn_recipe(**changes: Any):
    """params.yaml's ``scratch.wrn`` recipe with ``changes``."""
    from pipeline.core.params import WRNRecipe

    return WRNRecipe(**(repo_params()["scratch"]["wrn"] | changes))


def resnet9_recipe(**changes: Any):
    """The shipped ``scratch.resnet9`` recipe (pipeline/models/resnet9_recipe.yaml) with
    ``changes``."""
    from pipeline.core.params import ResNet9Recipe
    from pipeline.models.resnet9 import recipe

    return ResNet9Recipe(**(recipe() | changes))


def image_policy(**changes: Any):
    """The image policy of params.yaml (``data.images`` and validate's sides), ``changes``
    applied to the policy's own fields (``max_pixels``, ``allowed_formats``, ...)."""
    from pipeline.data.images import ImagePolicy

    policy = ImagePolicy.from_params(images_params(), validate_params())
    return dataclasses.replace(policy, **changes)


# --------------------------------------------------------------------------- stages


def default_placement():
    """The default strategy in float32, as params.yaml's distribute section gives here."""
    from pipeline.core.params import DistributeParams
    from pipeline.runs.placement import place

    return place(DistributeParams(strategy="default", mixed_precision="none"))


def run_stage(cwd: Path, name: str, *args: str, timeout: float = 300
              ) -> subprocess.CompletedProcess[str]:
    """``python stages/<name>.py [args]`` in ``cwd``, as DVC runs it.

    The environment is the test process's: conftest.py puts the repository (a checkout
    need not be pip-installed) and tests/netguard (no network) on PYTHONPATH.
    """
    return subprocess.run([sys.executable, str(STAGES / f"{name}.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          env=os.environ.copy(), check=False)


def package_data() -> set[Path]:
    """The files beside the code that a non-editable install carries: setuptools'
    package-data globs in pyproject.toml (relative to each package's folder), matched."""
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return {path.resolve()
            for package, patterns in pyproject["tool"]["setuptools"]["package-data"].items()
            for pattern in patterns
            for path in ROOT.joinpath(*package.split(".")).glob(pattern)}


def snapshot(path: Path) -> dict[str, tuple]:
    """Every entry under ``path`` (or the file itself): bytes, mtime, link target."""
    entries = [path, *sorted(path.rglob("*"))] if path.is_dir() else [path]
    out = {}
    for p in entries:
        info = p.lstat()
        if p.is_symlink():
            out[str(p)] = ("link", os.readlink(p), info.st_mtime_ns)
        elif p.is_dir():
            out[str(p)] = ("dir", sorted(os.listdir(p)), info.st_mtime_ns)
        else:
            out[str(p)] = ("file", p.read_bytes(), info.st_mtime_ns)
    return out


# --------------------------------------------------------------------------- images


@contextlib.contextmanager
def c_locale():
    """The C locale (LANG=C) for the block: Python's default text encoding is then not
    UTF-8. Skips the test under Python's UTF-8 mode, where every file reads as UTF-8."""
    import locale

    import pytest

    if sys.flags.utf8_mode:
        pytest.skip("Python's UTF-8 mode reads every file as UTF-8")
    before = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")
    try:
        assert locale.getpreferredencoding(False).lower() != "utf-8"
        yield
    finally:
        locale.setlocale(locale.LC_CTYPE, before)


def noise(w: int, h: int, seed: int = 0) -> np.ndarray:
    """Uniform RGB noise, h x w, as uint8."""
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def normal_images(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """A float32 batch (n, size, size, 3) of standard normal values: network inputs."""
    return np.random.default_rng(seed).normal(size=(n, size, size, 3)).astype("float32")


def encoded(array: np.ndarray, fmt: str, **options) -> bytes:
    """``array`` as the bytes of a ``fmt`` file (Pillow's format name)."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """A PNG chunk: its length, type, data and CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(path: Path, side: int = 20_000) -> None:
    """A valid 1-bit PNG of side x side pixels: ~50 KB on disk, 0.4 gigapixels decoded."""
    rows = (b"\0" + b"\0" * (side // 8)) * side  # filter byte + packed bits per row
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(
        ">IIBBBBB", side, side, 1, 0, 0, 0, 0)) + png_chunk(b"IDAT", zlib.compress(rows, 9))
        + png_chunk(b"IEND", b""))


def write_bad_models(folder: Path, good: Path) -> dict[str, Path]:
    """Model files Keras cannot load (issue 27), by kind: random bytes, ``good`` cut in
    half, empty, a zip without a model, a Lambda layer (Python code); in ``folder``."""
    import keras

    folder.mkdir(parents=True, exist_ok=True)
    files = {kind: folder / kind / "model.keras" for kind in
             ("random", "truncated", "empty", "zip-without-model", "lambda")}
    for path in files.values():
        path.parent.mkdir(exist_ok=True)
    files["random"].write_bytes(os.urandom(4096))
    files["truncated"].write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    files["empty"].write_bytes(b"")
    with zipfile.ZipFile(files["zip-without-model"], "w") as archive:
        archive.writestr("notes.txt", "not a model")
    inputs = keras.Input((32, 32, 3), name="image")
    doubled = keras.layers.Lambda(lambda x: x * 2)(inputs)
    outputs = keras.layers.Dense(3, activation="softmax")(
        keras.layers.GlobalAveragePooling2D()(doubled))
    keras.Model(inputs, outputs).save(files["lambda"])
    return files


def write_bad_files(folder: Path, jpeg: bytes, seed: int) -> None:
    """The issue's list of awkward files, into ``folder``; ``jpeg`` is cut for the truncated one.

    test_images checks each in-process, test_prepare runs the same kinds through the stages.
    """
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (folder / "text.jpg").write_text("this is not a JPEG\n")
    Image.fromarray(noise(40, 40, seed + 1)).save(folder / "png_named.jpg", format="PNG")
    Image.fromarray(noise(40, 40, seed + 2)).convert("CMYK").save(folder / "cmyk.jpg")
    wide = np.random.default_rng(seed + 3).integers(0, 65535, (40, 40)).astype(np.uint16)
    Image.fromarray(wide).save(folder / "16bit.png")
    Image.fromarray(noise(40, 40, seed + 4)).convert("RGBA").save(folder / "rgba.png")
    Image.fromarray(noise(40, 40, seed + 5)).convert("P").save(folder / "palette.gif")
    Image.fromarray(noise(40, 40, seed + 6)).convert("L").save(folder / "grey.jpg")
    Image.new("RGB", (1, 1), "red").save(folder / "tiny.png")
    png_bomb(folder / "bomb.png")


# --------------------------------------------------------------------------- archives

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 40  # sources never decode: bytes are enough
GOOD = {"cat/1.png": PNG, "cat/2.png": PNG, "dog/1.png": PNG}


def zinfo(name: str, mode: int | None = None, system: int = 3) -> zipfile.ZipInfo:
    """A zip entry made on ``system`` (3: Unix) with ``mode`` as its Unix st_mode."""
    info = zipfile.ZipInfo(name)
    info.create_system = system
    if mode is not None:
        info.external_attr = mode << 16
    return info


def write_zip(path: Path, entries: list[tuple[str | zipfile.ZipInfo, bytes | str]]) -> Path:
    """A zip of ``entries`` in order, a name listed twice included."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name": wanted when asked
        with zipfile.ZipFile(path, "w") as zf:
            for entry, data in entries:
                zf.writestr(entry, data)
    return path


def make_zip(path: Path, files: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    return write_zip(path, [(zipfile.ZipInfo(name), data) for name, data in files.items()]
                     + [(zinfo(name, stat.S_IFLNK | 0o777), target)
                        for name, target in (links or {}).items()])


def tinfo(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, linkname: str = "",
          pax: dict[str, str] | None = None) -> tarfile.TarInfo:
    """A tar header; ``pax`` overrides its fields (a pax name can hold any character)."""
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size, linkname
    info.pax_headers = pax or {}
    return info


def write_tar(path: Path, entries: list[tuple[str, bytes] | tarfile.TarInfo],
              mode: str = "w") -> Path:
    """A tar of ``entries`` in order: (name, data) for a file, a header for anything else."""
    with tarfile.open(path, mode, format=tarfile.PAX_FORMAT) as tf:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tf.addfile(entry)
            else:
                name, data = entry
                tf.addfile(tinfo(name, size=len(data)), io.BytesIO(data))
    return path


def make_tar(path: Path, files: dict[str, bytes], mode: str = "w:gz",
             special: list[tarfile.TarInfo] | None = None) -> Path:
    return write_tar(path, [*files.items(), *(special or [])], mode)


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    return tinfo(name, kind, linkname=target)


# --------------------------------------------------------------------------- end to end
# The end-to-end modules (test_e2e.py, test_e2e_workflows.py) copy the project into a
# fresh git repository with a tiny profile (32 px images, a few per class, random backbone
# weights, one or two epochs) and drive dvc as a user would.

PROJECT_FILES = ["pipeline", "stages", "params.yaml", "dvc.yaml", "pyproject.toml",
                 ".dvc/config", ".dvc/plots", ".dvcignore", ".gitignore", "reports/templates"]
# What a stage must not print: TensorFlow's start-up lines; other libraries' notices (they
# go to .cache/logs/<stage>.log: TensorFlow's deprecations, the TFLite converter's and
# interpreter's C++ lines); a record in Python's default format (a second root handler,
# which printed every line twice); a raw Python dict.
NOISE = re.compile(r"oneDNN custom operations|Could not find cuda drivers|absl::InitializeLog"
                   r"|triggered tf\.function retracing|I0000 |E0000 |W0000 "
                   r"|is deprecated|Instructions for updating|fully_quantize|XNNPACK"
                   r"|^(?:DEBUG|INFO|WARNING|ERROR|CRITICAL):[\w.]*:|\{'", re.M)
_RECORD_PREFIX = re.compile(r"^(?:DEBUG|INFO|WARNING|ERROR|CRITICAL):[\w.]*:")
MODELS = ("head", "resnet50", "wrn")
EVALUATE = ("evaluate_head", "evaluate_finetune@resnet50", "evaluate_scratch@wrn")  # MODELS'
# The always-changed checks: every `dvc repro` runs them (cheap: they fingerprint and hash).
ALWAYS = frozenset({"source", "weights", "scratch_weights"})
ALWAYS_STATUS = {name: ["always changed"] for name in ALWAYS}  # `dvc status --json` at rest
# What any change to params.yaml runs besides the stages that read the change: the params
# check (stages/params.py), then the always-changed checks.
CHECKS = ALWAYS | {"params"}


STDERR = "\n--- stderr ---\n"  # between the stdout and the stderr of first_repro.log


def tiny_profile(params: dict) -> dict:
    params["sample"].update(images_per_class=6, image_size=32)
    params["validate"].update(min_per_class=1)
    params["backbone"].update(image_size=32, weights="none", batch_size=16)
    params["head"].update(epochs=3, patience=2)
    for entry in params["finetune"].values():
        entry.update(epochs=1, image_size=32, batch_size=8, head_epochs=1)
    for entry in params["scratch"].values():
        entry.update(epochs=1, image_size=32, batch_size=8)
        if entry["family"] == "wrn":
            entry.update(depth=10, width=1)
    # Export writes and checks model.keras only: the other formats are most of the stage's
    # time (CPU s on a 2-core EPYC: 18 for none, 35 with the SavedModel, 94 for all four),
    # and a module re-runs it up to four times. test_e2e converts every format once.
    params["export"].update(formats=[], int8_images=10, latency_repeats=5)
    params["gate"].update(min=0.0)
    return params


def sh(cwd: Path, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    bindir = str(Path(sys.executable).parent)  # dvc and the stages' `python` from this venv
    # The copy's own pipeline/ first: not the editable install's (the repository's).
    path = os.pathsep.join([str(cwd), os.environ.get("PYTHONPATH", "")])
    env = os.environ | {"PATH": bindir + os.pathsep + os.environ["PATH"], "PYTHONPATH": path}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def shell(cwd: Path, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``command`` as a user types it (pipes, quotes, ``\\`` continuations, comments), in
    bash with pipefail, in the environment of :func:`sh`."""
    proc = sh(cwd, "bash", "-c", "set -o pipefail\n" + command, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{command} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def stage_outputs(output: str) -> dict[str, list[str]]:
    """What each stage printed in a `dvc repro` or `dvc exp run` stdout, by stage: the
    non-empty lines after its "Running stage" line (DVC's own lines left out)."""
    out: dict[str, list[str]] = {}
    output = re.split(r"^(?:To track the changes with git|Ran experiment\(s\)|Use `dvc push`)",
                      output, maxsplit=1, flags=re.M)[0]  # DVC's closing lines
    for block in re.split(r"^Running stage '", output, flags=re.M)[1:]:
        name, _, text = block.partition("':\n")
        out[name] = [line for line in text.splitlines() if line.strip()
                     and not line.startswith(("> ", "Updating lock file", "Generating lock"))
                     and not re.match(r"Stage '.*' didn't change", line)]
    return out


def repeated(lines: list[str]) -> list[str]:
    """The lines said twice, also as a log record in Python's default format (``INFO:x:``)."""
    seen: set[str] = set()
    twice = []
    for line in lines:
        said = _RECORD_PREFIX.sub("", line).strip()
        if said in seen:
            twice.append(line)
        seen.add(said)
    return twice


def workspace(project: Path) -> dict[str, str]:
    """The sha256 of every file in a project's workspace, by path (folders as ``dir``), all
    but git's and DVC's own (.git, .dvc/tmp, .dvc/cache): what a refused run must leave."""
    import hashlib

    out = {}
    for folder, dirs, files in os.walk(project):
        rel = Path(folder).relative_to(project)
        if rel.parts[:1] == (".git",) or rel.parts[:2] in ((".dvc", "tmp"), (".dvc", "cache")):
            dirs[:] = []
            continue
        out |= {(rel / d).as_posix() + "/": "dir" for d in dirs}
        for name in files:
            path = Path(folder) / name
            out[(rel / name).as_posix()] = ("link " + os.readlink(path) if path.is_symlink()
                                            else hashlib.sha256(path.read_bytes()).hexdigest())
    return out


def edit_params(path: Path, edit) -> None:
    """``edit(params)`` on params.yaml's mapping, written back as `dvc exp run -S` writes
    it: DVC's own round trip keeps the comments, and a `-S` that changes nothing (DVC's
    apply_overrides, what `-S` calls) settles what the edit replaced (a list emptied) in
    the form the next `-S` keeps."""
    from dvc.utils.hydra import apply_overrides
    from dvc.utils.serialize import dumps_yaml, parse_yaml_for_update

    params = parse_yaml_for_update(path.read_text(encoding="utf-8"), str(path))
    edit(params)
    path.write_text(dumps_yaml(params), encoding="utf-8")
    apply_overrides(path, [f"seed={params['seed']}"])


def e2e_project(repo: Path, *targets: str) -> Path:
    """A fresh clone-alike of the project in ``repo`` with the tiny profile, after one
    `dvc repro` of ``targets`` (the whole pipeline by default; its log in first_repro.log)."""
    for name in PROJECT_FILES:
        src, dst = ROOT / name, repo / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst)
    edit_params(repo / "params.yaml", tiny_profile)
    sh(repo, "git", "init", "-q", "-b", "main")
    # dvc exp run commits too: give the repository an identity of its own.
    sh(repo, "git", "config", "user.name", "e2e test")
    sh(repo, "git", "config", "user.email", "e2e@example.invalid")
    commit(repo, "tiny profile")
    first = sh(repo, "dvc", "repro", *targets)
    (repo / "first_repro.log").write_text(first.stdout + STDERR + first.stderr)
    commit(repo, "first run")
    return repo


def project_state(project: Path) -> tuple[str, dict[str, str]]:
    """What a test can change in an e2e project: its git HEAD and every file by content
    (git's and DVC's own folders, Python's caches and the stages' side logs aside: a
    stage's .cache/logs/<stage>.log is its last run's, rewritten, time stamps and all,
    whenever it runs again)."""
    head = sh(project, "git", "rev-parse", "HEAD").stdout.strip()
    files = {}
    for folder, dirs, names in os.walk(project):
        rel = Path(folder).relative_to(project)
        dirs[:] = [d for d in dirs if d != "__pycache__" and (rel / d).as_posix() not in (
            ".git", ".dvc/cache", ".dvc/tmp", ".cache/logs")]
        for name in names:
            path = Path(folder) / name
            files[(rel / name).as_posix()] = (
                f"link {os.readlink(path)}" if path.is_symlink()
                else hashlib.sha256(path.read_bytes()).hexdigest())
    return head, files


def restore_project(project: Path, state: tuple[str, dict[str, str]]) -> None:
    """Put an e2e project back as ``state`` (project_state) found it, whatever a test
    changed or left behind when it failed: git's commit and files (reset, clean), then
    DVC's outputs from its cache (checkout; --allow-missing: a project run only in part has
    stages with nothing to check out, and what was not restored fails the check below).
    Nothing re-runs; a no-op when nothing changed."""
    if project_state(project) == state:
        return
    sh(project, "git", "reset", "-q", "--hard", state[0])
    sh(project, "git", "clean", "-qfd")
    sh(project, "dvc", "checkout", "--force", "--quiet", "--allow-missing")
    # What neither git nor DVC tracks and git ignores (dvc_plots/, diff/): the test's own.
    for left in project_state(project)[1].keys() - state[1].keys():
        (project / left).unlink()
    head, files = project_state(project)
    differ = sorted(k for k in files.keys() | state[1].keys() if files.get(k) != state[1].get(k))
    assert (head, differ) == (state[0], []), f"could not restore the project: {differ[:10]}"


def commit(repo: Path, message: str) -> None:
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", message)


def exp_run(project: Path, *settings: str, target: str) -> tuple[set[str], set[str]]:
    """`dvc exp run TARGET -S ...` for ``settings``: the stages it ran, and those that `dvc
    status` then reports changed (the always-changed checks aside), which `dvc repro`
    would run next. The workspace is reset afterwards."""
    args = [a for s in settings for a in ("-S", s)]
    try:
        run = sh(project, "dvc", "exp", "run", target, *args)
        status = json.loads(sh(project, "dvc", "status", "--json").stdout)
    finally:
        sh(project, "git", "checkout", "--", ".")
        sh(project, "dvc", "checkout", "--force")
    return stages_run(run.stdout), {k for k, v in status.items() if v != ["always changed"]}


class Killed(Exception):
    """Stands for a kill -9 right after a checkpoint (the end-to-end test kills for real)."""


def kill_after_checkpoint(monkeypatch, epoch: int, folder_suffix: str = "") -> None:
    """Make BackupAndRestore's checkpoint of ``epoch`` (1-based), in a backup folder whose
    name ends with ``folder_suffix``, the last thing a run does: it raises Killed.
    ``monkeypatch.undo()`` disarms it."""
    import keras

    save = keras.callbacks.BackupAndRestore.on_epoch_end

    def on_epoch_end(self, done, logs=None):
        save(self, done, logs)
        if done + 1 == epoch and self.backup_dir.endswith(folder_suffix):
            raise Killed

    monkeypatch.setattr(keras.callbacks.BackupAndRestore, "on_epoch_end", on_epoch_end)


def sideways_jpeg(seed: int = 5, orientation: int = 6) -> bytes:
    """A phone photo stored sideways (48x24, a bright band on its left) tagged with an EXIF
    ``orientation`` (6, 8: a quarter turn): any path that turns it moves the band."""
    pixels = np.random.default_rng(seed).integers(0, 256, (24, 48, 3), dtype=np.uint8)
    pixels[:, :12] = (250, 240, 20)
    img = Image.fromarray(pixels)
    exif = img.getexif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    return buffer.getvalue()


# --------------------------------------------------------------------------- one file at a time


def hamming(a: str, b: str) -> int:
    """Bits that differ between two perceptual hashes (``pipeline.data.phash``, hex)."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def inspect_image(path: Path, rel: str, policy, root: Path | None = None) -> dict:
    """One image's manifest row, as prepare's ``inspect_all`` makes it (Pillow's limits
    set as there); ``root`` defaults to ``path`` minus ``rel``."""
    from pipeline.data.images import _inspect, pillow_limits

    with pillow_limits(policy):
        return _inspect(Path(path), rel, policy, root)


def check_image(upload, limits) -> None:
    """The server's checks of one uploaded image, header then decode: raises
    ``UploadError`` naming ``upload`` unless it is an image the pipeline decodes."""
    from pipeline.serving.uploads import check_decodes, check_header

    check_header(upload, limits)
    check_decodes(upload)


def head_project(root: Path, classes: list[str], sizes: dict[str, int],
                 images: str = "images") -> None:
    """A project the head's evaluate stage runs on (``stages/evaluate.py head``): params.yaml,
    the cached features of each split in ``sizes`` (``n`` images each, their PNGs under
    ``root / "images"``), the head and its card, and prepare's record of the images
    (``images``: the folder it names, relative to the project or absolute)."""
    from pipeline.models.features import Features
    from pipeline.models.head_file import HeadFile

    write_params(root)
    rng = np.random.default_rng(3)
    names = np.array(classes)
    for split, n in sizes.items():
        y = rng.integers(0, 3, n).astype("int32")
        files = np.array([f"{names[k]}/{split}{i}.png" for i, k in enumerate(y)])
        for file in files:
            (root / "images" / file).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(noise(16, 16, len(file))).save(root / "images" / file)
        x = (rng.normal(0, 1, (n, 6)) + np.eye(3, 6)[y]).astype("float32")
        Features(x, y, files, names).save(root / "data" / "features" / f"{split}.npz")
    (root / "data" / "features" / "info.json").write_text(json.dumps(
        {"params": 1000, "weight_bytes": 4000}))  # the backbone the export ships before it
    (root / "data" / "source.json").write_text(json.dumps(
        {"source": "data/sample", "root": images}))
    (root / "models").mkdir()
    HeadFile(np.zeros(6, "float32"), np.ones(6, "float32"), 2 * np.eye(6, 3, dtype="float32"),
             np.zeros(3, "float32"), 0.2, 1e-4).save(root / "models" / "head.keras")
    (root / "models" / "head.json").write_text(json.dumps(
        {"input": "features", "classes": list(classes), "exif_orientation": True,
         "backbone": {"images_per_second": 1.0}}))
