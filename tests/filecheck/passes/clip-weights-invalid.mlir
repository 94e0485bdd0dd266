// RUN: tflquant-opt %s --split-input-file --verify-diagnostics -p 'insert-fake-quant,clip-weights' | filecheck %s
// RUN: not tflquant-opt %s -p 'clip-weights{corrected=maybe}' 2>&1 | filecheck %s --check-prefix=OPTION
// RUN: not tflquant-opt %s -p 'clip-weights{stats-file="x.json"}' 2>&1 | filecheck %s --check-prefix=STATS

// clip-weights chooses scales from the calibrated per-channel mean and mean square of each
// layer's input (its `input_moments`); moments that are no statistics are rejected when the
// IR is read, never a silently misclipped model. The pass has no statistics option:
// annotate-calibration{stats-file=...} attaches them.
// OPTION: bad pass pipeline 'clip-weights{corrected=maybe}': Incompatible types: given ('maybe',), expected <class 'bool'>
// STATS: bad pass pipeline 'clip-weights{stats-file="x.json"}': Provided arguments ["stats_file"] not found in expected arguments ["corrected"]

// CHECK: quant.moments has 2 means but 1 mean squares
func.func @short(%x: tensor<1x2xf32> {tfl.name = "x"}) -> tensor<1x2xf32> {
  %xs = quant.stats %x, <-4.0, 4.0> : tensor<1x2xf32>
  %w = "tfl.const"() <{value = dense<[[1.0, 0.3], [0.5, 1.0]]> : tensor<2x2xf32>}> {names = ["fc/w"]} : () -> tensor<2x2xf32>
  %y = "tfl.fully_connected"(%xs, %w) {input_moments = #quant.moments<mean = [2.0, 0.0], mean_sq = [4.0]>, names = ["fc"]} : (tensor<1x2xf32>, tensor<2x2xf32>) -> tensor<1x2xf32>
  func.return %y : tensor<1x2xf32>
}

// -----

// CHECK: quant.moments mean squares must be finite and non-negative
func.func @negative(%x: tensor<1x2xf32> {tfl.name = "x"}) -> tensor<1x2xf32> {
  %xs = quant.stats %x, <-4.0, 4.0> : tensor<1x2xf32>
  %w = "tfl.const"() <{value = dense<[[1.0, 0.3], [0.5, 1.0]]> : tensor<2x2xf32>}> {names = ["fc/w"]} : () -> tensor<2x2xf32>
  %y = "tfl.fully_connected"(%xs, %w) {input_moments = #quant.moments<mean = [2.0, 0.0], mean_sq = [4.0, -1.0]>, names = ["fc"]} : (tensor<1x2xf32>, tensor<2x2xf32>) -> tensor<1x2xf32>
  func.return %y : tensor<1x2xf32>
}
