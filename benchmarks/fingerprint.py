"""What the source stage costs a no-op `dvc repro`, against DVC hashing the data folder itself.

    python benchmarks/fingerprint.py 10000 [100000 ...]

For each N: a folder of N tiny files (100 class folders) in a temporary folder, then

* the fingerprint (pipeline.data.sources.fingerprint.folder_fingerprint) cold (every
  file read and hashed) and warm (sha256s from the cache: a stat walk);
* a tiny DVC project, twice: *before*, a stage that depends on the folder (DVC hashes
  it); *after*, the source stage's design (an always_changed stage writing the
  fingerprint, the next stage depending on that). After a first `dvc repro`, the
  seconds of a no-op `dvc status` and `dvc repro` in each.

Prints one Markdown row per N. Nothing is written outside the temporary folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.data.sources.fingerprint import folder_fingerprint  # noqa: E402

BEFORE = """stages:
  prepare:
    cmd: python -c "open('out.txt', 'w').write('ok')"
    deps: [{data}]
    outs: [out.txt]
"""
AFTER = """stages:
  source:
    cmd: python -c "import json, sys; from pipeline.data.sources.fingerprint import
      folder_fingerprint as f; from pathlib import Path; json.dump(f(Path('{data}'),
      Path('.cache/fp')), open('fp.json', 'w'))"
    always_changed: true
    outs:
      - fp.json: {{cache: false}}
  prepare:
    cmd: python -c "open('out.txt', 'w').write('ok')"
    deps: [fp.json]
    outs: [out.txt]
"""


def make_folder(root: Path, n: int) -> None:
    for i in range(n):
        folder = root / f"class{i % 100:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i}.jpg").write_bytes(i.to_bytes(4, "little") * 64)  # 256 bytes


def timed(cmd: list[str], cwd: Path) -> float:
    env = os.environ | {"PYTHONPATH": str(ROOT), "DVC_NO_ANALYTICS": "1",
                        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]}
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True, timeout=3600)
    return time.perf_counter() - start


def project(tmp: Path, name: str, dvc_yaml: str) -> Path:
    path = tmp / name
    path.mkdir()
    timed(["git", "init", "-q"], path)
    timed(["dvc", "init", "-q"], path)
    (path / "dvc.yaml").write_text(dvc_yaml)
    timed(["dvc", "repro", "-q"], path)  # the first run: hashes everything once
    return path


def main(sizes: list[int]) -> None:
    print("| files | fingerprint cold s | fingerprint warm s | before: no-op dvc status s | "
          "before: no-op dvc repro s | after: no-op dvc status s | after: no-op dvc repro s |")
    print("|---|---|---|---|---|---|---|")
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="fingerprint-bench-") as tmp:
            tmp_path = Path(tmp)
            data = tmp_path / "data"
            make_folder(data, n)
            start = time.perf_counter()
            folder_fingerprint(data, tmp_path / "fp")
            cold = time.perf_counter() - start
            start = time.perf_counter()
            folder_fingerprint(data, tmp_path / "fp")
            warm = time.perf_counter() - start
            before = project(tmp_path, "before", BEFORE.format(data=data))
            after = project(tmp_path, "after", AFTER.format(data=data))
            row = [cold, warm, timed(["dvc", "status"], before), timed(["dvc", "repro"], before),
                   timed(["dvc", "status"], after), timed(["dvc", "repro"], after)]
            print(f"| {n:,} | " + " | ".join(f"{v:.2f}" for v in row) + " |", flush=True)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [10_000])
