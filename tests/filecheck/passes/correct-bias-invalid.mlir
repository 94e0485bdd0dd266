// RUN: tflquant-opt %s --split-input-file --verify-diagnostics -p 'insert-fake-quant,correct-bias' | filecheck %s
// RUN: not tflquant-opt %s -p 'correct-bias{stats-file="x.json"}' 2>&1 | filecheck %s --check-prefix=OPTION

// correct-bias reads the calibrated input means from the layer's `input_moments`; moments
// that are no statistics are rejected when the IR is read, never a silently wrong bias.
// The pass has no statistics option: annotate-calibration{stats-file=...} attaches them.
// OPTION: bad pass pipeline 'correct-bias{stats-file="x.json"}': Provided arguments ["stats_file"] not found in expected arguments []

// CHECK: quant.moments needs at least one channel mean
func.func @empty(%x: tensor<1x2xf32> {tfl.name = "x"}) -> tensor<1x2xf32> {
  %xs = quant.stats %x, <-4.0, 4.0> : tensor<1x2xf32>
  %w = "tfl.const"() <{value = dense<[[0.3, 0.1], [1.0, 0.5]]> : tensor<2x2xf32>}> {names = ["fc/w"]} : () -> tensor<2x2xf32>
  %b = "tfl.const"() <{value = dense<[0.5, -0.25]> : tensor<2xf32>}> {names = ["fc/b"]} : () -> tensor<2xf32>
  %y = "tfl.fully_connected"(%xs, %w, %b) {input_moments = #quant.moments<mean = []>, names = ["fc"]} : (tensor<1x2xf32>, tensor<2x2xf32>, tensor<2xf32>) -> tensor<1x2xf32>
  func.return %y : tensor<1x2xf32>
}

// -----

// CHECK: quant.moments has 2 means but 1 mean squares
func.func @short(%x: tensor<1x2xf32> {tfl.name = "x"}) -> tensor<1x2xf32> {
  %xs = quant.stats %x, <-4.0, 4.0> : tensor<1x2xf32>
  %w = "tfl.const"() <{value = dense<[[0.3, 0.1], [1.0, 0.5]]> : tensor<2x2xf32>}> {names = ["fc/w"]} : () -> tensor<2x2xf32>
  %b = "tfl.const"() <{value = dense<[0.5, -0.25]> : tensor<2xf32>}> {names = ["fc/b"]} : () -> tensor<2xf32>
  %y = "tfl.fully_connected"(%xs, %w, %b) {input_moments = #quant.moments<mean = [1.0, 2.0], mean_sq = [4.0]>, names = ["fc"]} : (tensor<1x2xf32>, tensor<2x2xf32>, tensor<2xf32>) -> tensor<1x2xf32>
  func.return %y : tensor<1x2xf32>
}

// -----

// CHECK: quant.moments mean squares must be finite and non-negative
func.func @negative(%x: tensor<1x2xf32> {tfl.name = "x"}) -> tensor<1x2xf32> {
  %xs = quant.stats %x, <-4.0, 4.0> : tensor<1x2xf32>
  %w = "tfl.const"() <{value = dense<[[0.3, 0.1], [1.0, 0.5]]> : tensor<2x2xf32>}> {names = ["fc/w"]} : () -> tensor<2x2xf32>
  %b = "tfl.const"() <{value = dense<[0.5, -0.25]> : tensor<2xf32>}> {names = ["fc/b"]} : () -> tensor<2xf32>
  %y = "tfl.fully_connected"(%xs, %w, %b) {input_moments = #quant.moments<mean = [1.0, 2.0], mean_sq = [4.0, -1.0]>, names = ["fc"]} : (tensor<1x2xf32>, tensor<2x2xf32>, tensor<2xf32>) -> tensor<1x2xf32>
  func.return %y : tensor<1x2xf32>
}

// -----

// CHECK: mean
func.func @keyword(%x: tensor<1x2xf32> {tfl.name = "x"}) -> tensor<1x2xf32> {
  %xs = quant.stats %x, <-4.0, 4.0> : tensor<1x2xf32>
  %w = "tfl.const"() <{value = dense<[[0.3, 0.1], [1.0, 0.5]]> : tensor<2x2xf32>}> {names = ["fc/w"]} : () -> tensor<2x2xf32>
  %b = "tfl.const"() <{value = dense<[0.5, -0.25]> : tensor<2xf32>}> {names = ["fc/b"]} : () -> tensor<2xf32>
  %y = "tfl.fully_connected"(%xs, %w, %b) {input_moments = #quant.moments<[1.0, 2.0]>, names = ["fc"]} : (tensor<1x2xf32>, tensor<2x2xf32>, tensor<2xf32>) -> tensor<1x2xf32>
  func.return %y : tensor<1x2xf32>
}
