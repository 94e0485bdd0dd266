// RUN: rm -f %t.missing.json
// RUN: not tflquant-opt %s -p 'insert-fake-quant,correct-bias{stats-file="%t.missing.json"}' 2>&1 | filecheck %s --check-prefix=MISSING
// RUN: echo '{"x": {"min": -4.0, "max": 4.0, "mean": 1.5}}' > %t.scalar.json
// RUN: tflquant-opt %s --verify-diagnostics -p 'insert-fake-quant,correct-bias{stats-file="%t.scalar.json"}' | filecheck %s
// RUN: echo '{"x": {"min": -4.0, "max": 4.0, "mean": [1.0, Infinity]}}' > %t.inf.json
// RUN: tflquant-opt %s --verify-diagnostics -p 'insert-fake-quant,correct-bias{stats-file="%t.inf.json"}' | filecheck %s --check-prefix=INF
// RUN: echo '{"x": {"min": -4.0, "max": "four", "mean": [1.0, 2.0]}}' > %t.text.json
// RUN: tflquant-opt %s --verify-diagnostics -p 'insert-fake-quant,correct-bias{stats-file="%t.text.json"}' | filecheck %s --check-prefix=TEXT
// RUN: not tflquant-opt %s -p 'correct-bias{stats="x.json"}' 2>&1 | filecheck %s --check-prefix=OPTION

// correct-bias subtracts the weight-quantization error times the calibrated input mean; a
// statistics file it cannot use is an error naming the file and tensor, never a silently
// uncorrected model.
// MISSING: tflquant-opt: error: {{.*}}.missing.json: no such calibration stats file
// CHECK: {{.*}}.scalar.json: tensor 'x': 'mean' must be a non-empty list of numbers (one per channel)
// INF: {{.*}}.inf.json: tensor 'x' has a non-finite mean
// TEXT: {{.*}}.text.json: tensor 'x': 'four' is not a number
// OPTION: bad pass pipeline 'correct-bias{stats="x.json"}': Provided arguments ["stats"] not found in expected arguments ["stats_file"]
func.func @fc(%x: tensor<1x2xf32> {tfl.name = "x"}) -> tensor<1x2xf32> {
  %xs = quant.stats %x, <-4.0, 4.0> : tensor<1x2xf32>
  %w = "tfl.const"() <{value = dense<[[0.3, 0.1], [1.0, 0.5]]> : tensor<2x2xf32>}> {names = ["fc/w"]} : () -> tensor<2x2xf32>
  %b = "tfl.const"() <{value = dense<[0.5, -0.25]> : tensor<2xf32>}> {names = ["fc/b"]} : () -> tensor<2xf32>
  %y = "tfl.fully_connected"(%xs, %w, %b) {names = ["fc"]} : (tensor<1x2xf32>, tensor<2x2xf32>, tensor<2xf32>) -> tensor<1x2xf32>
  %ys = quant.stats %y, <-4.0, 4.0> : tensor<1x2xf32>
  func.return %ys : tensor<1x2xf32>
}
