"""Files as committed at a git revision, read safely.

A revision given by a user (``--against REV``) is checked once, ``git rev-parse --verify
--end-of-options REV^{commit}``, and only its commit hash is passed on: a value like
``--output=F`` never reaches git as an option, and a mistyped branch is an error naming it
instead of an empty baseline.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from pipeline.core.errors import PipelineError


def _git(*args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", *args], capture_output=True)
    except FileNotFoundError:
        raise PipelineError("git is not on PATH: it reads the committed baseline") from None


def commit(rev: str) -> str:
    """The commit hash ``rev`` (a branch, tag, commit, ``HEAD~2``...) names; a PipelineError
    naming ``rev`` when it names none."""
    if not rev or rev.startswith("-"):
        raise PipelineError(f"--against {rev!r}: a git revision (branch, tag or commit), "
                            "not an option")
    done = _git("rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")
    if done.returncode == 0:
        return done.stdout.decode().strip()
    if _git("rev-parse", "--git-dir").returncode != 0:
        raise PipelineError(f"{Path.cwd()}: not a git repository, so no revision "
                            f"{rev!r} to compare with")
    raise PipelineError(f"--against {rev!r}: no such revision in this repository "
                        "(mistyped? in CI, was it fetched?)")


def show(sha: str, path: Path) -> str | None:
    """The text of ``path`` at commit ``sha``; None when it is not there."""
    done = _git("show", f"{sha}:{path.as_posix()}")
    if done.returncode != 0:
        return None
    try:
        return done.stdout.decode("utf-8")
    except UnicodeDecodeError:
        raise PipelineError(f"{sha[:7]}:{path.as_posix()}: not UTF-8 text") from None


def listing(sha: str, folder: Path) -> list[str]:
    """The names of the files directly in ``folder`` at commit ``sha``."""
    done = _git("ls-tree", "--name-only", sha, "--", f"{folder.as_posix()}/")
    return [Path(p).name for p in done.stdout.decode("utf-8", "replace").split("\n") if p]


def last_commit_with(sha: str, path: Path) -> str | None:
    """The newest commit up to ``sha`` that holds ``path`` as it added or changed it (None:
    no commit in the history ``sha`` has ever held it)."""
    done = _git("log", "-1", "--format=%H", "--diff-filter=AM", sha, "--", path.as_posix())
    return done.stdout.decode().strip() or None


def shallow() -> bool:
    """Whether this clone lacks history (``git clone --depth``, CI's default checkout)."""
    return _git("rev-parse", "--is-shallow-repository").stdout.decode().strip() == "true"
