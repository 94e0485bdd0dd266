#!/usr/bin/env python3
"""Large float vision models for the speed benchmarks, built without TensorFlow.

    python benchmarks/vision_models.py [--models mobilenet_v2_100_224,resnet50,efficientnet_b0] [--cache DIR]

Writes DIR/<model>/float.tflite and DIR/<model>/calib.npz (100 samples, deterministic) for
each model (DIR: $TFLQUANT_VISION_CACHE or ~/.cache/tflquant-vision; not committed). The
graphs are what the TF converter writes for the Keras applications:

- mobilenet_v2_100_224: MobileNetV2 1.0 at 224x224, CONV_2D / DEPTHWISE_CONV_2D with fused
  RELU6 (the stride-2 ZeroPadding2D + VALID depthwise folded into SAME, as the converter
  does), ADD residuals, MEAN, FULLY_CONNECTED, SOFTMAX;
- resnet50: Keras ResNet50 v1 (PAD + 7x7/2 conv, PAD + 3x3/2 MAX_POOL_2D, bottleneck blocks
  3-4-6-3 with the stride on the first 1x1, ADD with fused RELU), MEAN, FULLY_CONNECTED, SOFTMAX;
- efficientnet_b0: Keras EfficientNet-B0 (swish as LOGISTIC + MUL, squeeze-excite as MEAN
  keep_dims, 1x1 CONV_2D + swish, 1x1 CONV_2D, LOGISTIC, MUL; 5x5 depthwise; ADD residuals).

Weights are random with batch-norm statistics recomputed and folded as the converter folds
them: each convolution's raw output on a probe batch of synthetic images is normalized per
channel (mean 0, std 1), then scaled and shifted by a random gamma/beta, and the result is
folded into the filter and bias. Activations so stay in the range a trained network has
(residual branches get a smaller gamma so sums do not grow block after block).

Calibration images are smooth random colour fields with edges and gradients in [-1, 1]
(seeded by the model name), like preprocessed photos to the extent that matters here.
"""

from __future__ import annotations

import argparse
import os
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, DictionaryAttr, ModuleOp, StringAttr, TensorType
from xdsl.ir import Block, Region, SSAValue

from tflquant.dialects import tfl
from tflquant.ir import dense_from_numpy, element_type_of_dtype, signature_attr
from tflquant.reference import float_kernels as fk

CACHE = Path(os.environ.get("TFLQUANT_VISION_CACHE", Path.home() / ".cache" / "tflquant-vision"))
F32 = np.float32
N_CALIB = 100
PROBE = 6  # probe images used to set the batch-norm statistics


