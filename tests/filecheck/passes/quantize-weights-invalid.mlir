// RUN: tflquant-opt %s --split-input-file --verify-diagnostics -p 'quantize-weights{min-elements=4}' | filecheck %s
// RUN: not tflquant-opt %s -p 'quantize-weights{min-elements=-1}' 2>&1 | filecheck %s --check-prefix=OPTION

// What quantize-weights rejects, with a message naming the tensor and what to do.

// OPTION: min-elements must be >= 0, got -1

// A weight with NaN or infinity has no int8 scale.
func.func @nan_weight(%x: tensor<1x4xf32>) -> tensor<1x1xf32> {
  %w = "tfl.const"() <{value = dense<"0x0000803F0000C07F0000004000004040"> : tensor<1x4xf32>}> {names = ["dense/kernel"]} : () -> tensor<1x4xf32>
  %n = "tfl.no_value"() : () -> none
  %y = "tfl.fully_connected"(%x, %w, %n) : (tensor<1x4xf32>, tensor<1x4xf32>, none) -> tensor<1x1xf32>
  func.return %y : tensor<1x1xf32>
}
// CHECK: weight tensor 'dense/kernel' (read by tfl.fully_connected) holds NaN or infinite values and cannot be quantized

// -----

// A quantized constant whose payload is not its storage type is rejected by the verifier,
// so a hand-written hybrid model with a float payload cannot slip through.
func.func @bad_payload(%x: tensor<1x4xf32>) -> tensor<1x1xf32> {
  %w = "tfl.const"() <{value = dense<[[1.0, 2.0, 2.0, 3.0]]> : tensor<1x4xf32>}> : () -> tensor<1x4x!quant.uniform<i8<-127:127>:f32, 0.5>>
  %n = "tfl.no_value"() : () -> none
  %y = "tfl.fully_connected"(%x, %w, %n) : (tensor<1x4xf32>, tensor<1x4x!quant.uniform<i8<-127:127>:f32, 0.5>>, none) -> tensor<1x1xf32>
  func.return %y : tensor<1x1xf32>
}
// CHECK: tfl.const payload element f32 does not match result element i8
