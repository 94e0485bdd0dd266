"""The per-call shortcuts of the reader and the pass pipeline give what the generic paths
give: the reader's blocks are the linked lists Block.add_op makes, an operator code's
facts are those of its op class (refused inputs included), a pipeline parsed once per
spec holds the passes a fresh parse makes, and never shares a pass that could change."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from conftest import MODEL_NAMES, shared_model_dir
from models import MODELS, GraphBuilder, ttype
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block
from xdsl.passes import ModulePass

from tflquant.dialects import tfl
from tflquant.dialects._unchecked import append_ops
from tflquant.errors import TflquantError
from tflquant.ir import print_module
from tflquant.passes import _EXTERNAL, register_pass
from tflquant.pipeline import parse_pipeline
from tflquant.tflite import writer
from tflquant.tflite.reader import read_flatbuffer
from tflquant.tflite.writer import write_flatbuffer


def _links(block: Block) -> list[tuple]:
    """Every op of the block with its neighbours and parent, walked forwards, and the
    backward walk: what add_op maintains."""
    forward, op = [], block.first_op
    while op is not None:
        forward.append((op, op.prev_op, op.next_op, op.parent))
        op = op.next_op
    backward, op = [], block.last_op
    while op is not None:
        backward.append(op)
        op = op.prev_op
    assert backward[::-1] == [o for o, *_ in forward]
    return forward


def test_append_ops_links_like_add_op():
    for before in (0, 1):  # into an empty block, and after an op already there
        block = Block()
        old = [tfl.NoValueOp() for _ in range(before)]
        for o in old:
            block.add_op(o)
        new = [tfl.NoValueOp(), tfl.ConstOp.create(properties={}, result_types=[ttype((2,))]), tfl.NoValueOp()]
        append_ops(block, new)
        ops = old + new
        assert list(block.ops) == ops and block.first_op is ops[0] and block.last_op is ops[-1]
        prev, nxt = [None, *ops[:-1]], [*ops[1:], None]
        assert all(o.prev_op is p and o.next_op is n and o.parent is block for o, p, n in zip(ops, prev, nxt))
        _links(block)


def test_append_ops_refuses_an_attached_op_as_add_op_does():
    held = Block()
    op = tfl.NoValueOp()
    held.add_op(op)
    with pytest.raises(ValueError, match="already attached"):
        append_ops(Block(), [op])


@pytest.mark.parametrize("name", ["cnn", "shapes", "lstm"])
def test_read_model_blocks_and_text_are_the_generic_ones(name):
    """The reader links its ops directly: every block is the list add_op makes, and the
    module verifies (xDSL's full verification) and prints the text of its re-read copy."""
    data = write_flatbuffer(MODELS[name]())
    module = read_flatbuffer(data)
    for fn in module.ops:
        links = _links(fn.body.block)
        assert all(parent is fn.body.block for *_, parent in links) and links
        assert links[-1][0].name == "func.return"
    module.verify()
    assert print_module(module) == print_module(read_flatbuffer(write_flatbuffer(module)))


@pytest.mark.parametrize("name", [*MODEL_NAMES, "decoder_tiny"])
def test_shared_models_read_into_linked_verified_blocks(name):
    """Converter-written models (subgraphs, signatures, quantized tensors): the same holds."""
    module = read_flatbuffer((shared_model_dir(name) / "float.tflite").read_bytes())
    for fn in module.ops:
        links = _links(fn.body.block)
        assert all(parent is fn.body.block for *_, parent in links)
    module.verify()


def _opaque_fc(inputs_of):
    """A model whose FULLY_CONNECTED is written as an opaque op with the given inputs (the
    writer keeps it as it is; the reader types it by its code)."""
    g = GraphBuilder("main", {"x": ((1, 4), np.float32)})
    w = g.const(np.ones((3, 4), np.float32), name="w")
    (y,) = g.opaque(tfl.BUILTIN_CLASSES["FULLY_CONNECTED"].CODE, inputs_of(g, w), [ttype((1, 3))], name="fc")
    return g.tflite([y])


def test_operator_codes_type_ops_and_refuse_missing_inputs():
    ok = read_flatbuffer(_opaque_fc(lambda g, w: [g.x, w]))
    (fc,) = [o for o in ok.walk() if isinstance(o, tfl.BUILTIN_CLASSES["FULLY_CONNECTED"])]
    assert len(fc.inputs) == 2  # typed by its code: a bias is optional
    with pytest.raises(TflquantError, match=r"operator 0 \(FULLY_CONNECTED\) has 1 input\(s\); LiteRT's FULLY_CONNECTED needs at least 2"):
        read_flatbuffer(_opaque_fc(lambda g, w: [g.x]))
    with pytest.raises(TflquantError, match=r"\(FULLY_CONNECTED\) leaves out \(-1\) its input 1 \(filter\)"):
        read_flatbuffer(_opaque_fc(lambda g, w: [g.x, g.no_value()]))


def test_custom_code_names_the_op_in_messages():
    """Each operator code keeps its own custom code and version (two custom ops, TANH twice
    in two versions), and a message names the op by its own code's custom code."""
    g = GraphBuilder("main", {"x": ((1, 4), np.float32)})
    tanh = tfl.BUILTIN_CLASSES["TANH"].CODE
    (a,) = g.opaque(32, [g.x], [ttype((1, 4))], custom_code="MyOp", version=3, name="a")
    (b,) = g.opaque(tanh, [a], [ttype((1, 4))], version=1, name="b")
    (c,) = g.opaque(32, [b], [ttype((1, 4))], custom_code="Other", name="c")
    (d,) = g.opaque(tanh, [c], [ttype((1, 4))], version=2, name="d")
    module = g.module([d])
    ops = list(read_flatbuffer(write_flatbuffer(module)).body.block.first_op.body.block.ops)
    assert [(o.properties["custom_code"].data, o.properties["version"].value.data) for o in ops if isinstance(o, tfl.OpaqueOp)] == [("MyOp", 3), ("Other", 1)]
    assert [type(o) for o in ops].count(tfl.BUILTIN_CLASSES["TANH"]) == 2
    for j, name in ((0, "MyOp"), (2, "Other"), (3, "TANH")):
        plan = writer._plan(module)
        plan.subgraphs[0].operators[j].inputs[0] = 42
        with pytest.raises(TflquantError, match=rf"subgraph 0 operator {j} \({name}\) refers to tensor 42"):
            read_flatbuffer(writer._emit(module, plan, None))


# -------------------------------------------------------------------------- pipelines

SPEC = "fold-bias-add,quantize-weights{min-elements=16 per-channel=false bits=4 weight-rounding=nearest}"


def test_parsed_pipeline_equals_a_fresh_parse_and_is_made_once():
    a, b = parse_pipeline(SPEC), parse_pipeline(SPEC)
    assert [p.pipeline_pass_spec() for p in a.passes] == [p.pipeline_pass_spec() for p in b.passes]
    assert a.passes[1].bits == 4 and a.passes[1].per_channel is False and a.passes[1].min_elements == 16
    assert all(x is y for x, y in zip(a.passes, b.passes))  # frozen passes: shared
    other = parse_pipeline(SPEC.replace("bits=4", "bits=8"))
    assert other.passes[1].bits == 8


def test_a_bad_spec_fails_every_time():
    for _ in range(2):
        with pytest.raises(TflquantError, match="bad pipeline"):
            parse_pipeline("quantize-weights{bits=5}")
        with pytest.raises(TflquantError, match="bad pipeline"):
            parse_pipeline("no-such-pass")


class _Counting(ModulePass):
    """A pass that is no frozen dataclass of its own (it may hold state): never shared."""

    name = "test-per-call-counting"

    def __init__(self) -> None:
        self.runs = 0

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        self.runs += 1


@dataclass(frozen=True)
class _First(ModulePass):
    name = "test-per-call-swapped"
    which: int = 1

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        pass


@dataclass(frozen=True)
class _Second(_First):
    name = "test-per-call-swapped"
    which: int = 2


def test_mutable_passes_are_made_per_parse_and_registry_changes_are_seen():
    try:
        register_pass(_Counting)
        a, b = parse_pipeline("test-per-call-counting"), parse_pipeline("test-per-call-counting")
        assert a.passes[0] is not b.passes[0]
        register_pass(_First)
        assert type(parse_pipeline("test-per-call-swapped").passes[0]) is _First
        register_pass(_Second)  # the same name, another class: the new one
        assert type(parse_pipeline("test-per-call-swapped").passes[0]) is _Second
    finally:
        for n in ("test-per-call-counting", "test-per-call-swapped"):
            _EXTERNAL.pop(n, None)
