#!/usr/bin/env python3
"""Decoder-only transformer language models of any size, built without TensorFlow.

    python benchmarks/decoder_models.py OUT.tflite [--dim 2048 --layers 12 --vocab 32000 --seq 16]
                                        [--ffn 4*dim] [--heads dim/64] [--large auto|yes|no] [--seed 0] [--data]

`--data` also writes calib.npz / eval.npz beside OUT, token ids drawn as decoder_tiny's
(independent ids, frequency ~ (id + 1)^-1.1; 64 calibration and 32 held-out evaluation
sequences), so `benchmarks/llm.py --model-dir DIR` measures it as it measures decoder_tiny.

The graph is what the TF converter writes for a small Keras decoder (as
../shared/models/decoder_tiny/float.tflite, whose op structure and tensor names it copies):
token ids int32 [1, seq] in, logits float32 [1, seq, vocab] out;

- embedding: GATHER of the [vocab, dim] table;
- per layer: layer norm (MEAN, SQUARED_DIFFERENCE, MEAN, ADD eps, RSQRT, MUL gamma, NEG,
  MUL, MUL, ADD: the converter's moments form), attention (query / key / value
  FULLY_CONNECTED keep_num_dims, RESHAPE to heads, TRANSPOSE, BATCH_MATMUL adj_y, MUL by
  1/sqrt(head dim), ADD of the causal mask, SOFTMAX, BATCH_MATMUL, TRANSPOSE, RESHAPE,
  output FULLY_CONNECTED), residual ADD, layer norm, MLP (FULLY_CONNECTED, GELU,
  FULLY_CONNECTED), residual ADD;
- final layer norm and an untied LM head (FULLY_CONNECTED [vocab, dim]).

Weights are heavy tailed like a trained LLM's: normal values scaled per input feature by a
log-normal factor (sigma 0.6), with 0.5% of the input features outliers 8x larger (the
"outlier features" that make int4 hard), deterministic for a seed. Bytes ~= 4 * (2 * vocab
* dim + layers * (4 * dim^2 + 2 * dim * ffn)): dim 2048, 12 layers, vocab 32000 is 2.9 GB.

A model whose constants pass 2 GB is written in the large-model layout (buffers after the
flatbuffer with offset/size), streamed to the file by tflquant's writer (write_model); the
generator holds each weight once (as the IR's bytes) and never the whole file.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, DictionaryAttr, ModuleOp, StringAttr, TensorType, f32, i32
from xdsl.ir import Block, Region, SSAValue

from tflquant.dialects import tfl
from tflquant.ir import dense_from_numpy, signature_attr

F32 = np.float32


class DecoderBuilder:
    """Emits the ops of one function; `shape` of every value is tracked (nothing runs)."""

    def __init__(self, dim: int, layers: int, vocab: int, seq: int, ffn: int | None = None, heads: int | None = None, seed: int = 0):
        self.dim, self.layers, self.vocab, self.seq = dim, layers, vocab, seq
        self.ffn = ffn or 4 * dim
        self.heads = heads or max(1, dim // 64)
        if dim % self.heads:
            raise ValueError(f"dim {dim} is not a multiple of heads {self.heads}")
        self.rng = np.random.default_rng(seed)
        self.block = Block(arg_types=[TensorType(i32, [1, seq])])
        self.shared: dict[str, SSAValue] = {}

    # ------------------------------------------------------------------ helpers
    def const(self, arr: np.ndarray, name: str) -> SSAValue:
        op = tfl.ConstOp(dense_from_numpy(arr), name=name)
        self.block.add_op(op)
        return op.result

    def shared_const(self, key: str, make) -> SSAValue:
        if key not in self.shared:
            self.shared[key] = self.const(make(), key)
        return self.shared[key]

    def emit(self, kind: str, operands: list[SSAValue], shape: list[int], name: str, elem=f32, **options) -> SSAValue:
        cls = tfl.BUILTIN_CLASSES[kind]
        op = cls(operands, [TensorType(elem, shape)], options=options, names=[name])
        self.block.add_op(op)
        return op.results[0]

    def weight(self, rows: int, cols: int, name: str) -> SSAValue:
        """A heavy-tailed [rows, cols] weight (cols = input features), std ~ 1/sqrt(cols)."""
        w = self.rng.standard_normal((rows, cols), dtype=F32)
        feat = np.exp(self.rng.standard_normal(cols) * 0.6).astype(F32)
        outliers = self.rng.choice(cols, size=max(1, cols // 200), replace=False)
        feat[outliers] *= 8.0
        feat *= F32(1.0 / (math.sqrt(cols) * float(np.sqrt(np.mean(feat.astype(np.float64) ** 2)))))
        w *= feat
        return self.const(w, name)

    def vector(self, n: int, name: str, mean: float = 0.0, std: float = 0.02) -> SSAValue:
        return self.const((mean + std * self.rng.standard_normal(n)).astype(F32), name)

    # ------------------------------------------------------------------ blocks
    def layer_norm(self, x: SSAValue, scope: str) -> SSAValue:
        shape = [1, self.seq, self.dim]
        red = [1, self.seq, 1]
        axis = self.shared_const("arith.constant3", lambda: np.array([-1], np.int32))
        eps = self.shared_const("arith.constant4", lambda: np.array(1e-6, F32))
        mean = self.emit("MEAN", [x, axis], red, f"{scope}/moments/mean", keep_dims=True)
        neg = self.emit("NEG", [mean], red, f"{scope}/Neg")
        sq = self.emit("SQUARED_DIFFERENCE", [x, mean], shape, f"{scope}/moments/SquaredDifference")
        var = self.emit("MEAN", [sq, axis], red, f"{scope}/moments/variance", keep_dims=True)
        add = self.emit("ADD", [var, eps], red, f"{scope}/add", fused_activation_function="NONE")
        rs = self.emit("RSQRT", [add], red, f"{scope}/Rsqrt")
        gamma = self.vector(self.dim, f"{scope}/mul/ReadVariableOp", mean=1.0, std=0.1)
        scale = self.emit("MUL", [rs, gamma], shape, f"{scope}/mul", fused_activation_function="NONE")
        shift = self.emit("MUL", [neg, scale], shape, f"{scope}/mul_1", fused_activation_function="NONE")
        xs = self.emit("MUL", [x, scale], shape, f"{scope}/mul_2", fused_activation_function="NONE")
        beta = self.vector(self.dim, f"{scope}/add_1/ReadVariableOp", std=0.02)
        y = self.emit("ADD", [xs, shift], shape, f"{scope}/add_2", fused_activation_function="NONE")
        return self.emit("ADD", [y, beta], shape, f"{scope}/add_3", fused_activation_function="NONE")

    def dense(self, x: SSAValue, units: int, inputs: int, scope: str) -> SSAValue:
        w = self.weight(units, inputs, f"{scope}/MatMul")
        b = self.vector(units, f"{scope}/BiasAdd/ReadVariableOp", std=0.01)
        return self.emit("FULLY_CONNECTED", [x, w, b], [1, self.seq, units], f"{scope}/MatMul;{scope}/BiasAdd",
                         fused_activation_function="NONE", keep_num_dims=True)

    def attention(self, x: SSAValue, scope: str) -> SSAValue:
        s, d, h = self.seq, self.dim, self.heads
        dh = d // h
        heads_shape = self.shared_const("arith.constant9", lambda: np.array([1, s, h, dh], np.int32))
        perm = self.shared_const("arith.constant1", lambda: np.array([0, 2, 1, 3], np.int32))
        merged = self.shared_const("arith.constant8", lambda: np.array([1, s, d], np.int32))
        scale = self.shared_const("arith.constant6", lambda: np.array(1.0 / math.sqrt(dh), F32))
        mask = self.shared_const("arith.constant7", lambda: np.triu(np.full((s, s), -1e9, F32), 1).reshape(1, 1, s, s))

        def split(name: str) -> SSAValue:
            y = self.dense(x, d, d, f"{scope}/{name}_1")
            r = self.emit("RESHAPE", [y, heads_shape], [1, s, h, dh], f"{scope}/{name}_1/Reshape")
            return self.emit("TRANSPOSE", [r, perm], [1, h, s, dh], f"{scope}/{name}_1/transpose")

        q, k = split("query"), split("key")
        scores = self.emit("BATCH_MATMUL", [q, k], [1, h, s, s], f"{scope}/einsum/Einsum", adj_x=False, adj_y=True)
        scores = self.emit("MUL", [scores, scale], [1, h, s, s], f"{scope}/Mul", fused_activation_function="NONE")
        scores = self.emit("ADD", [scores, mask], [1, h, s, s], f"{scope}/add", fused_activation_function="NONE")
        probs = self.emit("SOFTMAX", [scores], [1, h, s, s], f"{scope}/Softmax", beta=1.0)
        v = split("value")
        ctx = self.emit("BATCH_MATMUL", [probs, v], [1, h, s, dh], f"{scope}/einsum_1/Einsum", adj_x=False, adj_y=False)
        ctx = self.emit("TRANSPOSE", [ctx, perm], [1, s, h, dh], f"{scope}/einsum_1/transpose")
        ctx = self.emit("RESHAPE", [ctx, merged], [1, s, d], f"{scope}/attention_output_1/Reshape")
        return self.dense(ctx, d, d, f"{scope}/attention_output_1")

    def build(self) -> ModuleOp:
        s, d = self.seq, self.dim
        tokens = self.block.args[0]
        table = self.weight(self.vocab, d, "functional_1/embed_1/GatherV2/ReadVariableOp")
        x = self.emit("GATHER", [table, tokens], [1, s, d], "functional_1/embed_1/GatherV2", axis=0, batch_dims=0)
        for i in range(self.layers):
            a = self.attention(self.layer_norm(x, f"functional_1/ln1_{i}_1"), f"functional_1/attn_{i}_1")
            x = self.emit("ADD", [x, a], [1, s, d], f"functional_1/Add_{2 * i}", fused_activation_function="NONE")
            hdn = self.dense(self.layer_norm(x, f"functional_1/ln2_{i}_1"), self.ffn, d, f"functional_1/mlp_{i}_1/up_1")
            hdn = self.emit("GELU", [hdn], [1, s, self.ffn], f"functional_1/mlp_{i}_1/Gelu", approximate=False)
            m = self.dense(hdn, d, self.ffn, f"functional_1/mlp_{i}_1/down_1")
            x = self.emit("ADD", [x, m], [1, s, d], f"functional_1/Add_{2 * i + 1}", fused_activation_function="NONE")
        x = self.layer_norm(x, "functional_1/ln_f_1")
        w = self.weight(self.vocab, d, "functional_1/lm_head_1/MatMul")
        logits = self.emit("FULLY_CONNECTED", [x, w, self.const(np.zeros(self.vocab, F32), "functional_1/lm_head_1/BiasAdd")],
                           [1, s, self.vocab], "StatefulPartitionedCall:0", fused_activation_function="NONE", keep_num_dims=True)
        self.block.add_op(func.ReturnOp(logits))
        f = func.FuncOp("main", ([TensorType(i32, [1, s])], [logits.type]), Region(self.block),
                        arg_attrs=ArrayAttr([DictionaryAttr({"tfl.name": StringAttr("serving_default_tokens:0")})]))
        sig = signature_attr("serving_default", "main", ["tokens"], ["output_0"])
        return ModuleOp([f], attributes={"tfl.description": StringAttr("MLIR Converted."), "tfl.signatures": ArrayAttr([sig])})


def param_bytes(dim: int, layers: int, vocab: int, ffn: int | None = None) -> int:
    """Bytes of float32 weights of such a model (biases and norms included)."""
    ffn = ffn or 4 * dim
    per_layer = 4 * dim * dim + 2 * dim * ffn + 4 * dim + ffn + dim + 4 * dim
    return 4 * (2 * vocab * dim + layers * per_layer + 2 * dim + vocab)


def build_decoder(dim: int, layers: int, vocab: int, seq: int = 16, ffn: int | None = None, heads: int | None = None, seed: int = 0) -> ModuleOp:
    """The decoder as a tflquant module (weights held once, as the IR's bytes)."""
    return DecoderBuilder(dim, layers, vocab, seq, ffn, heads, seed).build()


def write_decoder(path: str, dim: int, layers: int, vocab: int, seq: int = 16, ffn: int | None = None, heads: int | None = None,
                  seed: int = 0, large: bool | None = None) -> int:
    """Build and write the decoder (large-model layout past 2 GB, or when large=True); its size."""
    from tflquant.tflite.writer import write_model

    module = build_decoder(dim, layers, vocab, seq, ffn, heads, seed)
    return write_model(module, path, large=large)


def token_batches(vocab: int, seq: int, n: int, seed: int = 1, zipf: float | None = None) -> np.ndarray:
    """n deterministic token sequences [n, 1, seq] (int32): uniform ids, or with `zipf` = a
    ids drawn independently with P(id = k) proportional to (k + 1)^-a (id 0 the most frequent)."""
    rng = np.random.default_rng(seed)
    if zipf is None:
        return rng.integers(0, vocab, size=(n, 1, seq), dtype=np.int32)
    p = np.arange(1, vocab + 1, dtype=np.float64) ** -float(zipf)
    return rng.choice(vocab, size=(n, 1, seq), p=p / p.sum()).astype(np.int32)


# Token data drawn as decoder_tiny's is: its calib.npz (64 x 32) and eval.npz (32 x 32) hold
# ids drawn independently with frequency ~ (id + 1)^-1.1 (maximum likelihood over its 4096
# ids: exponent 1.1; id 0 is 15% of its tokens, 619 / 375 distinct ids), no sequence in both.
DATA_ZIPF = 1.1
CALIB_ROWS, EVAL_ROWS = 64, 32
CALIB_SEED, EVAL_SEED = 2, 1


def write_token_data(out_dir: str, vocab: int, seq: int, zipf: float | None = DATA_ZIPF) -> None:
    """calib.npz / eval.npz {"tokens": [rows, seq] int32} next to a generated model, as
    decoder_tiny's: CALIB_ROWS calibration and EVAL_ROWS evaluation sequences from separate
    seeds (the evaluation data is held out: none of its sequences is a calibration one)."""
    import os

    calib = token_batches(vocab, seq, CALIB_ROWS, CALIB_SEED, zipf).reshape(CALIB_ROWS, seq)
    ev = token_batches(vocab, seq, EVAL_ROWS, EVAL_SEED, zipf).reshape(EVAL_ROWS, seq)
    seen = {r.tobytes() for r in calib}
    ev = np.stack([r for r in ev if r.tobytes() not in seen])
    np.savez(os.path.join(out_dir, "calib.npz"), tokens=calib)
    np.savez(os.path.join(out_dir, "eval.npz"), tokens=ev)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--seq", type=int, default=16)
    ap.add_argument("--ffn", type=int, default=None)
    ap.add_argument("--heads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--large", choices=("auto", "yes", "no"), default="auto")
    ap.add_argument("--data", action="store_true",
                    help="also write calib.npz / eval.npz next to OUT (token ids drawn as decoder_tiny's: Zipf 1.1, 64 / 32 rows, held out)")
    a = ap.parse_args(argv)
    t = time.perf_counter()
    large = {"auto": None, "yes": True, "no": False}[a.large]
    size = write_decoder(a.out, a.dim, a.layers, a.vocab, a.seq, a.ffn, a.heads, a.seed, large)
    print(f"{a.out}: {size / 1e9:.2f} GB in {time.perf_counter() - t:.1f} s")
    if a.data:
        import os

        write_token_data(os.path.dirname(os.path.abspath(a.out)), a.vocab, a.seq)
    return 0


if __name__ == "__main__":
    sys.exit(main())
