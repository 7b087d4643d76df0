r"""Worktree paths: the name codeweir gives any path git can store, and opening a worktree file
without leaving the worktree.

Names. Git stores a path as bytes, which need not be UTF-8 and may hold a newline or an escape
character. codeweir names a path with a str that every stage can carry as it is (Tantivy, JSON,
a terminal, a log line): the bytes read as UTF-8, except that

    a backslash is written  \\
    a byte that is not part of valid UTF-8 is written  \xHH  (two lowercase hex digits)
    each byte of a control character (C0, DEL, C1) is written  \xHH  too

So a name of valid UTF-8 without controls or backslashes, nearly every name, is itself;
b"bad\xffname.py" is named `bad\xffname.py` (a backslash, then "xff"), b"a\nb.py" `a\x0ab.py`,
and b"a\\b.py" `a\\b.py`. The naming is one to one: path_bytes(path_name(raw)) == raw for every
raw. Every path leaves git/ as a name (scans, history, freshness) and comes back to bytes here
whenever a file is read or its freshness checked.

Opening. A worktree file is opened relative to its repository's root with no symlink followed
in any component, so a directory swapped for a symlink (to /etc, say) between the scan and the
read pulls in nothing outside the worktree: openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS
where the kernel has it (Linux 5.6), else one O_NOFOLLOW openat per component from the root's
directory. The file itself is opened O_NONBLOCK (a FIFO swapped in does not hang the open) and
its readers check that it is a regular file before reading it.

Every function blocks (file system calls).
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import stat
import sys
from typing import Any

# -- names -------------------------------------------------------------------------------------

# What a name writes escaped: controls, the backslash, and (after surrogateescape decoding) the
# lone surrogates U+DC80..U+DCFF that stand for bytes that are not valid UTF-8.
_ESCAPED = re.compile("[\x00-\x1f\x7f-\x9f\\\\\udc80-\udcff]")
_ESCAPE = re.compile(r"\\(\\|x[0-9a-f]{2})")


def path_name(raw: bytes) -> str:
    """codeweir's name for the path git stores as `raw` (see the module's docstring)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", "surrogateescape")
    return _ESCAPED.sub(_escape, text) if _ESCAPED.search(text) else text


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\\":
        return "\\\\"
    if "\udc80" <= char <= "\udcff":
        return f"\\x{ord(char) - 0xDC00:02x}"
    return "".join(f"\\x{byte:02x}" for byte in char.encode("utf-8"))


def path_bytes(name: str) -> bytes:
    """The path, as git stores it, that `name` names. A backslash that starts no escape stands
    for itself (so a name stored before names were escaped still finds its file)."""
    if "\\" not in name:
        return name.encode("utf-8", "surrogateescape")
    out = bytearray()
    start = 0
    for match in _ESCAPE.finditer(name):
        out += name[start : match.start()].encode("utf-8", "surrogateescape")
        escape = match.group(1)
        out += b"\\" if escape == "\\" else bytes((int(escape[1:], 16),))
        start = match.end()
    out += name[start:].encode("utf-8", "surrogateescape")
    return bytes(out)


def git_str(name: str) -> str:
    """The str pygit2 takes for the path `name` names: its bytes decoded as pygit2 decodes them."""
    return os.fsdecode(path_bytes(name))


# -- opening beneath the root ----------------------------------------------------------------------

# Intermediate directories: O_PATH needs no read permission on them, as a path lookup does not.
_DIRECTORY = os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC | getattr(os, "O_PATH", os.O_RDONLY)
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_ROOT = os.O_DIRECTORY | os.O_CLOEXEC | getattr(os, "O_PATH", os.O_RDONLY)

_SYS_OPENAT2 = 437  # the same on every Linux architecture (the unified syscall table), but alpha
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08


class _OpenHow(ctypes.Structure):  # struct open_how, linux/openat2.h
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


