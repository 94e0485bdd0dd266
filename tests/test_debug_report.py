"""`tflquant compare --csv / --html` and Comparison.to_csv / to_html: the TF
QuantizationDebugger's CSV (checked against LiteRT's own tensors) and the HTML page
(rendered in a real headless Chromium)."""

from __future__ import annotations

import csv
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

import tflquant
from tflquant.cli import main
from tflquant.compare import layer_errors
from tflquant.debug_report import worst_layers
from tflquant.errors import TflquantError
from tflquant.tflite.writer import write_flatbuffer

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "examples" / "digits_cnn.tflite"
DIGITS_CALIB = ROOT / "examples" / "digits_cnn_calib.npz"
sys.path.insert(0, str(ROOT / "tests"))

# TF's QuantizationDebugger.layer_statistics_dump header with its default metrics
# (tensorflow/lite/tools/optimize/debugging/python/debugger.py), then tflquant's columns.
TF_HEADER = ["op_name", "tensor_idx", "num_elements", "stddev", "mean_error", "max_abs_error", "mean_squared_error", "scale", "zero_point", "tensor_name"]
OUR_HEADER = ["sqnr_db", "max_error_steps", "layer_loss_db", "precision", "subgraph", "signature", "model"]
METRICS = ["stddev", "mean_error", "max_abs_error", "mean_squared_error"]
N = 6  # samples


@pytest.fixture(scope="module")
def digits() -> dict[str, bytes]:
    return {
        "int8": tflquant.quantize(DIGITS, representative_dataset=DIGITS_CALIB).model,
        "int16x8": tflquant.quantize(DIGITS, mode="int16x8", representative_dataset=DIGITS_CALIB).model,
        "dynamic": tflquant.quantize(DIGITS, mode="dynamic").model,
        "mixed": tflquant.quantize(DIGITS, representative_dataset=DIGITS_CALIB, op_precision={"FULLY_CONNECTED": "int16"}).model,
    }


def _litert(model: bytes):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_content=model, experimental_preserve_all_tensors=True,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)  # builtin kernels
    it.allocate_tensors()
    return it


def _litert_tensors(model: bytes, x: np.ndarray) -> tuple[list[dict[int, np.ndarray]], object]:
    """Every tensor of subgraph 0 after each invoke (one sample each), by tensor index."""
    it = _litert(model)
    inp = it.get_input_details()[0]
    out = []
    for sample in x:
        it.set_tensor(inp["index"], sample[None].astype(inp["dtype"]))
        it.invoke()
        out.append({d["index"]: np.array(it.get_tensor(d["index"])) for d in it.get_tensor_details() if d["shape"].size})
    return out, it


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as f:
        r = csv.DictReader(f)
        return list(r.fieldnames or []), list(r)


