"""Small float TFLite models built from IR, for tests (no ../shared needed).

    g = GraphBuilder("main", {"x": ((1, 8, 8, 3), np.float32)})
    y = g.op("CONV_2D", [g.x, g.const(w), g.const(b)], (1, 8, 8, 4), padding="SAME", stride_w=1, stride_h=1)
    module = g.module([y])                  # builtin.module with one func.func
    data = write_flatbuffer(module)         # or: g.tflite([y])

`MODELS` maps a name to a function returning a module; `sample_inputs(module, n, seed)`
makes inputs keyed by input name (samples first), like the eval.npz files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    ArrayAttr,
    BytesAttr,
    DictionaryAttr,
    IntegerAttr,
    ModuleOp,
    StringAttr,
    TensorType,
    i32,
)
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue

from tflquant.dialects import tfl
from tflquant.ir import dense_from_numpy, element_type_of_dtype, signature_attr


def ttype(shape: Sequence[int | None], dtype: np.dtype | type | Attribute = np.float32) -> TensorType:
    """A tensor type; None in the shape is a dynamic dimension; dtype may be an element type
    attribute (e.g. a !quant.uniform type)."""
    elem = dtype if isinstance(dtype, Attribute) else element_type_of_dtype(np.dtype(dtype))
    return TensorType(elem, [DYNAMIC_INDEX if d is None else d for d in shape])


class GraphBuilder:
    """Builds one function: inputs, constants and tfl ops, in program order."""

    def __init__(self, name: str, inputs: dict[str, tuple[Sequence[int | None], np.dtype | type]]):
        self.name = name
        self.input_names = list(inputs)
        self.block = Block(arg_types=[ttype(s, d) for s, d in inputs.values()])
        self.args = {n: a for n, a in zip(inputs, self.block.args)}
        self._count = 0
        self._no_value: SSAValue | None = None

    @property
    def x(self) -> SSAValue:
        """The first input."""
        return self.block.args[0]

    def _name(self, name: str | None, prefix: str) -> str:
        self._count += 1
        return name if name is not None else f"{prefix}_{self._count}"

    def add(self, op: Operation) -> Operation:
        self.block.add_op(op)
        return op

    def const(self, array: np.ndarray, name: str | None = None) -> SSAValue:
        arr = np.asarray(array)
        op = tfl.ConstOp(dense_from_numpy(arr), name=self._name(name, "const"))
        return self.add(op).results[0]

    def no_value(self) -> SSAValue:
        if self._no_value is None:
            self._no_value = self.add(tfl.NoValueOp()).results[0]
        return self._no_value

    def op(
        self,
        builtin: str,
        inputs: Sequence[SSAValue],
        out_shape: Sequence[int | None] | Sequence[Sequence[int | None]],
        out_dtype: np.dtype | type | Attribute = np.float32,
        name: str | Sequence[str] | None = None,
        **options: object,
    ) -> SSAValue | list[SSAValue]:
        """Add a builtin op; several outputs when out_shape is a list of shapes."""
        cls = tfl.BUILTIN_CLASSES[builtin]
        multi = len(out_shape) > 0 and isinstance(out_shape[0], (list, tuple))
        shapes = list(out_shape) if multi else [out_shape]
        if isinstance(name, str) or name is None:
            names = [self._name(name, builtin.lower()) + (f":{k}" if multi else "") for k in range(len(shapes))]
        else:
            names = list(name)
        op = cls(list(inputs), [ttype(s, out_dtype) for s in shapes], options=options, names=names)  # type: ignore[arg-type]
        self.add(op)
        return list(op.results) if multi else op.results[0]

    def opaque(self, code: int, inputs: Sequence[SSAValue], result_types: Sequence[Attribute], *, version: int = 1,
               custom_code: str | None = None, custom_options: bytes | None = None, name: str | None = None) -> list[SSAValue]:
        props: dict[str, Attribute] = {"code": IntegerAttr(code, i32), "version": IntegerAttr(version, i32)}
        if custom_code is not None:
            props["custom_code"] = StringAttr(custom_code)
        if custom_options is not None:
            props["custom_options"] = BytesAttr(custom_options)
        names = [self._name(name, "opaque") + f":{k}" for k in range(len(result_types))]
        op = tfl.OpaqueOp.create(operands=list(inputs), result_types=list(result_types), properties=props,
                                 attributes={"names": ArrayAttr([StringAttr(n) for n in names])})
        self.add(op)
        return list(op.results)

    def function(self, outputs: Sequence[SSAValue]) -> func.FuncOp:
        self.block.add_op(func.ReturnOp(*outputs))
        arg_attrs = ArrayAttr([DictionaryAttr({"tfl.name": StringAttr(n)}) for n in self.input_names])
        return func.FuncOp(self.name, ([a.type for a in self.block.args], [o.type for o in outputs]),
                           Region(self.block), arg_attrs=arg_attrs)

    def module(self, outputs: Sequence[SSAValue], output_names: Sequence[str] | None = None,
               signature: str | None = "serving_default", extra: Sequence[func.FuncOp] = ()) -> ModuleOp:
        f = self.function(outputs)
        attrs: dict[str, Attribute] = {"tfl.description": StringAttr("tflquant test model")}
        if signature is not None:
            onames = list(output_names) if output_names is not None else [f"output_{k}" for k in range(len(outputs))]
            attrs["tfl.signatures"] = ArrayAttr([signature_attr(signature, self.name, self.input_names, onames)])
        return ModuleOp([f, *extra], attributes=attrs)

    def tflite(self, outputs: Sequence[SSAValue], **kw: object) -> bytes:
        from tflquant.tflite.writer import write_flatbuffer

        return write_flatbuffer(self.module(outputs, **kw))  # type: ignore[arg-type]


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _w(rng: np.random.Generator, *shape: int, scale: float = 0.3) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def cnn() -> ModuleOp:
    """conv (SAME, relu6), depthwise, residual add, pools, mean, dense, softmax."""
    r = _rng(1)
    g = GraphBuilder("main", {"image": ((1, 8, 8, 3), np.float32)})
    c1 = g.op("CONV_2D", [g.x, g.const(_w(r, 8, 3, 3, 3)), g.const(_w(r, 8))], (1, 8, 8, 8),
              padding="SAME", stride_w=1, stride_h=1, fused_activation_function="RELU6")
    d1 = g.op("DEPTHWISE_CONV_2D", [c1, g.const(_w(r, 1, 3, 3, 8)), g.const(_w(r, 8))], (1, 8, 8, 8),
              padding="SAME", stride_w=1, stride_h=1, depth_multiplier=1, fused_activation_function="RELU")
    a1 = g.op("ADD", [c1, d1], (1, 8, 8, 8))
    p1 = g.op("MAX_POOL_2D", [a1], (1, 4, 4, 8), padding="VALID", stride_w=2, stride_h=2, filter_width=2, filter_height=2)
    c2 = g.op("CONV_2D", [p1, g.const(_w(r, 6, 3, 3, 8)), g.const(_w(r, 6))], (1, 2, 2, 6),
              padding="VALID", stride_w=1, stride_h=1, fused_activation_function="NONE")
    p2 = g.op("AVERAGE_POOL_2D", [c2], (1, 1, 1, 6), padding="VALID", stride_w=2, stride_h=2, filter_width=2, filter_height=2)
    m = g.op("MEAN", [c2, g.const(np.array([1, 2], np.int32))], (1, 6), keep_dims=False)
    r2 = g.op("RESHAPE", [p2, g.const(np.array([1, 6], np.int32))], (1, 6))
    s = g.op("SUB", [m, r2], (1, 6))
    fc = g.op("FULLY_CONNECTED", [s, g.const(_w(r, 5, 6)), g.const(_w(r, 5))], (1, 5), fused_activation_function="RELU_N1_TO_1")
    sm = g.op("SOFTMAX", [fc], (1, 5), beta=1.0, name="probabilities")
    return g.module([sm], ["probabilities"])


def elementwise() -> ModuleOp:
    """Unary and binary float ops on a [1, 4, 6] tensor."""
    r = _rng(2)
    g = GraphBuilder("main", {"x": ((1, 4, 6), np.float32), "y": ((1, 4, 6), np.float32)})
    x, y = g.args["x"], g.args["y"]
    S = (1, 4, 6)
    outs = []
    pos = g.op("ADD", [g.op("ABS", [y], S), g.const(np.full((6,), 0.5, np.float32))], S)
    outs.append(g.op("DIV", [x, pos], S))
    outs.append(g.op("MUL", [x, y], S, fused_activation_function="RELU"))
    outs.append(g.op("LOG", [pos], S))
    outs.append(g.op("SQRT", [pos], S))
    outs.append(g.op("RSQRT", [pos], S))
    outs.append(g.op("EXP", [g.op("TANH", [x], S)], S))
    outs.append(g.op("LOGISTIC", [x], S))
    outs.append(g.op("RELU", [x], S))
    outs.append(g.op("RELU6", [g.op("MUL", [x, g.const(np.float32(4.0))], S)], S))
    outs.append(g.op("RELU_N1_TO_1", [x], S))
    outs.append(g.op("LEAKY_RELU", [x], S, alpha=0.2))
    outs.append(g.op("PRELU", [x, g.const(_w(r, 6))], S))
    outs.append(g.op("HARD_SWISH", [x], S))
    outs.append(g.op("GELU", [x], S, approximate=True))
    outs.append(g.op("NEG", [x], S))
    outs.append(g.op("SQUARE", [x], S))
    outs.append(g.op("SQUARED_DIFFERENCE", [x, y], S))
    outs.append(g.op("MAXIMUM", [x, y], S))
    outs.append(g.op("MINIMUM", [x, g.const(_w(r, 4, 6))], S))
    cond = g.op("GREATER", [x, y], S, out_dtype=np.bool_)
    outs.append(g.op("SELECT_V2", [cond, x, y], S))
    outs.append(g.op("CAST", [g.op("LESS_EQUAL", [x, y], S, out_dtype=np.bool_)], S, in_data_type="BOOL", out_data_type="FLOAT32"))
    total = outs[0]
    for o in outs[1:]:
        total = g.op("ADD", [total, o], S)
    return g.module([total, outs[5], outs[13]], ["sum", "exp_tanh", "gelu"])


def shapes() -> ModuleOp:
    """Data movement: reshape, transpose, concat, split, slices, pack, pads, gather, resize..."""
    g = GraphBuilder("main", {"x": ((1, 4, 4, 2), np.float32)})
    x = g.x
    c = lambda a: g.const(np.array(a, np.int32))  # noqa: E731
    t = g.op("TRANSPOSE", [x, c([0, 2, 1, 3])], (1, 4, 4, 2))
    cat = g.op("CONCATENATION", [x, t], (1, 4, 4, 4), axis=3)
    s0, s1 = g.op("SPLIT", [c(3), cat], [(1, 4, 4, 2), (1, 4, 4, 2)], num_splits=2)  # type: ignore[misc]
    v0, v1 = g.op("SPLIT_V", [cat, c([1, 3]), c(3)], [(1, 4, 4, 1), (1, 4, 4, 3)], num_splits=2)  # type: ignore[misc]
    sl = g.op("SLICE", [v1, c([0, 1, 1, 0]), c([1, 2, 2, 3])], (1, 2, 2, 3))
    ss = g.op("STRIDED_SLICE", [cat, c([0, 0, 0, 0]), c([1, 4, 4, 4]), c([1, 2, 2, 1])], (1, 2, 2, 4))
    pk = g.op("PACK", [s0, s1], (2, 1, 4, 4, 2), values_count=2, axis=0)
    u0, u1 = g.op("UNPACK", [pk], [(1, 4, 4, 2), (1, 4, 4, 2)], num=2, axis=0)  # type: ignore[misc]
    pad = g.op("PAD", [u0, c([[0, 0], [1, 1], [1, 1], [0, 0]])], (1, 6, 6, 2))
    pad2 = g.op("PADV2", [u1, c([[0, 0], [1, 1], [1, 1], [0, 0]]), g.const(np.array([0.5], np.float32))], (1, 6, 6, 2))
    mp = g.op("MIRROR_PAD", [x, c([[0, 0], [1, 1], [1, 1], [0, 0]])], (1, 6, 6, 2), mode="REFLECT")
    sum3 = g.op("ADD", [g.op("ADD", [pad, pad2], (1, 6, 6, 2)), mp], (1, 6, 6, 2))
    rb = g.op("RESIZE_BILINEAR", [sum3, c([12, 12])], (1, 12, 12, 2), half_pixel_centers=True)
    rn = g.op("RESIZE_NEAREST_NEIGHBOR", [x, c([8, 8])], (1, 8, 8, 2))
    s2d = g.op("SPACE_TO_DEPTH", [rn], (1, 4, 4, 8), block_size=2)
    d2s = g.op("DEPTH_TO_SPACE", [s2d], (1, 8, 8, 2), block_size=2)
    sq = g.op("SQUEEZE", [g.op("RESHAPE", [sl, c([1, 12, 1])], (1, 12, 1))], (12,), squeeze_dims=[0, 2])
    ed = g.op("EXPAND_DIMS", [sq, c(0)], (1, 12))
    ga = g.op("GATHER", [ed, c([3, 1, 4, 1, 5])], (1, 5), axis=1)
    ti = g.op("TILE", [ga, c([2, 1])], (2, 5))
    bt = g.op("BROADCAST_TO", [ss, c([2, 2, 2, 4])], (2, 2, 2, 4))
    return g.module([rb, d2s, ti, bt, v0], ["resized", "d2s", "tiled", "broadcast", "split_v0"])


def matmul() -> ModuleOp:
    """batch_matmul, fully connected (keep_num_dims, no bias), reductions, softmaxes."""
    r = _rng(3)
    g = GraphBuilder("main", {"a": ((2, 3, 4), np.float32), "b": ((2, 4, 5), np.float32)})
    a, b = g.args["a"], g.args["b"]
    mm = g.op("BATCH_MATMUL", [a, b], (2, 3, 5))
    fc = g.op("FULLY_CONNECTED", [mm, g.const(_w(r, 6, 5)), g.no_value()], (2, 3, 6), keep_num_dims=True)
    ls = g.op("LOG_SOFTMAX", [fc], (2, 3, 6))
    l2 = g.op("L2_NORMALIZATION", [fc], (2, 3, 6))
    cs = g.op("CUMSUM", [l2, g.const(np.array(2, np.int32))], (2, 3, 6))
    ax = g.const(np.array([2], np.int32))
    rmax = g.op("REDUCE_MAX", [ls, ax], (2, 3))
    rmin = g.op("REDUCE_MIN", [cs, ax], (2, 3))
    rsum = g.op("SUM", [fc, ax], (2, 3, 1), keep_dims=True)
    am = g.op("ARG_MAX", [fc, ax], (2, 3), out_dtype=np.int32, output_type="INT32")
    amin = g.op("ARG_MIN", [fc, ax], (2, 3), out_dtype=np.int64, output_type="INT64")
    return g.module([rmax, rmin, rsum, am, amin], ["rmax", "rmin", "rsum", "argmax", "argmin"])


def dynamic_batch() -> ModuleOp:
    """A dynamic batch dimension (shape_signature -1) and an int32 token input."""
    r = _rng(4)
    g = GraphBuilder("main", {"tokens": ((None, 5), np.int32), "scale": ((None, 1), np.float32)})
    emb = g.op("GATHER", [g.const(_w(r, 10, 3)), g.args["tokens"]], (None, 5, 3), axis=0)
    m = g.op("MEAN", [emb, g.const(np.array([1], np.int32))], (None, 3))
    y = g.op("MUL", [m, g.args["scale"]], (None, 3))
    return g.module([y], ["pooled"])


def lstm() -> ModuleOp:
    """A float UNIDIRECTIONAL_SEQUENCE_LSTM with variable state tensors and absent inputs."""
    r = _rng(5)
    g = GraphBuilder("main", {"seq": ((1, 3, 2), np.float32)})
    nv = g.no_value()
    w_in = [g.const(_w(r, 4, 2), f"w_in_{k}") for k in range(4)]
    w_rec = [g.const(_w(r, 4, 4), f"w_rec_{k}") for k in range(4)]
    bias = [g.const(_w(r, 4), f"bias_{k}") for k in range(4)]
    states = []
    for nm in ("output_state", "cell_state"):
        var = tfl.VariableOp.create(result_types=[ttype((1, 4))], attributes={"names": ArrayAttr([StringAttr(nm)])})
        states.append(g.add(var).results[0])
    inputs = [g.x, *w_in, *w_rec, nv, nv, nv, *bias, nv, nv, *states, nv, nv, nv, nv]
    y = g.op("UNIDIRECTIONAL_SEQUENCE_LSTM", inputs, (1, 3, 4), fused_activation_function="TANH", time_major=False, name="lstm_out")
    out = g.op("FULLY_CONNECTED", [y, g.const(_w(r, 2, 4)), g.const(_w(r, 2))], (1, 3, 2), keep_num_dims=True)
    return g.module([out], ["prediction"])


MODELS: dict[str, Callable[[], ModuleOp]] = {
    "lstm": lstm,
    "cnn": cnn,
    "elementwise": elementwise,
    "shapes": shapes,
    "matmul": matmul,
    "dynamic_batch": dynamic_batch,
}


def sample_inputs(module: ModuleOp, n: int = 4, seed: int = 0, batch: int = 1) -> dict[str, np.ndarray]:
    """Random inputs for the first function: name -> array of shape (n, *input shape).

    Dynamic dimensions become `batch`; integer inputs are small non-negative ids.
    """
    from tflquant.ir import numpy_dtype_of_element, value_name

    rng = _rng(seed)
    f = next(op for op in module.body.ops if isinstance(op, func.FuncOp))
    out = {}
    for arg in f.body.blocks[0].args:
        t = arg.type
        assert isinstance(t, TensorType)
        shape = tuple(batch if d == DYNAMIC_INDEX else d for d in t.get_shape())
        dt = numpy_dtype_of_element(t.element_type)
        if dt.kind in "iu":
            arr = rng.integers(0, 10, size=(n, *shape)).astype(dt)
        else:
            arr = rng.standard_normal((n, *shape)).astype(dt)
        out[value_name(arg) or f"input_{arg.index}"] = arr
    return out


def run_tflite(model: bytes, inputs: dict[str, np.ndarray], n: int | None = None) -> list[np.ndarray]:
    """Run a model in LiteRT sample by sample; returns one stacked array per output.

    `inputs` maps input tensor names (or positions as "0", "1"...) to arrays, samples first.
    A float sample fed to an integer quantized input is quantized with the input's params.
    """
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model)
    ins = it.get_input_details()
    outs = it.get_output_details()
    keys = [k for k in inputs if k != "labels"]
    count = n if n is not None else min(len(inputs[k]) for k in keys)
    results: list[list[np.ndarray]] = [[] for _ in outs]
    allocated = False
    for s in range(count):
        xs = []
        for pos, d in enumerate(ins):
            arr = inputs[d["name"]] if d["name"] in inputs else inputs[keys[pos]]
            x = np.asarray(arr[s : s + 1])
            if x.shape[0] == 1 and len(d["shape"]) == x.ndim - 1:
                x = x[0]
            if np.dtype(d["dtype"]).kind in "iu" and x.dtype.kind == "f":
                sc, zp = d["quantization"]
                info = np.iinfo(d["dtype"])
                x = np.clip(np.round(x / sc) + zp, info.min, info.max)
            x = x.astype(d["dtype"])
            if list(d["shape"]) != list(x.shape):
                it.resize_tensor_input(d["index"], list(x.shape))
                allocated = False
            xs.append(x)
        if not allocated:
            it.allocate_tensors()
            allocated = True
        for d, x in zip(ins, xs):
            it.set_tensor(d["index"], x)
        it.invoke()
        for k, o in enumerate(outs):
            results[k].append(it.get_tensor(o["index"]).copy())
    return [np.stack(r) for r in results]