def synthetic_images(n: int, size: int, seed: int) -> np.ndarray:
    """n (size, size, 3) float32 images in [-1, 1]: low-frequency colour noise, a gradient
    and a few hard-edged rectangles, per image."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size, 3), F32)
    yy, xx = np.mgrid[0:size, 0:size].astype(F32) / size
    for k in range(n):
        g = rng.standard_normal((8, 8, 3)).astype(F32)
        # bilinear upsampling of an 8x8 grid: smooth blobs
        idx = np.linspace(0, 7, size, dtype=F32)
        i0 = np.floor(idx).astype(int)
        i1 = np.minimum(i0 + 1, 7)
        f = (idx - i0)[:, None]
        rows = g[i0] * (1 - f)[:, :, None] + g[i1] * f[:, :, None]  # (size, 8, 3)
        img = rows[:, i0] * (1 - f.T)[:, :, None] + rows[:, i1] * f.T[:, :, None]
        a, b = rng.standard_normal(2)
        img += (a * (xx - 0.5) + b * (yy - 0.5))[:, :, None] * 1.5
        for _ in range(rng.integers(2, 6)):
            y0, x0 = rng.integers(0, size, 2)
            h, w = rng.integers(size // 10, size // 2, 2)
            img[y0 : y0 + h, x0 : x0 + w] += rng.standard_normal(3).astype(F32)
        img += rng.standard_normal(img.shape).astype(F32) * 0.05
        img = np.tanh(img * 0.6)
        out[k] = img
    return out


class Builder:
    """One function: tfl ops in program order, each op also run on a probe batch so the
    next layer's batch-norm statistics can be computed."""

    def __init__(self, name: str, size: int, seed: int):
        self.prefix = name
        self.rng = np.random.default_rng(seed)
        self.input_name = "serving_default_input_1:0"
        self.block = Block(arg_types=[TensorType(F32_T, [1, size, size, 3])])
        self.probe = synthetic_images(PROBE, size, seed + 1)
        self.count = 0

    # -- plumbing ------------------------------------------------------------------------
    def input(self) -> tuple[SSAValue, np.ndarray]:
        return self.block.args[0], self.probe

    def _name(self, what: str) -> str:
        self.count += 1
        return f"{self.prefix}/{what}"

    def const(self, a: np.ndarray, what: str) -> SSAValue:
        op = tfl.ConstOp(dense_from_numpy(np.ascontiguousarray(a)), name=self._name(what))
        self.block.add_op(op)
        return op.results[0]

    def emit(self, builtin: str, inputs: Sequence[SSAValue], probe: np.ndarray, what: str, **options: object) -> tuple[SSAValue, np.ndarray]:
        t = TensorType(F32_T, [1, *probe.shape[1:]])
        op = tfl.BUILTIN_CLASSES[builtin](list(inputs), [t], options=options, names=[self._name(what)])
        self.block.add_op(op)
        return op.results[0], probe.astype(F32, copy=False)

    # -- layers --------------------------------------------------------------------------
    def _fold_bn(self, raw: np.ndarray, w: np.ndarray, gamma_scale: float, beta_shift: float, axis_w: int) -> tuple[np.ndarray, np.ndarray]:
        """Per output channel: normalize the raw output's statistics, apply a random gamma and
        beta, fold into (w, b). `axis_w`: the output-channel axis of w."""
        c = raw.shape[-1]
        flat = raw.reshape(-1, c).astype(np.float64)
        mean, std = flat.mean(0), flat.std(0) + 1e-3
        gamma = self.rng.uniform(0.6, 1.4, c) * gamma_scale
        beta = self.rng.normal(beta_shift, 0.3, c) * gamma_scale
        scale = gamma / std
        shape = [1] * w.ndim
        shape[axis_w] = c
        return (w * scale.reshape(shape)).astype(F32), (beta - mean * scale).astype(F32)

    def conv(self, x: tuple[SSAValue, np.ndarray], cout: int, k: int, stride: int = 1, act: str = "NONE", what: str = "conv",
             padding: str = "SAME", gamma: float = 1.0, beta: float = 0.0) -> tuple[SSAValue, np.ndarray]:
        v, p = x
        cin = p.shape[-1]
        w = self.rng.standard_normal((cout, k, k, cin)).astype(F32)
        raw = fk.conv2d_nhwc(p, w, None, (stride, stride), (1, 1), padding)
        w, b = self._fold_bn(raw, w, gamma, beta, 0)
        y = fk.conv2d_nhwc(p, w, b, (stride, stride), (1, 1), padding, fk.activation(act))
        return self.emit("CONV_2D", [v, self.const(w, what + "/kernel"), self.const(b, what + "/bias")], y, what,
                         padding=padding, stride_w=stride, stride_h=stride, dilation_w_factor=1, dilation_h_factor=1,
                         fused_activation_function=act)

    def depthwise(self, x: tuple[SSAValue, np.ndarray], k: int, stride: int = 1, act: str = "NONE", what: str = "depthwise",
                  gamma: float = 1.0, beta: float = 0.0) -> tuple[SSAValue, np.ndarray]:
        v, p = x
        c = p.shape[-1]
        w = self.rng.standard_normal((1, k, k, c)).astype(F32)
        raw = fk.depthwise_nhwc(p, w, None, (stride, stride), (1, 1), "SAME")
        w, b = self._fold_bn(raw, w, gamma, beta, 3)
        y = fk.depthwise_nhwc(p, w, b, (stride, stride), (1, 1), "SAME", fk.activation(act))
        return self.emit("DEPTHWISE_CONV_2D", [v, self.const(w, what + "/depthwise_kernel"), self.const(b, what + "/bias")], y, what,
                         padding="SAME", stride_w=stride, stride_h=stride, depth_multiplier=1, dilation_w_factor=1,
                         dilation_h_factor=1, fused_activation_function=act)

    def pad(self, x: tuple[SSAValue, np.ndarray], p: int, what: str) -> tuple[SSAValue, np.ndarray]:
        v, a = x
        pads = np.array([[0, 0], [p, p], [p, p], [0, 0]], np.int32)
        return self.emit("PAD", [v, self.const(pads, what + "/paddings")], np.pad(a, pads), what)

    def max_pool(self, x: tuple[SSAValue, np.ndarray], k: int, stride: int, what: str) -> tuple[SSAValue, np.ndarray]:
        v, a = x
        n, h, w, c = a.shape
        oh, ow = (h - k) // stride + 1, (w - k) // stride + 1
        y = np.full((n, oh, ow, c), -np.inf, F32)
        for i in range(k):
            for j in range(k):
                np.maximum(y, a[:, i : i + (oh - 1) * stride + 1 : stride, j : j + (ow - 1) * stride + 1 : stride], out=y)
        return self.emit("MAX_POOL_2D", [v], y, what, padding="VALID", stride_w=stride, stride_h=stride,
                         filter_width=k, filter_height=k, fused_activation_function="NONE")

    def add(self, a: tuple[SSAValue, np.ndarray], b: tuple[SSAValue, np.ndarray], what: str, act: str = "NONE") -> tuple[SSAValue, np.ndarray]:
        y = a[1] + b[1]
        f = fk.activation(act)
        if f is not None:
            f(y)
        return self.emit("ADD", [a[0], b[0]], y, what, fused_activation_function=act)

    def mul(self, a: tuple[SSAValue, np.ndarray], b: tuple[SSAValue, np.ndarray], what: str) -> tuple[SSAValue, np.ndarray]:
        return self.emit("MUL", [a[0], b[0]], a[1] * b[1], what, fused_activation_function="NONE")

    def logistic(self, x: tuple[SSAValue, np.ndarray], what: str) -> tuple[SSAValue, np.ndarray]:
        return self.emit("LOGISTIC", [x[0]], (1 / (1 + np.exp(-x[1]))).astype(F32), what)

    def swish(self, x: tuple[SSAValue, np.ndarray], what: str) -> tuple[SSAValue, np.ndarray]:
        return self.mul(x, self.logistic(x, what + "/Sigmoid"), what + "/mul")

    def mean(self, x: tuple[SSAValue, np.ndarray], what: str, keep_dims: bool) -> tuple[SSAValue, np.ndarray]:
        axes = self.const(np.array([1, 2], np.int32), what + "/reduction_indices")
        return self.emit("MEAN", [x[0], axes], x[1].mean(axis=(1, 2), keepdims=keep_dims), what, keep_dims=keep_dims)

    def dense(self, x: tuple[SSAValue, np.ndarray], units: int, what: str, logit_std: float = 2.0) -> tuple[SSAValue, np.ndarray]:
        v, a = x
        w = self.rng.standard_normal((units, a.shape[-1])).astype(F32)
        raw = a @ w.T
        w = (w * (logit_std / (raw.std() + 1e-6))).astype(F32)
        b = (self.rng.standard_normal(units) * 0.1).astype(F32)
        return self.emit("FULLY_CONNECTED", [v, self.const(w, what + "/kernel"), self.const(b, what + "/bias")], a @ w.T + b, what,
                         fused_activation_function="NONE", keep_num_dims=False)

    def softmax(self, x: tuple[SSAValue, np.ndarray], what: str) -> tuple[SSAValue, np.ndarray]:
        a = x[1] - x[1].max(-1, keepdims=True)
        e = np.exp(a)
        return self.emit("SOFTMAX", [x[0]], e / e.sum(-1, keepdims=True), what, beta=1.0)

    def module(self, out: tuple[SSAValue, np.ndarray]) -> ModuleOp:
        self.block.add_op(func.ReturnOp(out[0]))
        f = func.FuncOp("main", ([a.type for a in self.block.args], [out[0].type]), Region(self.block),
                        arg_attrs=ArrayAttr([DictionaryAttr({"tfl.name": StringAttr(self.input_name)})]))
        sig = signature_attr("serving_default", "main", ["input_1"], ["output_0"])
        return ModuleOp([f], attributes={"tfl.description": StringAttr("MLIR Converted."), "tfl.signatures": ArrayAttr([sig])})


