"""Safe model artifacts: skops files only, inspected before anything is loaded.

Nothing uploaded is ever unpickled. A file is refused unless it is a zip with skops' schema,
small enough, with a sane number of entries, and every name it asks for is on the exact
allow-list settings.SKOPS_ALLOWED_TYPES points to (lifecycle/allowlist.py). Only then does
skops.io.load build it, trusting exactly those names; the estimator it built is then checked
(lifecycle.estimator_checks) before it is accepted."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import math
import pickletools
import zipfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings
from django.utils.module_loading import import_string

from lifecycle.errors import ArtifactIntegrityError, LifecycleError, TooLarge
from lifecycle.estimator_checks import file_reader_of, first_invalid_tree, missing_parameter

SKOPS_FIX = (
    'Save the fitted model with skops instead: import skops.io; skops.io.dump(model, "model.skops") '
    "and upload model.skops."
)
MAX_SCHEMA_BYTES = 64 * 1024 * 1024
# A real schema nests about 25 levels (a pipeline with a column transformer); skops and the name
# walk below recurse once per level, and Python's parser fails near 1,000 levels.
MAX_SCHEMA_DEPTH = 100

_COMPRESSED_MAGIC = {
    b"\x1f\x8b": "gzip",
    b"BZh": "bz2",
    b"\xfd7zXZ\x00": "xz",
    b"\x5d\x00\x00": "lzma",
    b"\x04\x22\x4d\x18": "lz4",
    b"ZF": "joblib zlib",
    b"\x78\x01": "zlib",
    b"\x78\x5e": "zlib",
    b"\x78\x9c": "zlib",
    b"\x78\xda": "zlib",
}


class ArtifactRefused(LifecycleError):
    code = "artifact_refused"


@dataclass
class InspectedArtifact:
    model: Any
    sha256: str
    size: int
    types: list[str]
    estimator_class: str
    sklearn_version: str
    task: str
    params: dict[str, Any]
    classes: list[Any] = field(default_factory=list)
    feature_names: list[str] | None = None
    n_features: int | None = None


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _looks_like_pickle(data: bytes) -> bool:
    if len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5:
        return True  # PROTO opcode: pickle protocol 2-5, also what joblib writes uncompressed
    try:  # protocols 0 and 1: parse (never execute) the first opcodes
        ops = list(itertools.islice(pickletools.genops(io.BytesIO(data[:4096])), 4))
    except Exception:
        return False
    return len(ops) == 4 and data[:1] in (b"(", b"c", b"]", b"}", b")")


def _sniff_refusal(data: bytes) -> str:
    if _looks_like_pickle(data):
        return (
            "This file is a pickle (as written by pickle, joblib or cloudpickle). Pickles can run "
            "arbitrary code when loaded, so they are never accepted. " + SKOPS_FIX
        )
    for magic, kind in _COMPRESSED_MAGIC.items():
        if data.startswith(magic):
            return (
                f"This file is {kind}-compressed, as joblib.dump(..., compress=...) writes: a compressed "
                "pickle, never accepted. " + SKOPS_FIX
            )
    return "This file is not a skops model file (it is not a skops zip archive). " + SKOPS_FIX


def allowed_types() -> frozenset[str]:
    """The exact names skops may load: a constant in code, named by settings.SKOPS_ALLOWED_TYPES."""
    return frozenset(import_string(settings.SKOPS_ALLOWED_TYPES))


def _schema_types(node: Any, found: set[str]) -> None:
    """Every name a schema makes skops import or call, including the two it keeps outside the
    __module__/__class__ pair: a bound method's name, and a random Generator's bit generator
    (a numpy.random attribute skops looks up and calls)."""
    if isinstance(node, dict):
        module, cls = node.get("__module__"), node.get("__class__")
        if isinstance(module, str) and isinstance(cls, str):
            found.add(f"{module}.{cls}")
            content = node.get("content")
            if node.get("__loader__") == "MethodNode" and isinstance(content, dict):
                found.add(f"{module}.{cls}.{content.get('func')}")
            if node.get("__loader__") == "RandomGeneratorNode":
                found.add(f"numpy.random.{_bit_generator_name(content)}")
        for value in node.values():
            _schema_types(value, found)
    elif isinstance(node, list):
        for value in node:
            _schema_types(value, found)


def _bit_generator_name(content: Any) -> str:
    try:
        return str(json.loads(content["bit_generator"]["content"]["bit_generator"]["content"]))
    except (KeyError, TypeError, ValueError):
        return "<unreadable bit generator>"


def _sklearn_version(schema: dict[str, Any]) -> str:
    try:
        raw = schema["content"]["content"]["_sklearn_version"]["content"]
        return str(json.loads(raw))
    except (KeyError, TypeError, ValueError):
        return ""


def _npy_problem(stream: Any, available: int) -> str:
    """What is wrong with the array a .npy stream declares ("" if nothing), read from its header
    alone. numpy allocates the declared shape before reading the body, so a few bytes declaring
    (10**9,) float64 would take 8 GB: the declared size is checked first."""
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            return f"its .npy format version {version} is not one numpy writes for these arrays"
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        return f"its .npy header cannot be read ({exc})"
    if any(d < 0 for d in shape):
        return f"it declares a negative dimension {shape}"
    declared = math.prod(shape) * dtype.itemsize  # Python integers: no overflow
    limit = settings.SKOPS_MAX_UNCOMPRESSED_BYTES
    if declared > limit:
        return f"it declares a {dtype} array of shape {shape}, {declared} bytes; at most {limit} are accepted"
    if dtype.itemsize and declared > available - stream.tell():
        return f"it declares a {dtype} array of shape {shape}, {declared} bytes, but holds fewer"
    return ""


def _member_problem(archive: zipfile.ZipFile, info: zipfile.ZipInfo, *, nested: bool = False) -> str:
    """What is wrong with the arrays a .npy member (or a sparse matrix's .npz member, itself a
    zip of .npy files) declares, from their headers alone; "" if nothing or not an array."""
    name = info.filename.lower()
    if not name.endswith((".npy", ".npz")):
        return ""
    try:
        with archive.open(info) as stream:
            if name.endswith(".npy"):
                return _npy_problem(stream, info.file_size)
            if nested:
                return "it is an .npz archive inside an .npz archive"
            inner = zipfile.ZipFile(stream)
            members = inner.infolist()
            if len(members) > settings.SKOPS_MAX_ZIP_ENTRIES:
                return f"it holds {len(members)} entries"
            if sum(m.file_size for m in members) > settings.SKOPS_MAX_UNCOMPRESSED_BYTES:
                return f"it unpacks to more than {settings.SKOPS_MAX_UNCOMPRESSED_BYTES} bytes"
            for member in members:
                problem = _member_problem(inner, member, nested=True)
                if problem:
                    return f"its member {member.filename}: {problem}"
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        return f"it cannot be read ({exc})"
    return ""


def _check_declared_arrays(archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo]) -> None:
    """Read every array's header before skops inflates anything; refuse the first member whose
    declared array is too large, or larger than the member holds, naming it."""
    for info in infos:
        problem = _member_problem(archive, info)
        if problem:
            raise ArtifactRefused(
                f"The archive member {info.filename} is refused: {problem}.",
                field="artifact",
                code="array_refused",
                details={"member": info.filename},
            )


def _open_zip(data: bytes) -> dict[str, Any]:
    """Check the zip directory (entry count, uncompressed size, names) and return the schema."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise ArtifactRefused(f"The file is a damaged zip archive ({exc}). {SKOPS_FIX}", field="artifact")
    if len(infos) > settings.SKOPS_MAX_ZIP_ENTRIES:
        raise ArtifactRefused(
            f"The archive has {len(infos)} entries; at most {settings.SKOPS_MAX_ZIP_ENTRIES} are accepted.",
            field="artifact",
        )
    total = sum(i.file_size for i in infos)
    if total > settings.SKOPS_MAX_UNCOMPRESSED_BYTES:
        raise ArtifactRefused(
            f"The archive unpacks to {total} bytes; at most {settings.SKOPS_MAX_UNCOMPRESSED_BYTES} are accepted.",
            field="artifact",
        )
    _check_declared_arrays(archive, infos)
    names = {i.filename: i for i in infos}
    if "schema.json" not in names:
        hint = " It looks like a PyTorch or other zip file." if any(n.endswith(".pkl") for n in names) else ""
        raise ArtifactRefused(f"The zip archive has no skops schema.json.{hint} {SKOPS_FIX}", field="artifact")
    if names["schema.json"].file_size > MAX_SCHEMA_BYTES:
        raise ArtifactRefused("The skops schema.json is too large.", field="artifact")
    try:
        schema = json.loads(archive.read("schema.json"))
    except RecursionError:
        schema = None  # nested far beyond the limit: refused below, by name
    except (ValueError, zipfile.BadZipFile, OSError) as exc:
        raise ArtifactRefused(f"The skops schema.json cannot be read ({exc}).", field="artifact")
    if schema is None or _depth_beyond(schema, MAX_SCHEMA_DEPTH):
        raise ArtifactRefused(
            f"The skops schema.json is nested more than {MAX_SCHEMA_DEPTH} levels deep.",
            field="artifact",
            code="schema_too_deep",
        )
    if not isinstance(schema, dict):
        raise ArtifactRefused("The skops schema.json is not an object.", field="artifact")
    return schema


