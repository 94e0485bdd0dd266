// RUN: tflquant-opt %s --split-input-file --verify-diagnostics -p insert-fake-quant | filecheck %s
// RUN: not tflquant-opt %s -p 'insert-fake-quant{activations=int4}' 2>&1 | filecheck %s --check-prefix=OPTION
// RUN: not tflquant-opt %s -p 'insert-fake-quant{int16-headroom=0.5}' 2>&1 | filecheck %s --check-prefix=HEADROOM

// OPTION: insert-fake-quant: activations must be int8 or int16, got 'int4'
// HEADROOM: insert-fake-quant: int16-headroom must be in [1, 16], got 0.5

// A weight with NaN cannot be quantized: the error names the tensor.
func.func @nan_weight(%x: tensor<1x2xf32> {tfl.name = "x"}) -> tensor<1x2xf32> {
  %xs = quant.stats %x, <-1.0, 1.0> : tensor<1x2xf32>
  %w = "tfl.const"() <{value = dense<"0x0000C07F0000803F0000803F00000040"> : tensor<2x2xf32>}> {names = ["dense/kernel"]} : () -> tensor<2x2xf32>
  %nb = "tfl.no_value"() : () -> none
  %y = "tfl.fully_connected"(%xs, %w, %nb) {names = ["dense"]} : (tensor<1x2xf32>, tensor<2x2xf32>, none) -> tensor<1x2xf32>
  func.return %y : tensor<1x2xf32>
}
// CHECK: constant tensor 'dense/kernel' read by tfl.fully_connected holds NaN or infinite values

// -----

// Statistics on a non-float value are rejected.
func.func @int_stats(%x: tensor<2xi32>) -> tensor<2xi32> {
  %s = quant.stats %x, <0.0, 1.0> : tensor<2xi32>
  func.return %s : tensor<2xi32>
}
// CHECK: insert-fake-quant: quant.stats on non-f32 value input #0
