#!/usr/bin/env python3
"""A detection-style model calibrated on real photographs (issue 13): per-output int8 SQNR of
each calibration method, of `auto`, and of auto plus the automatic mixed-precision search
(`target_sqnr=`), scored with LiteRT on photographs disjoint from the calibration ones.

    python benchmarks/detection.py --photos-python /path/to/venv/bin/python [--budget 40|90s] [--target-sqnr 25] [--validation eval-photos]

The photographs are the ones scikit-image ships in its wheel (skimage.data: astronaut,
coffee, rocket, camera, ... read offline). scikit-image is never a dependency of tflquant:
when the current Python cannot import it, `--photos-python` names one that can (a separate
venv: `python -m venv /tmp/photos && /tmp/photos/bin/pip install scikit-image`), which
decodes them once into the cache ($TFLQUANT_VISION_CACHE or ~/.cache/tflquant-vision,
detection/photos.npz). Calibration: 8 photographs, 16 seeded square crops each (30-100% of
the short side) rescaled to 96x96, 128 samples; evaluation: 6 other photographs, 10 crops
each, 60 samples. Pixels in [-1, 1].

The model (built here without TensorFlow, like benchmarks/vision_models.py): a BlazeFace-like
backbone (3x3/2 conv, depthwise-separable blocks with RELU6, ReLU feature maps at 12x12 and
6x6) with SSD heads per feature map: a 1x1 CONV_2D giving 2 anchors x 3 classes logits and
one giving 2 anchors x 4 box offsets, RESHAPEd and CONCATENATEd into two outputs,
logits [1, 360, 3] and boxes [1, 360, 4]. Weights are random with batch-norm-like scaling on
calibration crops (typical logits around -4 +- 2, boxes around 0 +- 1). As in the detectors
the issue measured, a few rare inputs set the ranges: a glare unit (a 1x1 CONV_2D + RELU of
the input that only near-white pixels excite, max-pooled to each feature map) feeds the
heads with a large weight, so logits reach about -3000 on the calibration crops that hold
glare (a spacesuit, a rocket's exhaust) and stay in a few units elsewhere.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("TFLQUANT_VISION_CACHE", Path.home() / ".cache" / "tflquant-vision")) / "detection"
CALIB_PHOTOS = ("astronaut", "coffee", "rocket", "camera", "coins", "moon", "hubble_deep_field", "immunohistochemistry")
EVAL_PHOTOS = ("chelsea", "retina", "gravel", "brick", "grass", "clock")
SIZE = 96
METHODS = ("minmax", "moving-average", "percentile", "mse", "entropy", "auto")
F32 = np.float32

_DECODE = r"""
import sys, numpy as np, skimage.data as d
names = sys.argv[2].split(",")
np.savez_compressed(sys.argv[1], **{n: np.asarray(getattr(d, n)()) for n in names})
"""


def photos(python: str | None) -> dict[str, np.ndarray]:
    """The photographs as uint8 arrays, decoded once into the cache."""
    path = CACHE / "photos.npz"
    names = CALIB_PHOTOS + EVAL_PHOTOS
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            import skimage  # noqa: F401

            exe = sys.executable
        except ImportError:
            if python is None:
                sys.exit("scikit-image is not importable here: give --photos-python with a Python that has it (see the docstring)")
            exe = python
        subprocess.run([exe, "-c", _DECODE, str(path), ",".join(names)], check=True)
    z = np.load(path)
    return {n: z[n] for n in names}


def _rgb(img: np.ndarray) -> np.ndarray:
    a = img.astype(F32)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    return a[:, :, :3]


def _resize(a: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of an (H, W, 3) image to (size, size, 3)."""
    h, w = a.shape[:2]
    ys = (np.arange(size) + 0.5) * h / size - 0.5
    xs = (np.arange(size) + 0.5) * w / size - 0.5
    y0 = np.clip(np.floor(ys).astype(int), 0, h - 1)
    x0 = np.clip(np.floor(xs).astype(int), 0, w - 1)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy = np.clip(ys - y0, 0, 1)[:, None, None]
    fx = np.clip(xs - x0, 0, 1)[None, :, None]
    top = a[y0][:, x0] * (1 - fx) + a[y0][:, x1] * fx
    bot = a[y1][:, x0] * (1 - fx) + a[y1][:, x1] * fx
    return (top * (1 - fy) + bot * fy).astype(F32)