# libc through ctypes.PyDLL, once looked up: its calls keep the GIL (syscalls of microseconds:
# see stat_beneath for why that matters); False where openat2 is not to be tried.
_libc: Any = None


def _held_libc() -> Any:
    global _libc
    if _libc is None:
        try:
            libc = ctypes.PyDLL(None, use_errno=True)
            libc.syscall.restype = ctypes.c_long
            _libc = libc if sys.platform == "linux" and os.uname().machine != "alpha" else False
        except (OSError, AttributeError):
            _libc = False
    return _libc


def _openat2(dir_fd: int, path: bytes, flags: int) -> int | None:
    """openat2(dir_fd, path, flags, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS); None where the kernel
    (or a seccomp filter) does not offer it, or the path is too long for one call."""
    global _libc
    if not (libc := _held_libc()):
        return None
    how = _OpenHow(flags, 0, _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS)
    fd = libc.syscall(
        ctypes.c_long(_SYS_OPENAT2),
        ctypes.c_long(dir_fd),
        ctypes.c_char_p(path),
        ctypes.byref(how),
        ctypes.c_size_t(ctypes.sizeof(how)),
    )
    if fd >= 0:
        return fd
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EPERM):  # no openat2 here (an old kernel, a seccomp filter)
        _libc = False
        return None
    if code == errno.ENAMETOOLONG:  # over PATH_MAX in one call: a component at a time has no limit
        return None
    raise OSError(code, os.strerror(code), path)


def open_beneath(root: str, name: str) -> int:
    """A read-only, non-blocking descriptor of the path `name` names beneath the directory `root`,
    with no symlink followed on the way or at the end. The caller closes it, and checks what it is.

    Raises OSError: ENOENT (gone), ENOTDIR, ELOOP (a symlink on the way or at the end), EINVAL (an
    empty, "." or ".." component, or a NUL: no path git stores), or what the open says.
    """
    parts = _parts(name)
    root_fd = os.open(root, _ROOT)
    try:
        fd = _openat2(root_fd, b"/".join(parts), _FILE)
        return fd if fd is not None else _open_walking(root_fd, parts)
    finally:
        os.close(root_fd)


def _parts(name: str) -> list[bytes]:
    parts = path_bytes(name).split(b"/")
    if any(part in (b"", b".", b"..") or b"\0" in part for part in parts):
        raise OSError(errno.EINVAL, "not a path inside the worktree", name)
    return parts


def _open_walking(root_fd: int, parts: list[bytes]) -> int:
    """open_beneath without openat2: one openat per component, each refusing a symlink. Holds
    two descriptors at a time, whatever the depth."""
    fd = root_fd
    try:
        for part in parts[:-1]:
            try:
                child = os.open(part, _DIRECTORY, dir_fd=fd)
            except NotADirectoryError:
                if stat.S_ISLNK(os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode):
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), part) from None
                raise
            if fd != root_fd:
                os.close(fd)
            fd = child
        return os.open(parts[-1], _FILE, dir_fd=fd)
    finally:
        if fd != root_fd:
            os.close(fd)


# -- a stat beneath the root that keeps the GIL -------------------------------------------------

# Checking a search's hits against the worktree (git/freshness.py) makes a few syscalls a file.
# Made through os.*, each gives the GIL up and, while another thread runs Python (the index's
# writer during a sync), waits up to a switch interval to have it back: ten files' check took
# 0.08 ms alone and 32 ms beside a busy thread. Through ctypes.PyDLL they keep the GIL, and take
# microseconds.


class _StatxTimestamp(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_int64), ("nsec", ctypes.c_uint32), ("reserved", ctypes.c_int32)]