def _depth_beyond(node: Any, limit: int) -> bool:
    """Whether the JSON value nests deeper than `limit` (walked without recursion)."""
    stack = [(node, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return False


def inspect_artifact(data: bytes) -> InspectedArtifact:
    """Validate and load an uploaded artifact. Raises ArtifactRefused / TooLarge naming the problem."""
    limit = settings.MAX_ARTIFACT_BYTES
    if len(data) > limit:
        raise TooLarge(f"The artifact is {len(data)} bytes; the limit is {limit} bytes.", field="artifact")
    if not data:
        raise ArtifactRefused("The artifact file is empty.", field="artifact")
    if not data.startswith(b"PK\x03\x04"):
        raise ArtifactRefused(_sniff_refusal(data), field="artifact")
    schema = _open_zip(data)

    # skops (and the whole of scikit-learn with it) is imported here, when a model is read, not when
    # Django starts: it was 3 of the 5 seconds every manage.py command (verify_audit) spent starting
    import skops.io as sio
    from sklearn.base import is_classifier, is_regressor

    found: set[str] = set()
    _schema_types(schema, found)
    try:
        found.update(sio.get_untrusted_types(data=data))
    except Exception as exc:  # skops could not even list the types: not a file we can trust
        raise ArtifactRefused(f"skops cannot read this file ({exc}).", field="artifact")
    refused = sorted(found - allowed_types())
    if refused:
        raise ArtifactRefused(
            "The artifact asks for names that are not on the allow-list: "
            + ", ".join(refused)
            + ". Only exact, reviewed names are loaded (scikit-learn's estimators and the NumPy, SciPy and "
            "scikit-learn types they store, plus a few safe functions such as numpy.log1p); nothing is trusted "
            "for the package it comes from. Adding a name is a reviewed change to lifecycle/allowlist.py.",
            field="artifact",
            details={"untrusted_types": refused},
            code="untrusted_types",
        )
    try:
        model = sio.loads(data, trusted=sorted(found))
    except Exception as exc:
        raise ArtifactRefused(f"skops could not load the model ({type(exc).__name__}: {exc}).", field="artifact")

    missing = missing_parameter(model)
    if missing:
        raise ArtifactRefused(
            f"The artifact's {missing}: its stored state is incomplete (edited by hand, or saved by another "
            f"scikit-learn). {SKOPS_FIX}",
            field="artifact",
            code="incomplete_state",
        )
    bad_tree = first_invalid_tree(model)
    if bad_tree:
        raise ArtifactRefused(
            f"The artifact holds a decision tree whose node arrays are inconsistent ({bad_tree}); scikit-learn "
            "would index memory out of bounds when predicting with it, so it is refused.",
            field="artifact",
        )
    reads_files = file_reader_of(model)
    if reads_files:
        raise ArtifactRefused(
            f"The artifact's {reads_files} would open files named in its input (input='filename' or 'file'): "
            "a served model must read the values it is sent, so set input='content'.",
            field="artifact",
        )
    if not hasattr(model, "predict"):
        raise ArtifactRefused(
            f"The artifact holds a {type(model).__name__}, which has no predict(): "
            "upload a fitted estimator or pipeline.",
            field="artifact",
        )
    if is_classifier(model):
        task = "classification"
    elif is_regressor(model):
        task = "regression"
    else:
        raise ArtifactRefused(
            f"{type(model).__name__} is neither a scikit-learn classifier nor a regressor.", field="artifact"
        )
    feature_names = getattr(model, "feature_names_in_", None)
    classes = getattr(model, "classes_", None)
    if classes is not None and (isinstance(classes, list) or np.ndim(classes) != 1):
        raise ArtifactRefused(
            f"{type(model).__name__} predicts several outputs at once; the registry serves models with one "
            "output (one label or value per row).",
            field="artifact",
        )
    return InspectedArtifact(
        model=model,
        sha256=sha256_of(data),
        size=len(data),
        types=sorted(found),
        estimator_class=f"{type(model).__module__}.{type(model).__qualname__}",
        sklearn_version=_sklearn_version(schema),
        task=task,
        params=_json_params(model),
        classes=[_jsonable(c) for c in classes] if classes is not None else [],
        feature_names=[str(n) for n in feature_names] if feature_names is not None else None,
        n_features=getattr(model, "n_features_in_", None),
    )


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return value


def _json_params(model: Any) -> dict[str, Any]:
    """get_params(deep=False) as JSON; nested estimators are named by their class and params."""

    def convert(value: Any) -> Any:
        if hasattr(value, "get_params"):
            return {"__estimator__": type(value).__name__, "params": convert(value.get_params(deep=False))}
        if isinstance(value, dict):
            return {str(k): convert(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [convert(v) for v in value]
        if value is None or isinstance(value, (str, bool, int, float)):
            return value
        if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
            return value.item()
        return repr(value)[:500]

    return convert(model.get_params(deep=False))


def read_verified_bytes(stored_file: Any, expected_sha256: str) -> bytes:
    """Read an artifact from storage and check it against the SHA-256 recorded at upload."""
    with stored_file.open("rb") as handle:
        data = handle.read()
    actual = sha256_of(data)
    if actual != expected_sha256:
        raise ArtifactIntegrityError(
            f"The stored artifact's SHA-256 is {actual}, but {expected_sha256} was recorded at upload: "
            "it was changed after upload and will not be loaded.",
            details={"expected_sha256": expected_sha256, "actual_sha256": actual},
        )
    return data
