"""Debug reports of `tflquant.compare`: the TF QuantizationDebugger's CSV and one HTML page.

    c = tflquant.compare_models("float.tflite", ["int8.tflite", "16x8.tflite"], "eval.npz")
    c.to_csv("layers.csv")      # TF's layer_statistics_dump columns, then tflquant's
    c.to_html("layers.html")    # per-tensor SQNR in execution order, models overlaid

The CSV starts with the columns of TF's `QuantizationDebugger.layer_statistics_dump`, in its
order (op_name, tensor_idx, its five layer metrics, scale, zero_point, tensor_name), so
notebooks written for it read this file (tensor_name and tensor_idx name the quantized
model's tensor: a model output's integer tensor keeps its '_int8' suffix there, while the
table and plot show the float model's name); tflquant's own columns follow (SQNR, error in
steps, the SQNR the op loses, precision, subgraph, signature, model). Floats are written
with Python's shortest round-trip repr; absent values (scale of a float tensor) are empty.

The HTML page needs nothing but a browser: the data is embedded as JSON, an inline script
draws the plot as SVG (one line per quantized model over the float model's execution order,
the layers that lose the most SQNR drawn larger in red) and a tooltip shows a point's tensor,
op and SQNR; the table under the plot is plain HTML. No network, no external script or font.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tflquant.compare import Comparison, LayerError

TF_COLUMNS = (
    "op_name", "tensor_idx", "num_elements", "stddev", "mean_error", "max_abs_error",
    "mean_squared_error", "scale", "zero_point", "tensor_name",
)  # TF's QuantizationDebugger.layer_statistics_dump, default metrics, in its order
OWN_COLUMNS = ("sqnr_db", "max_error_steps", "layer_loss_db", "precision", "subgraph", "signature", "model")
COLUMNS = TF_COLUMNS + OWN_COLUMNS
WORST = 5  # layers highlighted per model: the largest SQNR losses
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f")


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    return str(v)


def csv_row(r: LayerError) -> list[str]:
    values = {
        "op_name": r.op_type, "tensor_idx": r.tensor_idx, "num_elements": r.num_elements, "stddev": r.stddev,
        "mean_error": r.mean_error, "max_abs_error": r.max_abs_error, "mean_squared_error": r.mean_squared_error,
        "scale": r.scale, "zero_point": r.zero_point, "tensor_name": r.tensor_name or r.name,
        "sqnr_db": r.sqnr_db, "max_error_steps": r.max_error_steps, "layer_loss_db": r.layer_loss_db,
        "precision": r.kind, "subgraph": r.subgraph, "signature": r.signature, "model": r.model,
    }
    return [_cell(values[c]) for c in COLUMNS]


def csv_text(rows: Sequence[LayerError]) -> str:
    """The CSV (header, then one line per row) with the csv module's default dialect, as TF's
    DictWriter writes it."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow(csv_row(r))
    return out.getvalue()


def write_text(text: str, path: str | os.PathLike[str] | None) -> str:
    """Write `text` to `path` atomically (UTF-8) when a path is given; return the text."""
    if path is not None:
        from tflquant.fileio import atomic_write

        atomic_write(path, text.encode("utf-8"))
    return text


def worst_layers(rows: Sequence[LayerError], n: int = WORST) -> list[LayerError]:
    """The n rows whose op loses the most SQNR (layer_loss_db), largest first; ties by order."""
    ranked = sorted(range(len(rows)), key=lambda i: (-rows[i].layer_loss_db, i))
    return [rows[i] for i in ranked[:n] if rows[i].layer_loss_db > 0]


def _num(v: float | None, fmt: str = ".2f") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(v, fmt)


