"""A model as tutti loads it: the ONNX file and its JSON sidecar (what
feeds the graph, how to read its output, how it was made and scored),
written side by side for train.py (the forest) and cnn.py (the CNN)."""
import hashlib
import json


def write_model(stem, onnx_bytes, meta, thresholds, relative, training, validation, hop_seconds=None):
    """Writes STEM.onnx and its sidecar STEM.json, each through a temporary
    file so that no half-written model is ever left; returns the sidecar.
    `hop_seconds` is the hop analyze and listen use by default (the
    training windows' hop when not given)."""
    sidecar = {
        "model_file": stem.with_suffix(".onnx").name,
        "onnx_sha256": hashlib.sha256(onnx_bytes).hexdigest(),
        "labels": [{"name": l["name"], "program": l["program"], "threshold": float(t)}
                   for l, t in zip(meta["labels"], thresholds)],
        "sample_rate": meta["sample_rate"],
        "window_seconds": meta["window_seconds"],
        "hop_seconds": meta["hop_seconds"] if hop_seconds is None else hop_seconds,
        "feature_set": meta["feature_set"],
        "feature_names": meta["feature_names"],
        "relative_threshold": relative,
        "training": training,
        "validation": validation,
    }
    stem.parent.mkdir(parents=True, exist_ok=True)
    for path, data in [(stem.with_suffix(".onnx"), onnx_bytes),
                       (stem.with_suffix(".json"), (json.dumps(sidecar, indent=1) + "\n").encode())]:
        tmp = path.with_suffix(path.suffix + ".partial")
        tmp.write_bytes(data)
        tmp.replace(path)
    return sidecar
