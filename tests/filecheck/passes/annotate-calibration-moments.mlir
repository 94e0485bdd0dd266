// RUN: echo '{"x": {"min": -4.0, "max": 4.0, "mean": [1.0, 2.0], "mean_sq": [1.5, 4.25]}, "h": {"min": 0.0, "max": 4.0, "mean": [0.125, 0.1]}, "@other/x": {"min": -1.0, "max": 1.0, "mean": [-0.5, 0.25]}, "short": {"min": 0.0, "max": 1.0, "mean": [1.0]}}' > %t.json
// RUN: tflquant-opt %s -p 'annotate-calibration{stats-file="%t.json"}' | filecheck %s
// RUN: tflquant-opt %s -p 'annotate-calibration{stats-file="%t.json"},annotate-calibration{stats-file="%t.json"}' | filecheck %s
// RUN: tflquant-opt %s -p 'annotate-calibration{stats-file="%t.json"}' | tflquant-opt -p 'insert-fake-quant,correct-bias' | filecheck %s --check-prefix=CORRECT

// Every statistic a pass reads is in the IR after annotate-calibration. The per-channel
// mean (and mean of squares) of a CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED input goes
// on the layer as `input_moments` (insert-fake-quant replaces the input's quant.stats op),
// looked up through that quant.stats op and by '@function/name' first: function @other's
// "x" has its own moments. Moments keep float64 precision (0.1 prints as 0.1). A mean that
// is not one per input channel ("short": one mean, two channels) is left out; a second run
// adds nothing. The printed IR replays correct-bias from text (the @main layer gets the
// biases of correct-bias.mlir, which has the same means).

// CHECK-LABEL: func.func @main
// CHECK:       %[[XS:.*]] = quant.stats %x, <-4.0, 4.0>
// CHECK:       "tfl.fully_connected"(%[[XS]], %{{.*}}, %{{.*}}) {names = ["fc"], input_moments = #quant.moments<mean = [1.0, 2.0], mean_sq = [1.5, 4.25]>}
// CHECK:       quant.stats %{{.*}}, <0.0, 4.0>
// CHECK:       "tfl.depthwise_conv_2d"(%{{.*}}, %{{.*}}, %{{.*}}) <{{.*}}> {names = ["dw"], input_moments = #quant.moments<mean = [0.125, 0.1]>}
// CHECK:       "tfl.fully_connected"(%{{.*}}, %{{.*}}, %{{.*}}) {names = ["no_fit"]}
// CHECK-LABEL: func.func @other
// CHECK:       "tfl.fully_connected"(%{{.*}}, %{{.*}}, %{{.*}}) {names = ["fc_other"], input_moments = #quant.moments<mean = [-0.5, 0.25]>}
// CHECK-NOT:   input_moments

// CORRECT-LABEL: func.func @main
// CORRECT:       "tfl.const"() <{value = dense<[0.501574814, -2.578740e-01]> : tensor<2xf32>}> {names = ["fc/b"]}
// CORRECT-NEXT:  "tfl.fully_connected"(%{{.*}}, %{{.*}}, %{{.*}}) {names = ["fc"], input_moments = #quant.moments<mean = [1.0, 2.0], mean_sq = [1.5, 4.25]>, tflquant.bias_corrected}

func.func @main(%x: tensor<1x2xf32> {tfl.name = "x"}, %s: tensor<1x2xf32> {tfl.name = "short"}) -> (tensor<1x2xf32>, tensor<1x1x1x2xf32>, tensor<1x2xf32>) {
  %w = "tfl.const"() <{value = dense<[[0.3, 0.1], [1.0, 0.5]]> : tensor<2x2xf32>}> {names = ["fc/w"]} : () -> tensor<2x2xf32>
  %b = "tfl.const"() <{value = dense<[0.5, -0.25]> : tensor<2xf32>}> {names = ["fc/b"]} : () -> tensor<2xf32>
  %y = "tfl.fully_connected"(%x, %w, %b) {names = ["fc"]} : (tensor<1x2xf32>, tensor<2x2xf32>, tensor<2xf32>) -> tensor<1x2xf32>
  %shape = "tfl.const"() <{value = dense<[1, 1, 1, 2]> : tensor<4xi32>}> {names = ["shape"]} : () -> tensor<4xi32>
  %h = "tfl.reshape"(%y, %shape) {names = ["h"]} : (tensor<1x2xf32>, tensor<4xi32>) -> tensor<1x1x1x2xf32>
  %dw = "tfl.const"() <{value = dense<[[[[0.5, -0.5]]]]> : tensor<1x1x1x2xf32>}> {names = ["dw/w"]} : () -> tensor<1x1x1x2xf32>
  %db = "tfl.const"() <{value = dense<[0.0, 0.0]> : tensor<2xf32>}> {names = ["dw/b"]} : () -> tensor<2xf32>
  %d = "tfl.depthwise_conv_2d"(%h, %dw, %db) <{padding = "VALID", stride_w = 1 : i32, stride_h = 1 : i32, depth_multiplier = 1 : i32}> {names = ["dw"]} : (tensor<1x1x1x2xf32>, tensor<1x1x1x2xf32>, tensor<2xf32>) -> tensor<1x1x1x2xf32>
  %n = "tfl.fully_connected"(%s, %w, %b) {names = ["no_fit"]} : (tensor<1x2xf32>, tensor<2x2xf32>, tensor<2xf32>) -> tensor<1x2xf32>
  func.return %y, %d, %n : tensor<1x2xf32>, tensor<1x1x1x2xf32>, tensor<1x2xf32>
}

func.func @other(%x: tensor<1x2xf32> {tfl.name = "x"}) -> tensor<1x2xf32> {
  %w = "tfl.const"() <{value = dense<[[0.3, 0.1], [1.0, 0.5]]> : tensor<2x2xf32>}> {names = ["fc/w"]} : () -> tensor<2x2xf32>
  %b = "tfl.const"() <{value = dense<[0.5, -0.25]> : tensor<2xf32>}> {names = ["fc/b"]} : () -> tensor<2xf32>
  %y = "tfl.fully_connected"(%x, %w, %b) {names = ["fc_other"]} : (tensor<1x2xf32>, tensor<2x2xf32>, tensor<2xf32>) -> tensor<1x2xf32>
  func.return %y : tensor<1x2xf32>
}
