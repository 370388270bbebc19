"""Prompt files handed to the dashboard: uploads read in a temporary folder with the CLI's own loaders (so
pickled code is refused the same way), and server paths, read only inside the runs folder."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from probe.core.softprompt import SoftPrompt

MAX_UPLOAD_MB = 50
"""The largest prompt file or zipped adapter the dashboard takes (prompts are small; this keeps a zip bomb out)."""
UPLOAD_SUFFIXES = (".safetensors", ".npy", ".pt", ".pth", ".bin", ".zip")
_MAX_ZIP_MEMBERS = 100


def read_upload(name: str, data: bytes, *, max_mb: int = MAX_UPLOAD_MB) -> list[SoftPrompt]:
    """The prompts in an uploaded file: a tensor file, or a zipped PEFT adapter folder.

    The bytes are written only inside a temporary folder, which is removed once the prompts are read. The
    loaders are the CLI's own, so pickled code is refused the same way.

    Raises:
        ValueError: too large, an unknown kind of file, a zip with unsafe paths or no single adapter, or a file
            the loaders refuse (pickled objects, wrong shapes, ...).
    """
    import tempfile
    from dataclasses import replace

    from probe.core.io import read_budget
    from probe.formats.prompts import load_prompts

    base = Path(name).name or "upload"
    if len(data) > max_mb * 2**20:
        raise ValueError(f"upload '{base}' is {len(data) / 2**20:.1f} MB; the limit is {max_mb} MB")
    suffix = Path(base).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise ValueError(f"upload '{base}' has suffix '{suffix}'; expected one of {', '.join(UPLOAD_SUFFIXES)}")
    with tempfile.TemporaryDirectory(prefix="probe-upload-") as tmp:
        target = Path(tmp) / f"upload{suffix}"
        try:
            if suffix == ".zip":
                target = _adapter_in(_unzip(data, Path(tmp) / "unzipped", max_mb), base)
            else:
                target.write_bytes(data)
            with read_budget(max_mb * 2**20):  # what any file may expand to, counted from its real data
                prompts = load_prompts(target)
        except UPLOAD_ERRORS as e:  # one line that names the upload, never the server's temporary folder
            raise ValueError(_named(e, str(target), tmp, base)) from e
    return [replace(p, source=f"upload: {base}") for p in prompts]


UPLOAD_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    FileNotFoundError,
    OSError,
    EOFError,
    KeyError,
    RuntimeError,
    NotImplementedError,
    MemoryError,
    RecursionError,
    zipfile.BadZipFile,
)
"""What reading an upload may raise, whatever is inside it: each becomes one line on the page."""


def _named(error: BaseException, target: str, tmp: str, base: str) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    if not isinstance(error, ValueError | TypeError | FileNotFoundError):
        text = f"'{base}' could not be read ({type(error).__name__}: {text})"
    return text.replace(target, base).replace(tmp, base)


def _unzip(data: bytes, folder: Path, max_mb: int) -> Path:
    """Unpack a zipped adapter, counting the bytes actually inflated (a zip's own sizes can lie)."""
    import io
    from pathlib import PurePosixPath

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as e:
        raise ValueError(f"the upload is not a readable zip file ({e})") from e
    limit, total = max_mb * 2**20, 0
    with archive:
        members = archive.infolist()
        if len(members) > _MAX_ZIP_MEMBERS:
            raise ValueError(f"the zip holds {len(members)} files; a PEFT adapter has a handful")
        names = [m.filename for m in members]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"the zip holds {twice[0]} twice; zip one adapter folder")
        for member in members:
            parts = PurePosixPath(member.filename).parts
            if PurePosixPath(member.filename).is_absolute() or ".." in parts:
                raise ValueError(f"the zip holds an unsafe path '{member.filename}'; it was not unpacked")
            if member.is_dir():
                continue
            target = folder.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as source, open(target, "xb") as sink:
                while chunk := source.read(2**20):
                    total += len(chunk)
                    if total > limit:
                        raise ValueError(f"the zip unpacks to more than {max_mb} MB; the limit is {max_mb} MB")
                    sink.write(chunk)
    return folder


def _adapter_in(folder: Path, name: str) -> Path:
    from probe.formats.files import ADAPTER_CONFIG

    found = sorted({p.parent for p in folder.rglob(ADAPTER_CONFIG)})
    if len(found) != 1:
        raise ValueError(
            f"'{name}' holds {len(found)} PEFT adapter folders (with {ADAPTER_CONFIG}); zip exactly one adapter folder"
        )
    return found[0]


def under_folder(path: str | os.PathLike[str], folder: str | os.PathLike[str]) -> Path:
    """``path`` resolved, if it lies inside ``folder``: the dashboard reads server files only under the runs folder.

    Raises:
        ValueError: it lies outside.
        FileNotFoundError: it does not exist.
    """
    from probe.core.io import escapes

    resolved, root = Path(path).expanduser().resolve(), Path(folder).expanduser().resolve()
    if not resolved.is_relative_to(root):
        raise ValueError(
            f"'{path}' is outside the runs folder '{folder}'; the dashboard reads server files only there. "
            "Upload the file instead"
        )
    if not resolved.exists():
        raise FileNotFoundError(f"'{path}' does not exist")
    outside = escapes(resolved, root)
    if outside:
        raise ValueError(
            f"'{path}' holds a link that leads outside the runs folder ({outside[0].name}); the dashboard reads "
            "server files only inside it. Upload the file instead"
        )
    return resolved


def read_server_file(path: str | os.PathLike[str], folder: str | os.PathLike[str]) -> list[SoftPrompt]:
    """The prompts in a server file, which must lie inside ``folder`` (:func:`under_folder`)."""
    from probe.formats.prompts import load_prompts

    return load_prompts(under_folder(path, folder))
