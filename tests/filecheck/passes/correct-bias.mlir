// RUN: tflquant-opt %s --split-input-file -p 'insert-fake-quant,correct-bias' | filecheck %s
// RUN: tflquant-opt %s --split-input-file -p 'insert-fake-quant,correct-bias,correct-bias' | filecheck %s
// RUN: sed -e 's/input_moments = #quant.moments<[^>]*>, //' %s | tflquant-opt --split-input-file -p 'insert-fake-quant,correct-bias' | filecheck %s --check-prefix=NOSTATS

// correct-bias: b'[o] = b[o] - sum_k (W_q - W)[o, k] * E[x][channel(k)], with E[x] the
// calibrated per-channel mean of the layer's input: the layer's `input_moments` (which
// annotate-calibration attaches; the pass reads nothing but the IR). Without them (sed
// removes them) nothing changes.
// Channel 0: scale 0.3/127, 0.1 -> 42 steps = 0.0992126 (error -0.000787 x mean 2.0):
// 0.5 + 0.0015748. Channel 1: scale 1/127, 0.5 -> 64 steps (half to even) = 0.503937
// (error +0.003937 x 2.0): -0.25 - 0.007874. A FULLY_CONNECTED without a bias gets one.
// Running the pass twice changes nothing more (the layer is marked).
// CHECK-LABEL: func.func @fc
// CHECK:      %[[B:.*]] = "tfl.const"() <{value = dense<[0.501574814, -2.578740e-01]> : tensor<2xf32>}> {names = ["fc/b"]}
// CHECK-NEXT: "tfl.fully_connected"(%{{.*}}, %{{.*}}, %[[B]]) {input_moments = #quant.moments<mean = [1.0, 2.0]>, names = ["fc"], tflquant.bias_corrected}
// CHECK:      %[[B2:.*]] = "tfl.const"() <{value = dense<[0.00157479942, -0.00787401199]> : tensor<2xf32>}> {names = ["fc2_bias"]}
// CHECK-NEXT: "tfl.fully_connected"(%{{.*}}, %{{.*}}, %[[B2]]) {input_moments = #quant.moments<mean = [1.0, 2.0]>, names = ["fc2"], tflquant.bias_corrected}
// CHECK-NOT:  tfl.no_value
// NOSTATS-LABEL: func.func @fc
// NOSTATS-NOT: tflquant.bias_corrected
// NOSTATS:     "tfl.fully_connected"(%{{.*}}, %{{.*}}, %{{.*}}) {names = ["fc"]}
// NOSTATS-NOT: tflquant.bias_corrected
func.func @fc(%x: tensor<1x2xf32> {tfl.name = "x"}) -> (tensor<1x2xf32>, tensor<1x2xf32>) {
  %xs = quant.stats %x, <-4.0, 4.0> : tensor<1x2xf32>
  %w = "tfl.const"() <{value = dense<[[0.3, 0.1], [1.0, 0.5]]> : tensor<2x2xf32>}> {names = ["fc/w"]} : () -> tensor<2x2xf32>
  %b = "tfl.const"() <{value = dense<[0.5, -0.25]> : tensor<2xf32>}> {names = ["fc/b"]} : () -> tensor<2xf32>
  %y = "tfl.fully_connected"(%xs, %w, %b) {input_moments = #quant.moments<mean = [1.0, 2.0]>, names = ["fc"]} : (tensor<1x2xf32>, tensor<2x2xf32>, tensor<2xf32>) -> tensor<1x2xf32>
  %ys = quant.stats %y, <-4.0, 4.0> : tensor<1x2xf32>
  %nb = "tfl.no_value"() : () -> none
  %z = "tfl.fully_connected"(%xs, %w, %nb) {input_moments = #quant.moments<mean = [1.0, 2.0]>, names = ["fc2"]} : (tensor<1x2xf32>, tensor<2x2xf32>, none) -> tensor<1x2xf32>
  %zs = quant.stats %z, <-4.0, 4.0> : tensor<1x2xf32>
  func.return %ys, %zs : tensor<1x2xf32>, tensor<1x2xf32>
}

// -----

// CONV_2D, SAME padding over a width of 4: the outer taps of a 1x3 filter read padding at
// one of the 4 output columns, so they count 3/4. Filter [0.1, 1.0, 0.5], scale 1/127:
// errors +0.0023622, 0, +0.003937; shift = 2.0 * 0.75 * (0.0023622 + 0.003937) = 0.0094488
// (in float32: 0.00944880769).
// CHECK-LABEL: func.func @conv
// CHECK:      %[[CB:.*]] = "tfl.const"() <{value = dense<-0.00944880769> : tensor<1xf32>}> {names = ["conv_bias"]}
// CHECK-NEXT: "tfl.conv_2d"(%{{.*}}, %{{.*}}, %[[CB]])
func.func @conv(%x: tensor<1x1x4x1xf32> {tfl.name = "img"}) -> tensor<1x1x4x1xf32> {
  %xs = quant.stats %x, <0.0, 4.0> : tensor<1x1x4x1xf32>
  %w = "tfl.const"() <{value = dense<[[[[0.1], [1.0], [0.5]]]]> : tensor<1x1x3x1xf32>}> {names = ["conv/w"]} : () -> tensor<1x1x3x1xf32>
  %nb = "tfl.no_value"() : () -> none
  %c = "tfl.conv_2d"(%xs, %w, %nb) <{padding = "SAME", stride_w = 1 : i32, stride_h = 1 : i32}> {input_moments = #quant.moments<mean = [2.0]>, names = ["conv"]} : (tensor<1x1x4x1xf32>, tensor<1x1x3x1xf32>, none) -> tensor<1x1x4x1xf32>
  %cs = quant.stats %c, <-4.0, 4.0> : tensor<1x1x4x1xf32>
  func.return %cs : tensor<1x1x4x1xf32>
}

// -----

// No correction: a layer without input moments ("a"), a mean of the wrong length (one
// channel, the filter two: "c"), and a layer whose input stays float (no quant.stats on "f").
// CHECK-LABEL: func.func @untouched
// CHECK-NOT:  tflquant.bias_corrected
// CHECK:      func.return
func.func @untouched(%y: tensor<1x2xf32> {tfl.name = "y"}, %s: tensor<1x2xf32> {tfl.name = "short"}, %f: tensor<1x2xf32> {tfl.name = "x"}) -> (tensor<1x2xf32>, tensor<1x2xf32>, tensor<1x2xf32>) {
  %ys = quant.stats %y, <-4.0, 4.0> : tensor<1x2xf32>
  %ss = quant.stats %s, <-4.0, 4.0> : tensor<1x2xf32>
  %w = "tfl.const"() <{value = dense<[[0.3, 0.1], [1.0, 0.5]]> : tensor<2x2xf32>}> {names = ["w"]} : () -> tensor<2x2xf32>
  %b = "tfl.const"() <{value = dense<[0.5, -0.25]> : tensor<2xf32>}> {names = ["b"]} : () -> tensor<2xf32>
  %a = "tfl.fully_connected"(%ys, %w, %b) {names = ["a"]} : (tensor<1x2xf32>, tensor<2x2xf32>, tensor<2xf32>) -> tensor<1x2xf32>
  %as = quant.stats %a, <-4.0, 4.0> : tensor<1x2xf32>
  %c = "tfl.fully_connected"(%ss, %w, %b) {input_moments = #quant.moments<mean = [1.0]>, names = ["c"]} : (tensor<1x2xf32>, tensor<2x2xf32>, tensor<2xf32>) -> tensor<1x2xf32>
  %cs = quant.stats %c, <-4.0, 4.0> : tensor<1x2xf32>
  %d = "tfl.fully_connected"(%f, %w, %b) {input_moments = #quant.moments<mean = [1.0, 2.0]>, names = ["d"]} : (tensor<1x2xf32>, tensor<2x2xf32>, tensor<2xf32>) -> tensor<1x2xf32>
  func.return %as, %cs, %d : tensor<1x2xf32>, tensor<1x2xf32>, tensor<1x2xf32>
}
