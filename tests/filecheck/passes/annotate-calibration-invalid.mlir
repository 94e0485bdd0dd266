// RUN: rm -f %t.missing.json
// RUN: not tflquant-opt %s -p 'annotate-calibration{stats-file="%t.missing.json"}' 2>&1 | filecheck %s --check-prefix=MISSING
// RUN: echo 'min=0 max=1' > %t.text.json
// RUN: not tflquant-opt %s -p 'annotate-calibration{stats-file="%t.text.json"}' 2>&1 | filecheck %s --check-prefix=JSON
// RUN: echo '[[-1.0, 1.0]]' > %t.list.json
// RUN: not tflquant-opt %s -p 'annotate-calibration{stats-file="%t.list.json"}' 2>&1 | filecheck %s --check-prefix=OBJECT
// RUN: echo '{"relu": [3.0, 0.0]}' > %t.reversed.json
// RUN: not tflquant-opt %s -p 'annotate-calibration{stats-file="%t.reversed.json"}' 2>&1 | filecheck %s --check-prefix=REVERSED
// RUN: echo '{"relu": {"min": 0.0}}' > %t.nomax.json
// RUN: not tflquant-opt %s -p 'annotate-calibration{stats-file="%t.nomax.json"}' 2>&1 | filecheck %s --check-prefix=NOMAX
// RUN: echo '{"format": "tflquant-stats-v0", "tensors": {}}' > %t.format.json
// RUN: not tflquant-opt %s -p 'annotate-calibration{stats-file="%t.format.json"}' 2>&1 | filecheck %s --check-prefix=FORMAT
// RUN: echo '{"x": {"min": [0.0, 0.0, 0.0], "max": [1.0, 1.0, 1.0], "axis": 1}, "relu": {"min": [0.0, 0.0], "max": [1.0, 1.0], "axis": 5}}' > %t.axis.json
// RUN: tflquant-opt %s --split-input-file --verify-diagnostics -p 'annotate-calibration{stats-file="%t.axis.json"}' | filecheck %s

// Every problem with the statistics file is an error naming the file (and the tensor), never
// a silently unannotated model.
// MISSING: tflquant-opt: error: {{.*}}.missing.json: no such calibration stats file
// JSON: tflquant-opt: error: {{.*}}.text.json: not a JSON calibration stats file
// OBJECT: tflquant-opt: error: {{.*}}.list.json: expected a JSON object keyed by tensor name
// REVERSED: tflquant-opt: error: {{.*}}.reversed.json: tensor 'relu' has min 3.0 greater than max 0.0
// NOMAX: tflquant-opt: error: {{.*}}.nomax.json: tensor 'relu' needs both 'min' and 'max'
// FORMAT: tflquant-opt: error: {{.*}}.format.json: unknown stats format 'tflquant-stats-v0'

// Per-channel statistics must fit the tensor they annotate: one range per channel of an
// existing axis.
// CHECK: annotate-calibration: statistics for tensor 'x' have 3 per-channel ranges on axis 1, which does not fit its type tensor<1x2xf32>
func.func @main(%x: tensor<1x2xf32> {tfl.name = "x"}) -> tensor<1x2xf32> {
  func.return %x : tensor<1x2xf32>
}

// -----

// CHECK: annotate-calibration: statistics for tensor 'relu' have 2 per-channel ranges on axis 5, which does not fit its type tensor<1x2xf32>
func.func @relu(%y: tensor<1x2xf32> {tfl.name = "y"}) -> tensor<1x2xf32> {
  %r = "tfl.relu"(%y) {names = ["relu"]} : (tensor<1x2xf32>) -> tensor<1x2xf32>
  func.return %r : tensor<1x2xf32>
}