def crops(imgs: Sequence[np.ndarray], per: int, seed: int) -> np.ndarray:
    """`per` seeded square crops of each image (30-100% of its short side), SIZE x SIZE,
    pixels in [-1, 1]; shape (n, 1, SIZE, SIZE, 3) (the model's batch dimension kept)."""
    rng = np.random.default_rng(seed)
    out = []
    for img in imgs:
        a = _rgb(img)
        h, w = a.shape[:2]
        for _ in range(per):
            s = int(min(h, w) * rng.uniform(0.3, 1.0))
            y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
            out.append(_resize(a[y : y + s, x : x + s], SIZE) / 127.5 - 1.0)
    return np.stack(out)[:, None].astype(F32)


# ---------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------


class Net:
    """Builds the function op by op, running each op on probe images as it goes."""

    def __init__(self, probe: np.ndarray, seed: int = 0):
        from xdsl.dialects.builtin import TensorType
        from xdsl.ir import Block

        from tflquant.ir import element_type_of_dtype

        self.f32 = element_type_of_dtype(np.dtype(F32))
        self.rng = np.random.default_rng(seed)
        self.block = Block(arg_types=[TensorType(self.f32, [1, SIZE, SIZE, 3])])
        self.x = (self.block.args[0], probe[:, 0])

    def const(self, a: np.ndarray, name: str):  # type: ignore[no-untyped-def]
        from tflquant.dialects import tfl
        from tflquant.ir import dense_from_numpy

        op = tfl.ConstOp(dense_from_numpy(np.ascontiguousarray(a)), name=name)
        self.block.add_op(op)
        return op.results[0]

    def emit(self, builtin: str, inputs: list, value: np.ndarray, name: str, **options: object):  # type: ignore[no-untyped-def]
        from xdsl.dialects.builtin import TensorType

        from tflquant.dialects import tfl

        op = tfl.BUILTIN_CLASSES[builtin](inputs, [TensorType(self.f32, [1, *value.shape[1:]])], options=options, names=[name])
        self.block.add_op(op)
        return op.results[0], value.astype(F32, copy=False)

    def conv(self, x, w: np.ndarray, b: np.ndarray, stride: int, act: str, name: str):  # type: ignore[no-untyped-def]
        from tflquant.reference import float_kernels as fk

        y = fk.conv2d_nhwc(x[1], w, b, (stride, stride), (1, 1), "SAME", fk.activation(act))
        return self.emit("CONV_2D", [x[0], self.const(w, name + "/kernel"), self.const(b, name + "/bias")], y, name,
                         padding="SAME", stride_w=stride, stride_h=stride, dilation_w_factor=1, dilation_h_factor=1,
                         fused_activation_function=act)

    def normalized(self, x, cout: int, k: int, stride: int, act: str, name: str, depthwise: bool = False):  # type: ignore[no-untyped-def]
        """A random conv (or depthwise conv) whose output channels have mean 0.3, std 1 on the probe."""
        from tflquant.reference import float_kernels as fk

        cin = x[1].shape[-1]
        if depthwise:
            w = self.rng.standard_normal((1, k, k, cin)).astype(F32)
            raw = fk.depthwise_nhwc(x[1], w, None, (stride, stride), (1, 1), "SAME")
        else:
            w = self.rng.standard_normal((cout, k, k, cin)).astype(F32)
            raw = fk.conv2d_nhwc(x[1], w, None, (stride, stride), (1, 1), "SAME")
        flat = raw.reshape(-1, raw.shape[-1]).astype(np.float64)
        scale = 1.0 / (flat.std(0) + 1e-3)
        b = (0.3 - flat.mean(0) * scale).astype(F32)
        if depthwise:
            w = (w * scale.reshape(1, 1, 1, -1)).astype(F32)
            y = fk.depthwise_nhwc(x[1], w, b, (stride, stride), (1, 1), "SAME", fk.activation(act))
            return self.emit("DEPTHWISE_CONV_2D", [x[0], self.const(w, name + "/depthwise_kernel"), self.const(b, name + "/bias")], y, name,
                             padding="SAME", stride_w=stride, stride_h=stride, depth_multiplier=1, dilation_w_factor=1,
                             dilation_h_factor=1, fused_activation_function=act)
        return self.conv(x, (w * scale.reshape(-1, 1, 1, 1)).astype(F32), b, stride, act, name)

    def max_pool(self, x, k: int, name: str):  # type: ignore[no-untyped-def]
        a = x[1]
        n, h, w, c = a.shape
        y = a.reshape(n, h // k, k, w // k, k, c).max(axis=(2, 4))
        return self.emit("MAX_POOL_2D", [x[0]], y, name, padding="VALID", stride_w=k, stride_h=k, filter_width=k,
                         filter_height=k, fused_activation_function="NONE")

    def concat(self, xs: list, axis: int, name: str):  # type: ignore[no-untyped-def]
        return self.emit("CONCATENATION", [v for v, _ in xs], np.concatenate([a for _, a in xs], axis=axis), name,
                         axis=axis, fused_activation_function="NONE")

    def reshape(self, x, shape: tuple[int, ...], name: str):  # type: ignore[no-untyped-def]
        v, a = x
        return self.emit("RESHAPE", [v, self.const(np.array([1, *shape], np.int32), name + "/shape")],
                         a.reshape(len(a), *shape), name)

    def head(self, feat, glare, anchors: int, width: int, name: str, glare_weight: float, mean: float, std: float):  # type: ignore[no-untyped-def]
        """A 1x1 conv of [feat, glare]: anchors x width outputs around mean +- std, and
        glare_weight per unit of glare."""
        x = self.concat([feat, glare], 3, name + "/concat")
        cin = x[1].shape[-1]
        w = self.rng.standard_normal((anchors * width, 1, 1, cin)).astype(F32)
        w[:, :, :, -1] = 0
        raw = x[1].reshape(-1, cin) @ w.reshape(len(w), cin).T
        w *= (std / (raw.std(0) + 1e-6)).reshape(-1, 1, 1, 1).astype(F32)
        b = (mean - (x[1].reshape(-1, cin) @ w.reshape(len(w), cin).T).mean(0)).astype(F32)
        w[:, :, :, -1] = glare_weight
        y = self.conv(x, w.astype(F32), b, 1, "NONE", name)
        h = y[1].shape[1]
        return self.reshape(y, (h * h * anchors, width), name + "/reshape")


def build(probe: np.ndarray) -> bytes:
    """The model's flatbuffer (see the module docstring)."""
    from xdsl.dialects import func
    from xdsl.dialects.builtin import ArrayAttr, DictionaryAttr, ModuleOp, StringAttr
    from xdsl.ir import Region

    from tflquant.ir import signature_attr
    from tflquant.tflite.writer import write_flatbuffer

    n = Net(probe)
    x = n.normalized(n.x, 16, 3, 2, "RELU6", "backbone/conv0")  # 48x48
    x = n.normalized(x, 0, 3, 1, "RELU6", "backbone/dw1", depthwise=True)
    x = n.normalized(x, 24, 1, 1, "RELU6", "backbone/pw1")
    x = n.normalized(x, 0, 3, 2, "RELU6", "backbone/dw2", depthwise=True)  # 24x24
    x = n.normalized(x, 32, 1, 1, "RELU6", "backbone/pw2")
    x = n.normalized(x, 0, 3, 2, "RELU6", "backbone/dw3", depthwise=True)  # 12x12
    f12 = n.normalized(x, 48, 1, 1, "RELU", "backbone/features_12")
    x = n.normalized(f12, 0, 3, 2, "RELU6", "backbone/dw4", depthwise=True)  # 6x6
    f6 = n.normalized(x, 64, 1, 1, "RELU", "backbone/features_6")
    # glare: relu(40000 * (mean rgb - 0.995)): zero except on saturated pixels (up to 200)
    g = n.conv(n.x, np.full((1, 1, 1, 3), 40000 / 3, F32), np.array([-0.995 * 40000], F32), 1, "RELU", "glare/conv")
    g12, g6 = n.max_pool(g, 8, "glare/pool_12"), n.max_pool(g, 16, "glare/pool_6")
    cls = [n.head(f12, g12, 2, 3, "head_12/classes", -18.0, -4.0, 2.0), n.head(f6, g6, 2, 3, "head_6/classes", -18.0, -4.0, 2.0)]
    box = [n.head(f12, g12, 2, 4, "head_12/boxes", 1.5, 0.0, 1.0), n.head(f6, g6, 2, 4, "head_6/boxes", 1.5, 0.0, 1.0)]
    logits = n.concat(cls, 1, "logits")
    boxes = n.concat(box, 1, "boxes")
    n.block.add_op(func.ReturnOp(logits[0], boxes[0]))
    f = func.FuncOp("main", ([a.type for a in n.block.args], [logits[0].type, boxes[0].type]), Region(n.block),
                    arg_attrs=ArrayAttr([DictionaryAttr({"tfl.name": StringAttr("serving_default_image:0")})]))
    sig = signature_attr("serving_default", "main", ["image"], ["logits", "boxes"])
    return write_flatbuffer(ModuleOp([f], attributes={"tfl.description": StringAttr("tflquant detection benchmark"),
                                                      "tfl.signatures": ArrayAttr([sig])}))


# ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos-python", help="a Python that can import scikit-image (decodes the photographs once)")
    ap.add_argument("--budget", default=None, help="auto's budget: models (int), seconds ('90s') or both ('40,90s'); default: the API's")
    ap.add_argument("--target-sqnr", type=float, default=25.0)
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated (empty: none)")
    ap.add_argument("--no-mixed", action="store_true", help="skip the mixed-precision search")
    ap.add_argument("--validation", choices=["calibration", "eval-photos"], default="calibration",
                    help="what the mixed-precision search measures on: the calibration crops (the API's default), or a "
                    "held-out validation set of other crops (another seed) of the evaluation photographs")
    a = ap.parse_args(argv)
    if a.budget is not None and a.budget.isdigit():
        a.budget = int(a.budget)

    import tflquant
    from tflquant.scoring import litert_run, sqnr_db

    ph = photos(a.photos_python)
    calib = crops([ph[k] for k in CALIB_PHOTOS], 16, seed=1)
    evals = crops([ph[k] for k in EVAL_PHOTOS], 10, seed=2)
    model = build(calib[::16][:8])
    (CACHE / "float.tflite").write_bytes(model)
    np.savez(CACHE / "calib.npz", **{"serving_default_image:0": calib})
    np.savez(CACHE / "eval.npz", **{"serving_default_image:0": evals})
    ref = litert_run(model, [evals])
    cref = litert_run(model, [calib])
    print(f"detection model: {len(model) / 1024:.1f} KB float; {len(calib)} calibration crops of {len(CALIB_PHOTOS)} photographs, "
          f"{len(evals)} evaluation crops of {len(EVAL_PHOTOS)} others")
    for name, r, c in zip(("logits", "boxes"), ref, cref):
        print(f"  float {name}: range [{c.min():.1f}, {c.max():.1f}] on the calibration crops, [{r.min():.1f}, {r.max():.1f}] on the evaluation crops")
    print("\nint8 output SQNR on the evaluation crops (dB, LiteRT): logits / boxes")
    common = {"mode": "int8", "representative_dataset": {"serving_default_image:0": calib}}
    for m in [x for x in a.methods.split(",") if x]:
        t = time.perf_counter()
        r = tflquant.quantize(model, calibration_method=m, calibration_budget=a.budget, **common)
        s = [sqnr_db(x, y) for x, y in zip(ref, litert_run(r.model, [evals]))]
        extra = ""
        if m == "auto":
            counts: dict[str, int] = {}
            for v in r.report.calibration_methods.values():
                counts[v] = counts.get(v, 0) + 1
            extra = "  (" + ", ".join(f"{k} {n}" for k, n in sorted(counts.items())) + ")"
        print(f"  {m:24s}{s[0]:8.2f} /{s[1]:7.2f}   {time.perf_counter() - t:6.1f} s{extra}", flush=True)
        if m == "auto":  # what auto measured and picked (the report's lines)
            for line in str(r.report).splitlines():
                if "auto: " in line:
                    print("      " + line.strip())
    if not a.no_mixed:
        val = None if a.validation == "calibration" else {"serving_default_image:0": crops([ph[k] for k in EVAL_PHOTOS], 5, seed=3)}
        print(f"  (mixed-precision search measured on {'the first calibration crops' if val is None else '30 other crops of the evaluation photographs'})")
        for m in ("minmax", "auto"):
            t = time.perf_counter()
            r = tflquant.quantize(model, calibration_method=m, calibration_budget=a.budget, target_sqnr=a.target_sqnr, validation_dataset=val, **common)
            s = [sqnr_db(x, y) for x, y in zip(ref, litert_run(r.model, [evals]))]
            kinds: dict[str, int] = {}
            for o in r.report.ops:
                if o.kind not in ("quantize", "dequantize"):
                    kinds[o.kind] = kinds.get(o.kind, 0) + 1
            print(f"  {m + ' + target_sqnr ' + str(a.target_sqnr):24s}{s[0]:8.2f} /{s[1]:7.2f}   {time.perf_counter() - t:6.1f} s  "
                  f"ops: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
