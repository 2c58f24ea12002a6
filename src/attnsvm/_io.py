"""File input and output.

* Atomic writes: a result file is either complete or absent, never half written
  (:func:`atomic_write_bytes`, :func:`atomic_write_text`, :func:`atomic_savez`).
* Bounded reads: :func:`read_npz` reads a ``.npz`` archive without unpickling and checks every
  member's ``.npy`` header (dtype, declared shape, size against the archive and a bound)
  *before* allocating its array, so a hostile or truncated file is refused, not expanded.
"""

from __future__ import annotations

import errno
import io
import math
import os
import stat
import tempfile
import tokenize
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .exceptions import InstanceFileError, InvalidInputError

__all__ = ["atomic_savez", "atomic_write_text", "atomic_write_bytes", "check_output_path",
           "read_npz", "npz_headers", "MAX_ARRAY_BYTES"]

#: Largest total size of the arrays (bytes, after decompression) that :func:`read_npz` accepts
#: by default (4 GiB).
MAX_ARRAY_BYTES = 4 << 30


_NAME_MAX = 255


def check_output_path(path: str | os.PathLike[str], field: str = "output path",
                      kind: str = "file") -> Path:
    """Check that ``path`` can be written, before any work is done.

    Parameters
    ----------
    path : path-like
    field : str
        What the path is (an option name such as ``"--out"``), used in messages.
    kind : {"file", "dir"}
        A result file (must not be an existing folder) or an output folder (must not be an
        existing file).  Either way the nearest existing ancestor must be a writable folder.

    Returns
    -------
    Path

    Raises
    ------
    InvalidInputError
        With a one-line message naming ``field``.
    """
    p = Path(path)
    if str(path) == "":
        raise InvalidInputError(f"{field} must be a path; got an empty string")
    if any(len(part.encode()) > _NAME_MAX for part in p.parts):
        raise InvalidInputError(
            f"{field}: a name in '{str(p)[:60]}...' is longer than {_NAME_MAX} bytes")
    if kind == "file":
        if p.is_dir():
            raise InvalidInputError(f"{field} must be a file path; '{p}' is a folder")
        _refuse_special(p, field)
        parent = p.parent
    else:
        if p.exists() and not p.is_dir():
            raise InvalidInputError(f"{field} must be a folder; '{p}' is an existing file")
        parent = p
    anc = parent if str(parent) else Path(".")
    while not anc.exists():
        anc = anc.parent
    if not anc.is_dir():
        raise InvalidInputError(f"{field}: '{anc}' is a file, not a folder")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise InvalidInputError(f"{field}: the folder '{anc}' is not writable")
    return p


def _refuse_special(p: Path, field: str) -> None:
    """Refuse an existing ``p`` that is not a regular file (FIFO, device, socket, symbolic
    link): the atomic rename would replace it (``/dev/stdout`` included) instead of writing
    into it."""
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise InvalidInputError(f"{field}: cannot inspect '{p}': {exc.strerror or exc}"
                                ) from None
    if stat.S_ISREG(st.st_mode):
        return
    what = ("a symbolic link" if stat.S_ISLNK(st.st_mode) else
            "a named pipe (FIFO)" if stat.S_ISFIFO(st.st_mode) else
            "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else
            "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
    raise InvalidInputError(
        f"{field}: '{p}' is {what}; results are written to a new or regular file only "
        f"(the atomic rename would replace it)")


#: errors of an output path the user gave (reported as bad input, exit code 2)
_PATH_ERRNOS = {errno.EISDIR, errno.ENOTDIR, errno.ENAMETOOLONG, errno.EACCES, errno.EPERM,
                errno.ENOENT, errno.EROFS, errno.EEXIST}


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    Raises
    ------
    InvalidInputError
        ``path`` cannot be a file: a folder, a name too long, a parent that is a file, no
        permission.  Nothing is written then and an existing file is left as it was.
    """
    p = check_output_path(path, "the output file")
    tmp: str | None = None
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        # a short temporary name: a long result name must not overflow the file-name limit
        fd, tmp = tempfile.mkstemp(prefix=".attnsvm-", suffix=".tmp", dir=p.parent)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; results are ordinary files
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        _refuse_special(p, "the output file")  # created meanwhile: still never replaced
        os.replace(tmp, p)
    except BaseException as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno in _PATH_ERRNOS:
            why = ("a part of its folder path is a file" if exc.errno in
                   (errno.EEXIST, errno.ENOTDIR) else exc.strerror or str(exc))
            raise InvalidInputError(f"Cannot write '{p}': {why}.") from None
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Atomically write UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_savez(path: str | os.PathLike[str], **arrays: Any) -> None:
    """Atomically write a ``.npz`` archive of plain (non-object) arrays."""
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})  # type: ignore[arg-type]
    atomic_write_bytes(path, buf.getvalue())


def _read_header(fh: Any, where: str) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """The ``.npy`` header of an open member: (shape, fortran_order, dtype)."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(fh)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = fmt.read_array_header_2_0(fh)
        else:  # pragma: no cover - numpy rejects other versions in read_magic
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, EOFError, OSError, zipfile.BadZipFile, SyntaxError, TypeError,
            MemoryError, RecursionError, tokenize.TokenError) as exc:
        # numpy parses the header dict with the tokenizer: a cut-off dict is a TokenError
        raise InstanceFileError(
            f"{where} is not a valid .npy array: its header is truncated or corrupt "
            f"({' '.join(str(exc).split())}).") from None
    return tuple(int(s) for s in shape), bool(fortran), np.dtype(dtype)