def _plot_data(c: Comparison) -> dict[str, Any]:
    pos = {name: i for i, name in enumerate(c.order)}
    series = []
    for k, label in enumerate(c.labels):
        rows = c.for_model(label)
        worst = {id(r) for r in worst_layers(rows)}
        pts = []
        for r in rows:
            x = pos.get(r.name)
            if x is None or not math.isfinite(r.sqnr_db):
                continue
            pts.append({
                "x": x, "y": round(r.sqnr_db, 3), "name": r.name, "op": r.op_type, "kind": r.kind,
                "loss": round(r.layer_loss_db, 3), "worst": id(r) in worst,
            })
        pts.sort(key=lambda p: p["x"])
        series.append({"label": label, "color": COLORS[k % len(COLORS)], "points": pts})
    return {"float": c.float_label, "n": len(c.order), "series": series}


_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
#plot { width: 100%; max-width: 1100px; height: 420px; border: 1px solid #ccc; background: #fff; }
#plot svg { width: 100%; height: 100%; display: block; }
#tip { position: fixed; pointer-events: none; background: #222; color: #fff; padding: 4px 8px;
       border-radius: 4px; font-size: 12px; display: none; white-space: pre; }
table { border-collapse: collapse; margin-top: 8px; font-size: 13px; }
th, td { border-bottom: 1px solid #ddd; padding: 2px 8px; text-align: right; }
td.l, th.l { text-align: left; }
td.name { max-width: 36em; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
tr.worst td { background: #fde0dc; font-weight: 600; }
.legend span { display: inline-block; margin-right: 16px; }
.legend i { display: inline-block; width: 14px; height: 4px; margin-right: 4px; vertical-align: middle; }
"""

# Draws the plot from the JSON in #data: an SVG with axes, one polyline and one circle per
# point for each model; the worst layers larger with a red ring; a tooltip on hover.
_SCRIPT = """
(function () {
  var data = JSON.parse(document.getElementById('data').textContent);
  var NS = 'http://www.w3.org/2000/svg', W = 1100, H = 420, L = 56, R = 16, T = 16, B = 40;
  function el(tag, attrs, parent) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  var ys = [];
  data.series.forEach(function (s) { s.points.forEach(function (p) { ys.push(p.y); }); });
  var lo = Math.floor(Math.min.apply(null, ys.concat([0])) / 10) * 10;
  var hi = Math.ceil(Math.max.apply(null, ys.concat([10])) / 10) * 10;
  if (hi === lo) hi = lo + 10;
  var n = Math.max(data.n - 1, 1);
  function px(x) { return L + (W - L - R) * x / n; }
  function py(y) { return T + (H - T - B) * (hi - y) / (hi - lo); }
  var svg = el('svg', {viewBox: '0 0 ' + W + ' ' + H, id: 'sqnr-plot', role: 'img'});
  el('rect', {x: L, y: T, width: W - L - R, height: H - T - B, fill: '#fafafa', stroke: '#999'}, svg);
  var step = (hi - lo) > 100 ? 20 : 10;
  for (var v = lo; v <= hi; v += step) {
    el('line', {x1: L, x2: W - R, y1: py(v), y2: py(v), stroke: '#e4e4e4'}, svg);
    var t = el('text', {x: L - 6, y: py(v) + 4, 'text-anchor': 'end', 'font-size': 11, fill: '#555'}, svg);
    t.textContent = v;
  }
  var yl = el('text', {x: 14, y: T + (H - T - B) / 2, 'font-size': 12, fill: '#333',
                       transform: 'rotate(-90 14 ' + (T + (H - T - B) / 2) + ')', 'text-anchor': 'middle'}, svg);
  yl.textContent = 'SQNR (dB)';
  var xl = el('text', {x: L + (W - L - R) / 2, y: H - 10, 'font-size': 12, fill: '#333', 'text-anchor': 'middle'}, svg);
  xl.textContent = 'tensors in execution order (' + data.n + ')';
  var tip = document.getElementById('tip');
  data.series.forEach(function (s) {
    var g = el('g', {'class': 'series', 'data-model': s.label}, svg);
    el('polyline', {points: s.points.map(function (p) { return px(p.x) + ',' + py(p.y); }).join(' '),
                    fill: 'none', stroke: s.color, 'stroke-width': 2}, g);
    s.points.forEach(function (p) {
      var c = el('circle', {cx: px(p.x), cy: py(p.y), r: p.worst ? 7 : 3.5, fill: s.color,
                            stroke: p.worst ? '#d62728' : 'none', 'stroke-width': p.worst ? 3 : 0,
                            'class': p.worst ? 'pt worst' : 'pt', 'data-name': p.name}, g);
      var text = s.label + '\\n' + p.name + '\\n' + p.op + ' (' + p.kind + ')\\nSQNR ' + p.y.toFixed(2) +
                 ' dB, layer loss ' + p.loss.toFixed(2) + ' dB';
      el('title', {}, c).textContent = text;
      c.addEventListener('mouseover', function (ev) {
        tip.textContent = text; tip.style.display = 'block';
        tip.style.left = (ev.clientX + 12) + 'px'; tip.style.top = (ev.clientY + 12) + 'px';
      });
      c.addEventListener('mouseout', function () { tip.style.display = 'none'; });
    });
  });
  document.getElementById('plot').appendChild(svg);
  var legend = document.getElementById('legend');
  data.series.forEach(function (s) {
    var span = document.createElement('span');
    var i = document.createElement('i'); i.style.background = s.color;
    span.appendChild(i); span.appendChild(document.createTextNode(s.label));
    legend.appendChild(span);
  });
})();
"""


def html_page(c: Comparison, title: str | None = None) -> str:
    """The self-contained page for a Comparison (deterministic: same rows, same text)."""
    title = title or f"tflquant compare: {c.float_label} vs {', '.join(c.labels)}"
    esc = html.escape
    data = json.dumps(_plot_data(c), sort_keys=True, allow_nan=False, default=str).replace("</", "<\\/")
    parts = [
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        f"<title>{esc(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n",
        f"<h1>{esc(title)}</h1>\n",
        "<p>SQNR of every tensor the float and the quantized models both compute, against the float "
        "model, in the float model's execution order. Larger points ringed in red: the "
        f"{WORST} ops per model that lose the most SQNR (their inputs' lowest SQNR minus their "
        "output's); try them with <code>--keep-float</code> or 16-bit activations.</p>\n",
        "<div id=\"legend\" class=\"legend\"></div>\n<div id=\"plot\"></div>\n<div id=\"tip\"></div>\n",
        "<noscript>The plot needs JavaScript; the tables below have every value.</noscript>\n",
    ]
    for label in c.labels:
        rows = c.for_model(label)
        worst = {id(r) for r in worst_layers(rows)}
        parts.append(f"<h2>{esc(label)}</h2>\n<table class=\"layers\" data-model=\"{esc(label, quote=True)}\">\n<tr>"
                     "<th>#</th><th class=\"l\">tensor</th><th class=\"l\">op</th><th class=\"l\">type</th>"
                     "<th>SQNR dB</th><th>layer loss dB</th><th>max err (steps)</th><th>max abs err</th>"
                     "<th>scale</th><th>zero point</th></tr>\n")
        for i, r in enumerate(rows):
            cls = " class=\"worst\"" if id(r) in worst else ""
            parts.append(
                f"<tr{cls}><td>{i}</td><td class=\"l name\" title=\"{esc(r.name, quote=True)}\">{esc(r.name)}</td><td class=\"l\">{esc(r.op_type)}</td>"
                f"<td class=\"l\">{esc(r.kind)}</td><td>{_num(r.sqnr_db)}</td><td>{_num(r.layer_loss_db)}</td>"
                f"<td>{_num(r.max_error_steps, '.1f')}</td><td>{_num(r.max_abs_error, '.4g')}</td>"
                f"<td>{_num(r.scale, '.4g')}</td><td>{'-' if r.zero_point is None else r.zero_point}</td></tr>\n"
            )
        parts.append("</table>\n")
    parts.append(f"<script type=\"application/json\" id=\"data\">{data}</script>\n<script>{_SCRIPT}</script>\n</body>\n</html>\n")
    return "".join(parts)