F32_T = element_type_of_dtype(np.dtype(np.float32))


# ---------------------------------------------------------------------------------------
# The architectures
# ---------------------------------------------------------------------------------------


def mobilenet_v2(size: int = 224, alpha: float = 1.0, seed: int = 0) -> ModuleOp:
    g = Builder(f"mobilenetv2_{alpha:.2f}_{size}", size, seed)

    def ch(c: float) -> int:  # Keras' _make_divisible(c * alpha, 8)
        v = max(8, int(c * alpha + 4) // 8 * 8)
        return v + 8 if v < 0.9 * c * alpha else v

    x = g.conv(g.input(), ch(32), 3, 2, "RELU6", "Conv1")
    cin = ch(32)
    blocks = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    i = 0
    for t, c, n, s in blocks:
        cout = ch(c)
        for r in range(n):
            stride = s if r == 0 else 1
            name = "expanded_conv" if i == 0 else f"block_{i}"
            h = x
            if t != 1:
                h = g.conv(h, cin * t, 1, 1, "RELU6", f"{name}_expand", beta=0.5)
            h = g.depthwise(h, 3, stride, "RELU6", f"{name}_depthwise", beta=0.5)
            h = g.conv(h, cout, 1, 1, "NONE", f"{name}_project", gamma=0.5 if (stride == 1 and cin == cout) else 1.0)
            x = g.add(x, h, f"{name}_add") if stride == 1 and cin == cout else h
            cin = cout
            i += 1
    x = g.conv(x, 1280 if alpha <= 1.0 else ch(1280), 1, 1, "RELU6", "Conv_1", beta=0.5)
    x = g.mean(x, "global_average_pooling2d/Mean", keep_dims=False)
    x = g.dense(x, 1000, "predictions/MatMul")
    return g.module(g.softmax(x, "predictions/Softmax"))


def resnet50(size: int = 224, seed: int = 1) -> ModuleOp:
    g = Builder("resnet50", size, seed)
    x = g.pad(g.input(), 3, "conv1_pad/Pad")
    x = g.conv(x, 64, 7, 2, "RELU", "conv1_conv", padding="VALID", beta=0.3)
    x = g.pad(x, 1, "pool1_pad/Pad")
    x = g.max_pool(x, 3, 2, "pool1_pool/MaxPool")
    for stage, (filters, blocks, stride) in enumerate([(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)], start=2):
        for b in range(1, blocks + 1):
            name = f"conv{stage}_block{b}"
            s = stride if b == 1 else 1
            if b == 1:
                short = g.conv(x, 4 * filters, 1, s, "NONE", f"{name}_0_conv", padding="VALID")
            else:
                short = x
            h = g.conv(x, filters, 1, s, "RELU", f"{name}_1_conv", padding="VALID", beta=0.3)
            h = g.conv(h, filters, 3, 1, "RELU", f"{name}_2_conv", beta=0.3)
            h = g.conv(h, 4 * filters, 1, 1, "NONE", f"{name}_3_conv", padding="VALID", gamma=0.5)
            x = g.add(short, h, f"{name}_out/Relu", act="RELU")
    x = g.mean(x, "avg_pool/Mean", keep_dims=False)
    x = g.dense(x, 1000, "predictions/MatMul")
    return g.module(g.softmax(x, "predictions/Softmax"))


def efficientnet_b0(size: int = 224, seed: int = 2) -> ModuleOp:
    g = Builder("efficientnetb0", size, seed)
    x = g.conv(g.input(), 32, 3, 2, "NONE", "stem_conv")
    x = g.swish(x, "stem_activation")
    cin = 32
    blocks = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]
    for bi, (t, k, s, cout, n) in enumerate(blocks, start=1):
        for r in range(n):
            name = f"block{bi}{chr(ord('a') + r)}"
            stride = s if r == 0 else 1
            h = x
            if t != 1:
                h = g.conv(h, cin * t, 1, 1, "NONE", f"{name}_expand_conv")
                h = g.swish(h, f"{name}_expand_activation")
            h = g.depthwise(h, k, stride, "NONE", f"{name}_dwconv")
            h = g.swish(h, f"{name}_activation")
            se = g.mean(h, f"{name}_se_squeeze/Mean", keep_dims=True)
            se = g.conv(se, max(1, int(cin * 0.25)), 1, 1, "NONE", f"{name}_se_reduce")
            se = g.swish(se, f"{name}_se_reduce_act")
            se = g.conv(se, cin * t, 1, 1, "NONE", f"{name}_se_expand", beta=1.0)
            se = g.logistic(se, f"{name}_se_expand/Sigmoid")
            h = g.mul(h, se, f"{name}_se_excite/mul")
            residual = stride == 1 and cin == cout
            h = g.conv(h, cout, 1, 1, "NONE", f"{name}_project_conv", gamma=0.5 if residual else 1.0)
            x = g.add(h, x, f"{name}_add") if residual else h
            cin = cout
    x = g.conv(x, 1280, 1, 1, "NONE", "top_conv")
    x = g.swish(x, "top_activation")
    x = g.mean(x, "avg_pool/Mean", keep_dims=False)
    x = g.dense(x, 1000, "predictions/MatMul")
    return g.module(g.softmax(x, "predictions/Softmax"))


