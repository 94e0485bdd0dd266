"""Calibration facts live in the IR: `tflquant quantize --save-stats S.json` and
`tflquant-opt MODEL -p '<its pipeline with annotate-calibration{stats-file="S.json"}>'`
give the same bytes, and so does the IR printed right after annotate-calibration, replayed
from text. correct-bias and clip-weights read nothing but the IR (their moments are the
layers' `input_moments`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tflquant import cli, opt
from tflquant.api import quantize

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
MODEL = EXAMPLES / "digits_cnn.tflite"
CALIB = EXAMPLES / "digits_cnn_calib.npz"


def _with_stats_file(spec: str, stats: Path) -> str:
    """The spec with its annotate-calibration reading the statistics file."""
    out, n = re.subn(r"annotate-calibration(?=,|$)", f'annotate-calibration{{stats-file="{stats}"}}', spec)
    assert n == 1, spec
    return out


def _opt(*argv: str) -> None:
    assert opt.main([str(a) for a in argv]) == 0


def _quantize_cli(model: Path, calib: Path, out: Path, stats: Path, flags: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """`tflquant quantize ... --save-stats` to `out`; returns the pipeline it ran."""
    argv = ["quantize", str(model), "--calibration", str(calib), "-o", str(out), "--save-stats", str(stats), "-q", *flags]
    assert cli.main(argv) == 0
    capsys.readouterr()
    # the pipeline the CLI ran (the measured fallback may add keep-float: take the report's)
    kwargs = {"mode": flags[flags.index("--mode") + 1]}
    if "--clip-weights" in flags:
        kwargs["clip_weights"] = True
    if "--bias-correction" in flags:
        kwargs["bias_correction"] = True
    r = quantize(str(model), representative_dataset=str(calib), **kwargs)  # type: ignore[arg-type]
    assert r.model == out.read_bytes(), "the API and the CLI disagree"
    return r.report.pipeline


CASES = {
    "int8-bias-correction": ["--mode", "int8", "--bias-correction"],
    "int16x8": ["--mode", "int16x8"],  # bias correction on by default
    "int8-clip-weights": ["--mode", "int8", "--clip-weights"],  # clip-weights{corrected=false}, no correct-bias
}


@pytest.mark.parametrize("case", list(CASES))
def test_saved_stats_replay_the_pipeline_in_tflquant_opt(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flags = CASES[case]
    stats, direct, replayed = tmp_path / "s.json", tmp_path / "direct.tflite", tmp_path / "replayed.tflite"
    spec = _quantize_cli(MODEL, CALIB, direct, stats, flags, capsys)
    assert ("correct-bias" in spec) == (case != "int8-clip-weights") and ("clip-weights" in spec) == ("--clip-weights" in flags)
    _opt(MODEL, "-p", _with_stats_file(spec, stats), "-o", replayed)
    assert replayed.read_bytes() == direct.read_bytes()


def _split_after_annotate(spec: str) -> tuple[str, str]:
    passes = re.split(r",(?![^{]*\})", spec)
    i = next(k for k, p in enumerate(passes) if p.startswith("annotate-calibration"))
    return ",".join(passes[: i + 1]), ",".join(passes[i + 1 :])


def test_ir_printed_after_annotate_calibration_replays_from_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Both ways to stop after calibration: tflquant-opt -p '...,annotate-calibration{...}'
    to a text file, and --print-ir-after annotate-calibration on the whole pipeline."""
    stats, direct = tmp_path / "s.json", tmp_path / "direct.tflite"
    spec = _quantize_cli(MODEL, CALIB, direct, stats, ["--mode", "int16x8", "--clip-weights"], capsys)
    head, rest = _split_after_annotate(_with_stats_file(spec, stats))
    annotated = tmp_path / "annotated.mlir"
    _opt(MODEL, "-p", head, "-o", annotated)
    text = annotated.read_text()
    assert "quant.stats" in text and "input_moments = #quant.moments<mean = [" in text and "mean_sq = [" in text
    _opt(annotated, "-p", rest, "-o", tmp_path / "from_text.tflite")
    assert (tmp_path / "from_text.tflite").read_bytes() == direct.read_bytes()

    capsys.readouterr()
    _opt(MODEL, "-p", _with_stats_file(spec, stats), "--print-ir-after", "annotate-calibration", "-o", tmp_path / "whole.tflite")
    dump = capsys.readouterr().err
    assert dump.startswith("// -----// IR Dump After annotate-calibration //----- //\n")
    dumped = tmp_path / "dumped.mlir"
    dumped.write_text(dump.split("\n", 1)[1])
    _opt(dumped, "-p", rest, "-o", tmp_path / "from_dump.tflite")
    assert (tmp_path / "from_dump.tflite").read_bytes() == direct.read_bytes() == (tmp_path / "whole.tflite").read_bytes()


@pytest.mark.parametrize("shared_model", ["tiny_transformer"], indirect=True)
def test_saved_stats_replay_a_shared_model(shared_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stats, direct, replayed = tmp_path / "s.json", tmp_path / "direct.tflite", tmp_path / "replayed.tflite"
    flags = ["--mode", "int16x8", "--clip-weights"]
    spec = _quantize_cli(shared_model / "float.tflite", shared_model / "calib.npz", direct, stats, flags, capsys)
    _opt(shared_model / "float.tflite", "-p", _with_stats_file(spec, stats), "-o", replayed)
    assert replayed.read_bytes() == direct.read_bytes()


def test_saved_stats_replay_a_multi_signature_model_with_repeated_names(tmp_path: Path) -> None:
    """Two signatures whose tensors share names (as the TF converter writes them): their
    statistics are keyed '@function/name'; the IR after annotate-calibration has resolved
    them, and the replay gives the same bytes (int16x8: bias correction on their layers)."""
    from test_multi_signature import GraphBuilder, _calibration, _Graph, stateless_decoder

    from tflquant.calibration.stats import read_stats
    from tflquant.tflite.writer import write_flatbuffer

    orig = _Graph._name
    _Graph._name = lambda self, name, prefix: GraphBuilder._name(self, name, prefix)  # type: ignore[method-assign]
    try:
        model = tmp_path / "float.tflite"
        model.write_bytes(write_flatbuffer(stateless_decoder()))
    finally:
        _Graph._name = orig  # type: ignore[method-assign]
    stats = tmp_path / "s.json"
    r = quantize(str(model), mode="int16x8", representative_dataset=_calibration("stateless", "both-arrays"), save_stats=str(stats))
    assert any(k.startswith("@") for k in read_stats(stats)), "no per-function statistics: the test lost its point"
    assert "correct-bias" in r.report.pipeline
    head, rest = _split_after_annotate(_with_stats_file(r.report.pipeline, stats))
    annotated = tmp_path / "annotated.mlir"
    _opt(model, "-p", head, "-o", annotated)
    assert "input_moments" in annotated.read_text()
    _opt(annotated, "-p", rest, "-o", tmp_path / "replayed.tflite")
    assert (tmp_path / "replayed.tflite").read_bytes() == r.model
