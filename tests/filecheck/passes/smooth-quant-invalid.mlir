// RUN: not tflquant-opt %s -p smooth-quant 2>&1 | filecheck %s
// RUN: not tflquant-opt %s -p 'smooth-quant{alpha=1.5}' 2>&1 | filecheck %s --check-prefix=ALPHA
// RUN: not tflquant-opt %s -p 'smooth-quant{stats-file="%t.missing.json"}' 2>&1 | filecheck %s --check-prefix=FILE

// smooth_range must hold one range per channel of Y's last axis: a wrong count is one
// error naming the tensor, never a silently mis-scaled model. alpha lies in [0, 1]; a
// stats file that cannot be read is named.
// CHECK: smooth-quant: tensor 'y': smooth_range needs one range per channel of the last axis (2), got 3
// ALPHA: smooth-quant: alpha must be in [0, 1], got 1.5
// FILE: {{.*}}missing.json
func.func @bad_range(%x: tensor<2x2xf32> {tfl.name = "x"}) -> tensor<2x2xf32> {
  %gamma = "tfl.const"() <{value = dense<[1.0, 1.0]> : tensor<2xf32>}> {names = ["gamma"]} : () -> tensor<2xf32>
  %y = "tfl.mul"(%x, %gamma) <{fused_activation_function = "NONE"}> {smooth_range = #quant.stats<1, [-8.0, -0.5, -1.0], [8.0, 0.5, 1.0]>, names = ["y"]} : (tensor<2x2xf32>, tensor<2xf32>) -> tensor<2x2xf32>
  %n = tfl.no_value
  %wq = "tfl.const"() <{value = dense<[[1.0, 2.0], [0.5, 1.0]]> : tensor<2x2xf32>}> {names = ["q/w"]} : () -> tensor<2x2xf32>
  %q = "tfl.fully_connected"(%y, %wq, %n) {names = ["q"]} : (tensor<2x2xf32>, tensor<2x2xf32>, none) -> tensor<2x2xf32>
  func.return %q : tensor<2x2xf32>
}