MODELS = {
    "mobilenet_v2_100_224": mobilenet_v2,
    "resnet50": resnet50,
    "efficientnet_b0": efficientnet_b0,
}


def build(name: str, cache: Path = CACHE, force: bool = False) -> Path:
    """DIR/<name> holding float.tflite and calib.npz (built once, then reused)."""
    from tflquant.fileio import atomic_write
    from tflquant.tflite.writer import write_flatbuffer

    d = cache / name
    if not force and (d / "float.tflite").exists() and (d / "calib.npz").exists():
        return d
    d.mkdir(parents=True, exist_ok=True)
    module = MODELS[name]()
    atomic_write(d / "float.tflite", write_flatbuffer(module))
    size = int(module.ops.first.function_type.inputs.data[0].get_shape()[1])  # type: ignore[union-attr]
    images = synthetic_images(N_CALIB, size, zlib.crc32(name.encode()))
    tmp = d / "calib.tmp.npz"
    np.savez(tmp, **{"serving_default_input_1:0": images})
    os.replace(tmp, d / "calib.npz")
    return d


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--cache", default=str(CACHE))
    ap.add_argument("--force", action="store_true", help="rebuild even if cached")
    a = ap.parse_args(argv)
    for name in a.models.split(","):
        if name not in MODELS:
            ap.error(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
        d = build(name, Path(a.cache), a.force)
        print(f"{name}: {d / 'float.tflite'} ({(d / 'float.tflite').stat().st_size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
