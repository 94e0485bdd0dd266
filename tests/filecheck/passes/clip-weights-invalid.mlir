// RUN: rm -f %t.missing.json
// RUN: not tflquant-opt %s -p 'insert-fake-quant,clip-weights{stats-file="%t.missing.json"}' 2>&1 | filecheck %s --check-prefix=MISSING
// RUN: echo '{"x": {"min": -4.0, "max": 4.0, "mean": [2.0, 0.0], "mean_sq": [4.0]}}' > %t.short.json
// RUN: tflquant-opt %s --verify-diagnostics -p 'insert-fake-quant,clip-weights{stats-file="%t.short.json"}' | filecheck %s
// RUN: echo '{"x": {"min": -4.0, "max": 4.0, "mean": [2.0, 0.0], "mean_sq": [4.0, -1.0]}}' > %t.negative.json
// RUN: tflquant-opt %s --verify-diagnostics -p 'insert-fake-quant,clip-weights{stats-file="%t.negative.json"}' | filecheck %s --check-prefix=NEGATIVE
// RUN: echo '{"x": {"min": -4.0, "max": 4.0, "mean": [NaN, 0.0], "mean_sq": [4.0, 1.0]}}' > %t.nan.json
// RUN: tflquant-opt %s --verify-diagnostics -p 'insert-fake-quant,clip-weights{stats-file="%t.nan.json"}' | filecheck %s --check-prefix=NAN
// RUN: not tflquant-opt %s -p 'clip-weights{corrected=maybe}' 2>&1 | filecheck %s --check-prefix=OPTION

// clip-weights chooses scales from the calibrated per-channel mean and mean square of each
// layer's input; a statistics file it cannot use is an error naming the file and tensor,
// never a silently unclipped model.
// MISSING: tflquant-opt: error: {{.*}}.missing.json: no such calibration stats file
// CHECK: {{.*}}.short.json: tensor 'x': 'mean_sq' must be a list as long as 'mean'
// NEGATIVE: {{.*}}.negative.json: tensor 'x' has a negative or non-finite mean_sq
// NAN: {{.*}}.nan.json: tensor 'x' has a non-finite mean
// OPTION: bad pass pipeline 'clip-weights{corrected=maybe}': Incompatible types: given ('maybe',), expected <class 'bool'>
func.func @fc(%x: tensor<1x2xf32> {tfl.name = "x"}) -> tensor<1x2xf32> {
  %xs = quant.stats %x, <-4.0, 4.0> : tensor<1x2xf32>
  %w = "tfl.const"() <{value = dense<[[1.0, 0.3], [0.5, 1.0]]> : tensor<2x2xf32>}> {names = ["fc/w"]} : () -> tensor<2x2xf32>
  %b = "tfl.const"() <{value = dense<[0.5, -0.25]> : tensor<2xf32>}> {names = ["fc/b"]} : () -> tensor<2xf32>
  %y = "tfl.fully_connected"(%xs, %w, %b) {names = ["fc"]} : (tensor<1x2xf32>, tensor<2x2xf32>, tensor<2xf32>) -> tensor<1x2xf32>
  %ys = quant.stats %y, <-4.0, 4.0> : tensor<1x2xf32>
  func.return %ys : tensor<1x2xf32>
}