@pytest.mark.parametrize("mode", ["int8", "int16x8", "dynamic"])
def test_csv_is_the_tf_debuggers_and_matches_litert(mode: str, digits: dict[str, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Header: TF's columns in its order, then ours. Each row names a tensor of the quantized
    file (index, name, scale and zero point as LiteRT reads them) and its metrics equal TF's
    definitions computed here with numpy on LiteRT's tensors: diff = dequantized - float per
    sample, then the mean over samples."""
    q = tmp_path / f"{mode}.tflite"
    q.write_bytes(digits[mode])
    out = tmp_path / "layers.csv"
    assert main(["compare", str(DIGITS), str(q), str(DIGITS_CALIB), "--max-samples", str(N), "--csv", str(out)]) == 0
    table = capsys.readouterr().out.splitlines()
    header, rows = _read_csv(out)
    assert header == TF_HEADER + OUR_HEADER
    want = layer_errors(DIGITS, digits[mode], DIGITS_CALIB, max_samples=N)
    assert [r["tensor_name"] for r in rows] == [w.tensor_name for w in want] and len(rows) >= 9
    assert [float(r["sqnr_db"]) for r in rows] == [w.sqnr_db for w in want]  # the table's numbers, written exactly
    assert [f"{float(r['sqnr_db']):7.2f} dB" for r in rows] == [line[:10] for line in table[1 : 1 + len(rows)]]
    assert {r["precision"] for r in rows} == {{"dynamic": "float", "int8": "int8", "int16x8": "int16"}[mode]}
    assert {r["model"] for r in rows} == {mode} and {r["subgraph"] for r in rows} == {"0"}

    x = np.load(DIGITS_CALIB)["serving_default_keras_tensor:0"][:N]
    qt, qit = _litert_tensors(digits[mode], x)
    ft, fit = _litert_tensors(DIGITS.read_bytes(), x)
    f_index = {d["name"]: d["index"] for d in fit.get_tensor_details()}  # type: ignore[attr-defined]
    for r, w in zip(rows, want):
        idx = int(r["tensor_idx"])
        d = qit._get_tensor_details(idx, 0)  # type: ignore[attr-defined]
        assert d["name"] == r["tensor_name"] and d["dtype"].__name__ == {"int16": "int16", "int8": "int8", "float": "float32"}[r["precision"]]
        qp = d["quantization_parameters"]
        if r["precision"] == "float":
            assert r["scale"] == r["zero_point"] == ""
            deq = np.stack([s[idx] for s in qt]).astype(np.float64)
        else:
            scale, zp = float(qp["scales"][0]), int(qp["zero_points"][0])
            assert float(r["scale"]) == scale and int(r["zero_point"]) == zp
            deq = (np.stack([s[idx] for s in qt]).astype(np.float64) - zp) * scale
        ref = np.stack([s[f_index[w.name]] for s in ft]).astype(np.float64)  # the float model's name
        diff = (deq - ref).reshape(N, -1)
        assert int(r["num_elements"]) == diff.shape[1]
        direct = {
            "stddev": diff.std(axis=1).mean(), "mean_error": diff.mean(axis=1).mean(),
            "max_abs_error": np.abs(diff).max(axis=1).mean(), "mean_squared_error": (diff**2).mean(axis=1).mean(),
        }
        scale_of_error = max(float(r["max_abs_error"]), 1e-12)
        for m in METRICS:  # LiteRT's float kernels round unlike numpy's: the difference is far below the error
            tol = 2e-3 * scale_of_error**(2 if m == "mean_squared_error" else 1)
            assert abs(float(r[m]) - direct[m]) <= tol, (r["tensor_name"], m, float(r[m]), direct[m])
    assert max(float(r["max_abs_error"]) for r in rows) > 1e-3  # the check above compared real errors


def test_csv_of_a_while_loop_names_its_subgraph(tmp_path: Path) -> None:
    """A GRU's WHILE: rows of the loop body carry the body's subgraph index, a tensor index
    that LiteRT's subgraph has under that name, and are named '@body/...' in the table."""
    from test_control_flow import gru_loop

    m = write_flatbuffer(gru_loop())
    x = {"seq": np.random.default_rng(1).standard_normal((16, 1, 6, 4)).astype(np.float32)}
    q = tflquant.quantize(m, representative_dataset=x).model
    c = tflquant.compare_models(m, [q], x, labels=["int8"])
    out = tmp_path / "loop.csv"
    assert c.to_csv(out) == out.read_bytes().decode()
    header, rows = _read_csv(out)
    assert header == TF_HEADER + OUR_HEADER
    it = _litert(q)
    body = [r for r in rows if r["subgraph"] != "0"]
    assert len(body) >= 5 and {r["subgraph"] for r in body} == {"2"}
    for r, row in zip(rows, c.rows):
        assert it._get_tensor_details(int(r["tensor_idx"]), int(r["subgraph"]))["name"] == r["tensor_name"]  # type: ignore[attr-defined]
        assert row.name == (row.tensor_name.removesuffix("_int8") if r["subgraph"] == "0" else f"@body/{r['tensor_name']}")
        assert float(r["sqnr_db"]) == row.sqnr_db > 20 and float(r["max_abs_error"]) > 0


def test_if_branches_each_their_subgraph() -> None:
    """IF with samples taking either branch: each branch's tensor is a row of its subgraph,
    compared on the samples that took it (a few quantization steps at most)."""
    from test_control_flow import branch

    m = write_flatbuffer(branch())
    rng = np.random.default_rng(0)
    x = {"flag": np.where(rng.random((16, 1)) > 0.5, 1.0, -1.0).astype(np.float32), "x": rng.standard_normal((16, 3)).astype(np.float32)}
    q = tflquant.quantize(m, representative_dataset=x).model
    rows = tflquant.compare_models(m, [q], x).rows
    assert [(r.name, r.subgraph) for r in rows] == [("@then/tripled", 1), ("@else/decremented", 2), ("picked", 0)]
    it = _litert(q)
    for r in rows:
        assert it._get_tensor_details(r.tensor_idx, r.subgraph)["name"] == r.tensor_name  # type: ignore[attr-defined]
        assert r.sqnr_db > 35 and r.max_error_steps is not None and r.max_error_steps <= 1.5 and r.max_abs_error > 0


def test_dynamic_range_rows_follow_litert_hybrid_kernels() -> None:
    """Hybrid kernels quantize their input at run time; compare simulates that, so the model
    output's SQNR is LiteRT's (dequantized weights alone would give a different figure)."""
    from tflquant.scoring import litert_run, sqnr_db

    q = tflquant.quantize(DIGITS, mode="dynamic").model
    rows = layer_errors(DIGITS, q, DIGITS_CALIB, max_samples=16)
    x = np.load(DIGITS_CALIB)["serving_default_keras_tensor:0"][:16]
    got = litert_run(q, [x], delegates=False)[0].reshape(16, -1)
    ref = litert_run(DIGITS.read_bytes(), [x], delegates=False)[0].reshape(16, -1)
    assert rows[-1].sqnr_db == pytest.approx(sqnr_db(ref, got), abs=0.05)
    assert [r.op_type for r in rows if r.sqnr_db < 99] == ["CONV_2D", "MEAN", "FULLY_CONNECTED", "FULLY_CONNECTED", "SOFTMAX"]


def test_several_signatures(tmp_path: Path) -> None:
    """Each signature the data names runs; rows say which, and tensors outside the first
    subgraph are qualified by it."""
    from test_multi_signature import D, S, stateless_decoder

    m = write_flatbuffer(stateless_decoder())
    rng = np.random.default_rng(3)
    data = {"prefill/x": rng.standard_normal((12, 1, S, D)).astype(np.float32),
            "decode/x": rng.standard_normal((12, 1, 1, D)).astype(np.float32),
            "decode/cache": rng.standard_normal((12, 1, S, D)).astype(np.float32)}
    q = tflquant.quantize(m, representative_dataset=data).model
    c = tflquant.compare_models(m, [q], data)
    sigs = {r.signature for r in c.rows}
    assert sigs == {"prefill", "decode"}
    for r in c.rows:
        assert r.subgraph == (0 if r.signature == "prefill" else 1)
        t = r.tensor_name.removesuffix("_int8")  # a model output's integer tensor: the float model's name
        assert r.name == (f"prefill:{t}" if r.signature == "prefill" else f"decode:@decode/{t}")
        assert r.sqnr_db > 15
    assert len({r.signature for r in c.rows if r.op_type == "BATCH_MATMUL"}) == 2
    _, rows = _read_csv(Path(c.to_csv(tmp_path / "s.csv") and tmp_path / "s.csv"))
    assert [r["signature"] for r in rows] == [r.signature for r in c.rows]


@pytest.mark.parametrize("mode", ["int8", "dynamic"])
def test_signatures_sharing_a_kv_cache_follow_litert(mode: str) -> None:
    """prefill / decode sharing a resource variable (CALL_ONCE initializer): each sample's
    prefill state carries into its decode, as one LiteRT interpreter running prefill then
    decode; each signature's output row is the SQNR LiteRT's outputs have (int8, and the
    hybrid kernels of a dynamic-range model, BATCH_MATMUL included)."""
    from test_multi_signature import D, S, run_litert, stateful_decoder

    from tflquant.scoring import sqnr_db

    m = write_flatbuffer(stateful_decoder())
    rng = np.random.default_rng(5)
    data = {"prefill/x": rng.standard_normal((6, 1, S, D)).astype(np.float32), "decode/x": rng.standard_normal((6, 1, 1, D)).astype(np.float32)}
    opts = {"representative_dataset": data} if mode == "int8" else {"min_weight_elements": 1}
    q = tflquant.quantize(m, mode=mode, **opts).model
    c = tflquant.compare_models(m, [q], data)
    assert "BATCH_MATMUL" in {r.op_type for r in c.rows if r.kind == ("int8" if mode == "int8" else "float")}
    calls = [call for k in range(6) for call in (("prefill", {"x": data["prefill/x"][k]}), ("decode", {"x": data["decode/x"][k]}))]
    ref, got = run_litert(m, calls), run_litert(q, calls)
    for i, sig in enumerate(("prefill", "decode")):
        rows = [r for r in c.rows if r.signature == sig]
        want = sqnr_db(np.stack([r["y"] for r in ref[i::2]]).reshape(6, -1), np.stack([g["y"] for g in got[i::2]]).reshape(6, -1))
        assert rows[-1].sqnr_db == pytest.approx(want, abs=0.05) and 15 < want < 60, (sig, rows[-1].sqnr_db, want)


@pytest.mark.parametrize("mode", ["float16", "weight-only"])
def test_float_activation_modes(mode: str) -> None:
    """float16 and weight-only models compute in float with their dequantized weights."""
    q = tflquant.quantize(DIGITS, mode=mode, min_weight_elements=1).model
    rows = layer_errors(DIGITS, q, DIGITS_CALIB, max_samples=8)
    assert len(rows) == 10 and {r.kind for r in rows} == {"float"} and all(r.scale is None for r in rows)
    assert all((55 if mode == "float16" else 25) < r.sqnr_db < 99 for r in rows[-4:])


def test_api_labels_determinism_and_errors(digits: dict[str, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = tflquant.compare_models(DIGITS, [digits["int8"], digits["int8"]], DIGITS_CALIB, max_samples=4)
    assert c.labels == ("model 1", "model 2") and len(c.rows) == 2 * len(c.for_model("model 1"))
    assert c.to_html() == tflquant.compare_models(DIGITS, [digits["int8"], digits["int8"]], DIGITS_CALIB, max_samples=4).to_html()
    p = tmp_path / "a.tflite"
    p.write_bytes(digits["int8"])
    assert tflquant.compare_models(DIGITS, [p, p], DIGITS_CALIB, max_samples=2).labels == ("a", "a (2)")
    with pytest.raises(TflquantError, match="2 quantized models but 1 labels"):
        tflquant.compare_models(DIGITS, [p, p], DIGITS_CALIB, labels=["x"])
    with pytest.raises(TflquantError, match="a list of one or more quantized models"):
        tflquant.compare_models(DIGITS, p, DIGITS_CALIB)  # type: ignore[arg-type]
    with pytest.raises(TflquantError, match="no quantized model labelled 'x'"):
        c.for_model("x")
    assert main(["compare", str(DIGITS), str(p), str(p), str(DIGITS_CALIB), "--label", "one"]) == 2
    assert "--label given 1 times for 2 quantized models" in capsys.readouterr().err
    assert main(["compare", str(DIGITS), str(p), str(DIGITS_CALIB), "--html", str(tmp_path / "no" / "x.html")]) == 2
    assert "x.html" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------
# The page in a real browser
# ---------------------------------------------------------------------------------------

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("Chromium is needed to test the HTML report in a real browser: install it with "
                    "`apt-get install -y chromium` (the README's test command does)")
    return exe


def _browser(page: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    profile = tmp_path / f"profile{len(list(tmp_path.glob('profile*')))}"
    profile.mkdir()
    return subprocess.run([_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()],
                          capture_output=True, timeout=120, check=True)


def _png_rgb(data: bytes) -> np.ndarray:
    """A non-interlaced 8-bit RGB/RGBA PNG (what Chromium writes) as an (H, W, 3) array."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and color in (2, 6) and interlace == 0
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = w * bpp
    img = np.zeros((h, stride), np.uint8)
    prev = np.zeros(stride, np.int32)
    for y in range(h):
        f, line = raw[y * (stride + 1)], np.frombuffer(raw, np.uint8, stride, y * (stride + 1) + 1).astype(np.int32)
        if f == 0:
            cur = line
        elif f == 1:  # Sub: a running sum per channel
            cur = np.cumsum(line.reshape(w, bpp), axis=0).reshape(-1) % 256
        elif f == 2:
            cur = (line + prev) % 256
        else:  # Average, Paeth: pixel by pixel
            out, up = list(line), prev.tolist()
            for i in range(stride):
                a = out[i - bpp] if i >= bpp else 0
                if f == 3:
                    out[i] = (out[i] + (a + up[i]) // 2) % 256
                else:
                    c = up[i - bpp] if i >= bpp else 0
                    p = a + up[i] - c
                    pa, pb, pc = abs(p - a), abs(p - up[i]), abs(p - c)
                    out[i] = (out[i] + (a if pa <= pb and pa <= pc else up[i] if pb <= pc else c)) % 256
            cur = np.array(out, np.int32)
        img[y] = cur
        prev = cur
    return img.reshape(h, w, bpp)[:, :, :3]


def test_html_page_renders_the_plot_in_chromium(digits: dict[str, bytes], tmp_path: Path) -> None:
    """Four models overlaid (int8, 16x8, mixed, dynamic): after the page's scripts ran, the DOM
    holds one SVG with a line per model, a point per row, the worst layers marked; the
    screenshot shows each model's colour in the plot area. The page loads nothing."""
    paths = []
    for mode in ("int8", "int16x8", "mixed", "dynamic"):
        paths.append(tmp_path / f"{mode}.tflite")
        paths[-1].write_bytes(digits[mode])
    page = tmp_path / "report.html"
    assert main(["compare", str(DIGITS), *map(str, paths), str(DIGITS_CALIB), "--max-samples", "8", "--html", str(page)]) == 0
    c = tflquant.compare_models(DIGITS, paths, DIGITS_CALIB, max_samples=8)
    text = page.read_text()
    assert text == c.to_html()
    assert "<circle" not in text and "<svg" not in text  # the script draws the plot
    assert not re.search(r"""(src|href)\s*=|@import|url\(""", text) and set(re.findall(r"https?://[^'\" ]+", text)) == {"http://www.w3.org/2000/svg"}

    dom = _browser(page, tmp_path, "--dump-dom", "--virtual-time-budget=5000").stdout.decode()
    assert dom.count('<svg viewBox="0 0 1100 420" id="sqnr-plot"') == 1
    assert len(re.findall(r'<g class="series" data-model="(int8|int16x8|mixed|dynamic)"', dom)) == 4
    assert dom.count("<polyline") == 4
    points = re.findall(r'<circle [^>]*class="(pt|pt worst)" data-name="([^"]*)"', dom)
    assert len(points) == len(c.rows)
    assert sum(k == "pt worst" for k, _ in points) == sum(len(worst_layers(c.for_model(m))) for m in c.labels) >= 4
    assert dom.count('<tr class="worst">') == sum(k == "pt worst" for k, _ in points)
    assert {html_name for _, html_name in points} == set(c.order)
    hovers = re.findall(r'<circle [^>]*><title>([^<]*)</title></circle>', dom)  # what hovering shows
    assert len(hovers) == len(points) and all(re.search(r"\n[A-Z_0-9]+ \((int8|int16|float)\)\nSQNR -?[0-9.]+ dB", h) for h in hovers)
    assert any(h.startswith("mixed\nfunctional_1/dense_1/MatMul") and "FULLY_CONNECTED (int16)" in h for h in hovers)

    shot = tmp_path / "shot.png"
    _browser(page, tmp_path, f"--screenshot={shot}", "--window-size=1200,900", "--hide-scrollbars", "--virtual-time-budget=5000")
    img = _png_rgb(shot.read_bytes())
    plot = img[120:600]  # below the title and the paragraph, above the tables
    for color in ("1f77b4", "ff7f0e", "2ca02c", "9467bd", "d62728"):  # four models, the worst layers' rings
        rgb = np.array([int(color[i : i + 2], 16) for i in (0, 2, 4)], np.uint8)
        count = int(np.all(plot == rgb, axis=-1).sum())
        assert count > 400, (color, count)  # a legend swatch is 56 pixels
    assert (plot.reshape(-1, 3).std(axis=0) > 10).all()  # not a blank area
    os.remove(shot)