def read_npz(path: str | os.PathLike[str], *, max_bytes: int = MAX_ARRAY_BYTES,
             what: str = "file") -> dict[str, np.ndarray]:
    """Read every array of a ``.npz`` archive safely.

    Each member's header is read first; the member is refused, before any allocation, when
    its dtype holds Python objects (that needs pickle), when its declared size
    ``prod(shape) * itemsize`` exceeds the member's stored (uncompressed) size, or when the
    arrays together would exceed ``max_bytes``.  Truncated or corrupt data is reported as such.

    Parameters
    ----------
    path : path-like
    max_bytes : int
        Largest accepted total size of the arrays, in bytes.
    what : str
        Name of the file in messages (``"instance file"``, ...).

    Returns
    -------
    dict of str to ndarray
        Member name (without ``.npy``) to array.

    Raises
    ------
    InstanceFileError
        Missing file, not a ``.npz`` archive, truncated or corrupt members, declared sizes
        that the file cannot hold or that exceed ``max_bytes``.
    InvalidInputError
        Object arrays.
    """
    p = Path(path)
    label = f"The {what} '{p}'"
    if not p.is_file():
        raise InstanceFileError(f"{label} does not exist or is not a file.")
    try:
        zf = zipfile.ZipFile(p)
    except zipfile.BadZipFile:
        raise InstanceFileError(
            f"{label} is not a .npz archive, or it is truncated or corrupt (no zip "
            f"directory).") from None
    except OSError as exc:
        raise InstanceFileError(f"{label} cannot be read: {exc.strerror or exc}.") from None
    out: dict[str, np.ndarray] = {}
    total = 0
    with zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            where = f"{label}: member '{name}'"
            try:
                with zf.open(info) as fh:
                    shape, fortran, dtype = _read_header(fh, where)
                    if dtype.hasobject:
                        raise InvalidInputError(
                            f"{where} holds Python objects, which are not accepted "
                            f"(they would need pickle); store plain numeric arrays.")
                    if any(s < 0 for s in shape):
                        raise InstanceFileError(f"{where} declares a negative shape {shape}.")
                    if any(s > max_bytes for s in shape):
                        # even a zero-size array cannot have such an axis (NumPy refuses it)
                        raise InstanceFileError(
                            f"{where} declares shape {shape}: an axis longer than "
                            f"{max_bytes:,} is not accepted.")
                    nbytes = math.prod(shape) * dtype.itemsize
                    room = info.file_size - fh.tell()
                    if nbytes > room:
                        raise InstanceFileError(
                            f"{where} declares shape {shape} ({nbytes:,} bytes of "
                            f"{dtype}) but holds only {max(room, 0):,} bytes: the file is "
                            f"truncated or corrupt.")
                    total += nbytes
                    if total > max_bytes:
                        raise InstanceFileError(
                            f"{where} declares shape {shape} ({nbytes:,} bytes): the arrays "
                            f"would exceed the limit of {max_bytes:,} bytes in all.")
                    data = fh.read(nbytes)
                    if len(data) != nbytes:
                        raise InstanceFileError(
                            f"{where} is truncated: {len(data):,} of {nbytes:,} bytes.")
            except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError,
                    RuntimeError) as exc:
                if isinstance(exc, InvalidInputError):
                    raise
                raise InstanceFileError(
                    f"{where} is truncated or corrupt ({' '.join(str(exc).split())}).") from None
            arr = np.frombuffer(data, dtype=dtype)
            out[name] = arr.reshape(shape, order="F" if fortran else "C").copy()
    return out


def npz_headers(path: str | os.PathLike[str]) -> dict[str, tuple[tuple[int, ...], np.dtype[Any]]]:
    """The declared ``(shape, dtype)`` of every member of a ``.npz`` archive, reading only the
    ``.npy`` headers (no array data).  Members that cannot be read, or that declare more data
    than they hold, are left out: the full read (:func:`read_npz`) reports them.

    Returns
    -------
    dict of str to (tuple of int, dtype)
    """
    out: dict[str, tuple[tuple[int, ...], np.dtype[Any]]] = {}
    try:
        zf = zipfile.ZipFile(Path(path))
    except (OSError, zipfile.BadZipFile, ValueError):
        return out
    with zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            try:
                with zf.open(info) as fh:
                    shape, _fortran, dtype = _read_header(fh, name)
                    room = info.file_size - fh.tell()
            except (InvalidInputError, zipfile.BadZipFile, EOFError, OSError, ValueError,
                    NotImplementedError, RuntimeError):
                continue
            if any(s < 0 for s in shape) or math.prod(shape) * dtype.itemsize > room:
                continue  # a member that lies about its size: read_npz reports it
            out[name] = (shape, dtype)
    return out
