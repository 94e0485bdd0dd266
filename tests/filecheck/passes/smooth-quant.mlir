// RUN: tflquant-opt %s -p smooth-quant | filecheck %s
// RUN: tflquant-opt %s -p 'smooth-quant,smooth-quant' | filecheck %s
// RUN: echo '{"ln/out": {"axis": 2, "min": [-8.0, -0.5], "max": [8.0, 0.5]}}' > %t.json
// RUN: sed -e 's/smooth_range = #quant.stats<[^>]*>, //' %s | tflquant-opt -p 'smooth-quant{stats-file="%t.json"}' | filecheck %s
// RUN: tflquant-opt %s -p 'smooth-quant{alpha=0.0}' | filecheck %s --check-prefix=ALPHA0

// smooth-quant on a Keras layer norm (Y = x*g - mean*g + beta, g = rsqrt(var + eps)*gamma)
// read by two FULLY_CONNECTED layers (Q and K share the factor): max|X| = [8, 0.5] from
// smooth_range, max|W| over both readers' input columns = [2, 2], alpha 0.5:
// s = sqrt(max|X| / max|W|) = [2, 0.5]. gamma and beta are divided by s (no op added), the
// weights' columns multiplied: Q [[1, 2], [0.5, 1]] -> [[2, 1], [1, 0.5]],
// K [[2, 0.5], [1, 0.25]] -> [[4, 0.25], [2, 0.125]]. Y's op is marked, its range dropped.
// alpha 0: s = 1 / max|W| = [0.5, 0.5] (gamma [2, 2], Q [[0.5, 1], [0.25, 0.5]]).
// CHECK-LABEL: func.func @layer_norm
// CHECK:       "tfl.const"() <{value = dense<{{\[\[}}[5.000000e-01, 2.000000e+00]]]> : tensor<1x1x2xf32>}> {names = ["ln/gamma"]}
// CHECK:       "tfl.const"() <{value = dense<{{\[\[}}[1.000000e-01, -8.000000e-01]]]> : tensor<1x1x2xf32>}> {names = ["ln/beta"]}
// CHECK:       %[[Y:.*]] = "tfl.add"({{.*}} {names = ["ln/out"], tflquant.smoothed}
// CHECK:       %[[Q:.*]] = "tfl.const"() <{value = dense<{{\[}}[2.000000e+00, 1.000000e+00], [1.000000e+00, 5.000000e-01]]> : tensor<2x2xf32>}> {names = ["q/w"]}
// CHECK:       "tfl.fully_connected"(%[[Y]], %[[Q]], %{{.*}})
// CHECK:       %[[K:.*]] = "tfl.const"() <{value = dense<{{\[}}[4.000000e+00, 2.500000e-01], [2.000000e+00, 1.250000e-01]]> : tensor<2x2xf32>}> {names = ["k/w"]}
// CHECK:       "tfl.fully_connected"(%[[Y]], %[[K]], %{{.*}})
// ALPHA0:      dense<2.000000e+00> : tensor<1x1x2xf32>}> {names = ["ln/gamma"]}
// ALPHA0:      dense<{{\[}}[5.000000e-01, 1.000000e+00], [2.500000e-01, 5.000000e-01]]> : tensor<2x2xf32>}> {names = ["q/w"]}
func.func @layer_norm(%x: tensor<1x2x2xf32> {tfl.name = "x"}) -> (tensor<1x2x2xf32>, tensor<1x2x2xf32>) {
  %axis = "tfl.const"() <{value = dense<[-1]> : tensor<1xi32>}> {names = ["axis"]} : () -> tensor<1xi32>
  %eps = "tfl.const"() <{value = dense<0.001> : tensor<f32>}> {names = ["eps"]} : () -> tensor<f32>
  %gamma = "tfl.const"() <{value = dense<[[[1.0, 1.0]]]> : tensor<1x1x2xf32>}> {names = ["ln/gamma"]} : () -> tensor<1x1x2xf32>
  %beta = "tfl.const"() <{value = dense<[[[0.2, -0.4]]]> : tensor<1x1x2xf32>}> {names = ["ln/beta"]} : () -> tensor<1x1x2xf32>
  %mean = "tfl.mean"(%x, %axis) <{keep_dims = true}> {names = ["ln/mean"]} : (tensor<1x2x2xf32>, tensor<1xi32>) -> tensor<1x2x1xf32>
  %neg = "tfl.neg"(%mean) {names = ["ln/neg"]} : (tensor<1x2x1xf32>) -> tensor<1x2x1xf32>
  %sq = "tfl.squared_difference"(%x, %mean) {names = ["ln/sq"]} : (tensor<1x2x2xf32>, tensor<1x2x1xf32>) -> tensor<1x2x2xf32>
  %var = "tfl.mean"(%sq, %axis) <{keep_dims = true}> {names = ["ln/var"]} : (tensor<1x2x2xf32>, tensor<1xi32>) -> tensor<1x2x1xf32>
  %ve = "tfl.add"(%var, %eps) <{fused_activation_function = "NONE"}> {names = ["ln/add"]} : (tensor<1x2x1xf32>, tensor<f32>) -> tensor<1x2x1xf32>
  %r = "tfl.rsqrt"(%ve) {names = ["ln/rsqrt"]} : (tensor<1x2x1xf32>) -> tensor<1x2x1xf32>
  %g = "tfl.mul"(%r, %gamma) <{fused_activation_function = "NONE"}> {names = ["ln/mul"]} : (tensor<1x2x1xf32>, tensor<1x1x2xf32>) -> tensor<1x2x2xf32>
  %m1 = "tfl.mul"(%neg, %g) <{fused_activation_function = "NONE"}> {names = ["ln/mul_1"]} : (tensor<1x2x1xf32>, tensor<1x2x2xf32>) -> tensor<1x2x2xf32>
  %a1 = "tfl.add"(%m1, %beta) <{fused_activation_function = "NONE"}> {names = ["ln/add_1"]} : (tensor<1x2x2xf32>, tensor<1x1x2xf32>) -> tensor<1x2x2xf32>
  %m2 = "tfl.mul"(%x, %g) <{fused_activation_function = "NONE"}> {names = ["ln/mul_2"]} : (tensor<1x2x2xf32>, tensor<1x2x2xf32>) -> tensor<1x2x2xf32>
  %y = "tfl.add"(%m2, %a1) <{fused_activation_function = "NONE"}> {smooth_range = #quant.stats<2, [-8.0, -0.5], [8.0, 0.5]>, names = ["ln/out"]} : (tensor<1x2x2xf32>, tensor<1x2x2xf32>) -> tensor<1x2x2xf32>
  %n = tfl.no_value
  %wq = "tfl.const"() <{value = dense<[[1.0, 2.0], [0.5, 1.0]]> : tensor<2x2xf32>}> {names = ["q/w"]} : () -> tensor<2x2xf32>
  %q = "tfl.fully_connected"(%y, %wq, %n) <{keep_num_dims = true}> {names = ["q"]} : (tensor<1x2x2xf32>, tensor<2x2xf32>, none) -> tensor<1x2x2xf32>
  %wk = "tfl.const"() <{value = dense<[[2.0, 0.5], [1.0, 0.25]]> : tensor<2x2xf32>}> {names = ["k/w"]} : () -> tensor<2x2xf32>
  %k = "tfl.fully_connected"(%y, %wk, %n) <{keep_num_dims = true}> {names = ["k"]} : (tensor<1x2x2xf32>, tensor<2x2xf32>, none) -> tensor<1x2x2xf32>
  func.return %q, %k : tensor<1x2x2xf32>, tensor<1x2x2xf32>
}

// Not smoothed: Y also feeds a residual ADD (post-norm), which no weight can rescale; and a
// norm without smooth_range (no calibration statistics). Nothing changes.
// CHECK-LABEL: func.func @not_smoothed
// CHECK-NOT:   tflquant.smoothed
// CHECK:       dense<{{\[}}[1.000000e+00, 2.000000e+00], [5.000000e-01, 1.000000e+00]]> : tensor<2x2xf32>}> {names = ["q/w"]}
// CHECK-NOT:   tflquant.smoothed
// CHECK:       func.return
func.func @not_smoothed(%x: tensor<2x2xf32> {tfl.name = "x"}) -> (tensor<2x2xf32>, tensor<2x2xf32>) {
  %gamma = "tfl.const"() <{value = dense<[1.0, 1.0]> : tensor<2xf32>}> {names = ["gamma"]} : () -> tensor<2xf32>
  %y = "tfl.mul"(%x, %gamma) <{fused_activation_function = "NONE"}> {smooth_range = #quant.stats<1, [-8.0, -0.5], [8.0, 0.5]>, names = ["y"]} : (tensor<2x2xf32>, tensor<2xf32>) -> tensor<2x2xf32>
  %n = tfl.no_value
  %wq = "tfl.const"() <{value = dense<[[1.0, 2.0], [0.5, 1.0]]> : tensor<2x2xf32>}> {names = ["q/w"]} : () -> tensor<2x2xf32>
  %q = "tfl.fully_connected"(%y, %wq, %n) {names = ["q"]} : (tensor<2x2xf32>, tensor<2x2xf32>, none) -> tensor<2x2xf32>
  %res = "tfl.add"(%y, %q) <{fused_activation_function = "NONE"}> {names = ["residual"]} : (tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x2xf32>
  %y2 = "tfl.mul"(%x, %gamma) <{fused_activation_function = "NONE"}> {names = ["y2"]} : (tensor<2x2xf32>, tensor<2xf32>) -> tensor<2x2xf32>
  %k = "tfl.fully_connected"(%y2, %wq, %n) {names = ["k"]} : (tensor<2x2xf32>, tensor<2x2xf32>, none) -> tensor<2x2xf32>
  func.return %res, %k : tensor<2x2xf32>, tensor<2x2xf32>
}
