"""Recipe files (issue 12): one JSON object holding mode, weight_bits, granularity,
block_size, keep_float, op_bits; the API and the CLI read it; bad recipes get one error."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import tflquant
from tflquant.errors import TflquantError
from tests.test_int4_blockwise import _lm

RECIPE = {"mode": "weight-only", "weight_bits": 4, "granularity": "block", "block_size": 64,
          "op_bits": {"head": 8}, "keep_float": ["emb"], "min_weight_elements": 256}


@pytest.fixture(scope="module")
def lm():
    return _lm()


def test_recipe_file_equals_arguments(tmp_path, lm):
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(RECIPE))
    by_file = tflquant.quantize(lm, recipe=str(path))
    by_args = tflquant.quantize(lm, mode="weight-only", weight_bits=4, granularity="block", block_size=64,
                                op_bits={"head": 8}, keep_float=["emb"], min_weight_elements=256)
    assert by_file.model == by_args.model
    f = {w.name: w for w in by_file.report.weight_formats}
    assert (f["hidden"].bits, f["hidden"].block_size, f["head"].bits) == (4, 64, 8) and "emb" not in f
    # an argument given (not left at its default) wins over the recipe
    assert {w.name: w.bits for w in tflquant.quantize(lm, recipe=RECIPE, op_bits={"head": 4}).report.weight_formats}["head"] == 4


def test_recipe_op_bits_as_objects(lm):
    r = tflquant.quantize(lm, recipe={**RECIPE, "op_bits": {"FULLY_CONNECTED": {"bits": 4, "granularity": "channel"}}})
    assert {(w.name, w.granularity) for w in r.report.weight_formats} >= {("hidden", "channel"), ("head", "channel")}


@pytest.mark.parametrize(
    "recipe,message",
    [
        ({"mode": "dynamic", "bits": 4}, "unknown key(s) 'bits'"),
        ({"weight_bits": "4"}, "weight_bits must be an integer"),
        ({"op_bits": {"head": "9"}}, "weight bits must be 8, 4 or 2"),
        ({"op_bits": {"head": {"granularity": "block"}}}, "give bits"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_bad_recipe_one_error(lm, recipe, message):
    with pytest.raises(TflquantError) as e:
        tflquant.quantize(lm, recipe=recipe)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_bad_json_file(tmp_path, lm):
    path = tmp_path / "r.json"
    path.write_text("{mode: dynamic")
    with pytest.raises(TflquantError, match="not valid JSON"):
        tflquant.quantize(lm, recipe=str(path))


def test_cli_recipe(tmp_path, lm):
    src, out, rp = tmp_path / "lm.tflite", tmp_path / "q.tflite", tmp_path / "recipe.json"
    src.write_bytes(lm)
    rp.write_text(json.dumps(RECIPE))
    p = subprocess.run([sys.executable, "-m", "tflquant.cli", "quantize", str(src), "-o", str(out), "--recipe", str(rp)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert out.read_bytes() == tflquant.quantize(lm, recipe=RECIPE).model
    p = subprocess.run([sys.executable, "-m", "tflquant.cli", "quantize", str(src), "-o", str(out), "--recipe", str(rp), "--print-pipeline"],
                       capture_output=True, text=True, timeout=120)
    assert "weight-only=true" in p.stdout and 'op-bits="head=8"' in p.stdout