class _Statx(ctypes.Structure):  # struct statx, linux/stat.h: 256 bytes on every architecture
    _fields_ = [
        ("mask", ctypes.c_uint32),
        ("blksize", ctypes.c_uint32),
        ("attributes", ctypes.c_uint64),
        ("nlink", ctypes.c_uint32),
        ("uid", ctypes.c_uint32),
        ("gid", ctypes.c_uint32),
        ("mode", ctypes.c_uint16),
        ("spare0", ctypes.c_uint16),
        ("ino", ctypes.c_uint64),
        ("size", ctypes.c_uint64),
        ("blocks", ctypes.c_uint64),
        ("attributes_mask", ctypes.c_uint64),
        ("atime", _StatxTimestamp),
        ("btime", _StatxTimestamp),
        ("ctime", _StatxTimestamp),
        ("mtime", _StatxTimestamp),
        ("rdev_major", ctypes.c_uint32),
        ("rdev_minor", ctypes.c_uint32),
        ("dev_major", ctypes.c_uint32),
        ("dev_minor", ctypes.c_uint32),
        ("spare", ctypes.c_uint64 * 14),
    ]


_AT_EMPTY_PATH = 0x1000
_STATX_BASIC_STATS = 0x7FF
_LOOKUP = os.O_NOFOLLOW | os.O_CLOEXEC | getattr(os, "O_PATH", 0)  # no open of the file itself

Signature = tuple[int, int, int, int, int, int]  # (mode, device, inode, size, mtime ns, ctime ns)


def stat_beneath(root: str, name: str) -> Signature | None:
    """What `name` names beneath `root`, as open_beneath finds it (no symlink followed), stat'ed
    by syscalls that keep the GIL; None where they are not offered (not Linux, no openat2 or
    statx, or a path too long for one call): then open_beneath and os.fstat. Raises OSError as
    open_beneath does."""
    libc = _held_libc()
    if not libc or not (statx := getattr(libc, "statx", None)) or not getattr(os, "O_PATH", 0):
        return None
    parts = _parts(name)
    root_fd = _held_call(libc.open, os.fsencode(root), ctypes.c_int(_ROOT))
    try:
        fd = _openat2(root_fd, b"/".join(parts), _LOOKUP)
        if fd is None:
            return None
        try:
            found = _Statx()
            _held_call(statx, fd, b"", _AT_EMPTY_PATH, _STATX_BASIC_STATS, ctypes.byref(found))
        finally:
            libc.close(fd)
    finally:
        libc.close(root_fd)
    mtime = found.mtime.sec * 1_000_000_000 + found.mtime.nsec
    ctime = found.ctime.sec * 1_000_000_000 + found.ctime.nsec
    return found.mode, os.makedev(found.dev_major, found.dev_minor), found.ino, found.size, mtime, ctime


def _held_call(function: Any, *args: Any) -> int:
    result = function(*args)
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return int(result)


def read_fd(fd: int, limit: int | None = None) -> bytes:
    """What `fd` holds from where it stands; at most `limit` + 1 bytes when a limit is given, so
    a caller sees that there was more without holding it all."""
    chunks = []
    left = None if limit is None else limit + 1
    while left is None or left > 0:
        data = os.read(fd, 1 << 20 if left is None else min(1 << 20, left))
        if not data:
            break
        chunks.append(data)
        if left is not None:
            left -= len(data)
    return b"".join(chunks)


def read_regular(root: str, name: str, limit: int | None = None) -> bytes:
    """The content of the regular file `name` names beneath `root` (see open_beneath, read_fd).

    Raises OSError, and NotRegularFile for a FIFO, socket, device or directory (never read).
    """
    fd = open_beneath(root, name)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegularFile(errno.EINVAL, "not a regular file (a FIFO, socket, device or directory): not read", name)
        return read_fd(fd, limit)
    finally:
        os.close(fd)


class NotRegularFile(OSError):
    """What was found at a file's path is no regular file."""


def why_unreadable(exc: OSError) -> str:
    """Why a worktree file could not be read, in a person's words."""
    if exc.errno == errno.ELOOP:
        return "it, or a directory on its path, is a symlink: not followed"
    return exc.strerror or str(exc)
