"""The ONNX Runtime engine: convert a fitted scikit-learn model with skl2onnx, check it agrees
with the skops model, and run it. Conversion and comparison are pure (no database)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

TOLERANCE = 1e-5


@dataclass
class Comparison:
    passed: bool
    label_agreement: float
    max_probability_difference: float | None
    rows: int
    reason: str = ""


def convert(model: Any, schema: list[dict[str, str]]) -> bytes:
    """skl2onnx conversion with one [N, 1] input per feature column (strings, or doubles)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, StringTensorType

    types = [
        (c["name"], StringTensorType([None, 1]) if c["dtype"] == "string" else DoubleTensorType([None, 1]))
        for c in schema
    ]
    # No ZipMap: probabilities come back as a plain [N, C] tensor.
    onnx_model = convert_sklearn(
        model, initial_types=types, options={"zipmap": False}, target_opset={"": 17, "ai.onnx.ml": 3}
    )
    return round_tree_inputs_to_float32(onnx_model).SerializeToString()


TREE_OPS = ("TreeEnsembleClassifier", "TreeEnsembleRegressor", "TreeEnsemble")


def round_tree_inputs_to_float32(onnx_model: Any) -> Any:
    """scikit-learn's trees compare float32(x) with their thresholds (they cast X to float32
    before walking the tree); a double-typed ONNX tree compares x itself, so a value close to a
    threshold can take the other branch. Rounding a double input through float32 first gives
    scikit-learn's semantics (on the demo forest: 37 of 300 rows differed by up to 0.046, after
    this none by more than 1e-7). The comparison check still decides whether ONNX is used."""
    from onnx import TensorProto, helper, shape_inference

    inferred = shape_inference.infer_shapes(onnx_model)
    known = {v.name: v.type.tensor_type.elem_type for v in [*inferred.graph.value_info, *inferred.graph.input]}
    graph = onnx_model.graph
    for index in reversed(range(len(graph.node))):
        node = graph.node[index]
        if node.op_type not in TREE_OPS or known.get(node.input[0]) != TensorProto.DOUBLE:
            continue
        source = node.input[0]
        to_float = helper.make_node("Cast", [source], [f"{source}_f32"], to=TensorProto.FLOAT, name=f"{source}_f32")
        back = helper.make_node(
            "Cast", [f"{source}_f32"], [f"{source}_as_sklearn"], to=TensorProto.DOUBLE, name=f"{source}_as_sklearn"
        )
        node.input[0] = f"{source}_as_sklearn"
        graph.node.insert(index, back)
        graph.node.insert(index, to_float)
    return onnx_model


def session(onnx_bytes: bytes) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    # One thread per server process: the processes are the parallelism (docs/benchmarks.md).
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


def feed(frame: pd.DataFrame, schema: list[dict[str, str]]) -> dict[str, np.ndarray]:
    out = {}
    for c in schema:
        values = frame[c["name"]].to_numpy()
        out[c["name"]] = (values.astype(object) if c["dtype"] == "string" else values.astype(np.float64)).reshape(-1, 1)
    return out


def run(sess: Any, frame: pd.DataFrame, schema: list[dict[str, str]]) -> tuple[np.ndarray, np.ndarray | None]:
    return run_tensors(sess, feed(frame, schema))


def run_tensors(sess: Any, tensors: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
    results = sess.run(None, tensors)
    labels = np.asarray(results[0]).reshape(-1)
    probabilities = np.asarray(results[1], dtype=float) if len(results) > 1 else None
    return labels, probabilities


def compare(sess: Any, model: Any, frame: pd.DataFrame, schema: list[dict[str, str]], task: str) -> Comparison:
    labels, probabilities = run(sess, frame, schema)
    expected = np.asarray(model.predict(frame))
    diff: float | None
    if task == "regression":
        diff = float(np.max(np.abs(labels.astype(float) - expected.astype(float)))) if len(expected) else 0.0
        agreement = float(np.mean(np.isclose(labels.astype(float), expected.astype(float), atol=TOLERANCE)))
        ok = diff <= TOLERANCE
        return Comparison(ok, agreement, diff, len(frame), "" if ok else f"predictions differ by up to {diff:.3g}")
    agreement = float(np.mean(labels.astype(str) == expected.astype(str)))
    diff = None
    if probabilities is not None and hasattr(model, "predict_proba"):
        diff = float(np.max(np.abs(probabilities - np.asarray(model.predict_proba(frame)))))
    ok = agreement == 1.0 and (diff is None or diff <= TOLERANCE)
    reason = "" if ok else f"labels agree on {agreement:.2%}, probabilities differ by up to {diff:.3g} (> {TOLERANCE})"
    return Comparison(ok, agreement, diff, len(frame), reason)
