// RUN: tflquant-opt %s --verify-diagnostics -p cast-weights-f16 | filecheck %s
// RUN: not tflquant-opt %s -p 'cast-weights-f16{min-elements=-2}' 2>&1 | filecheck %s --check-prefix=OPTION

// What cast-weights-f16 rejects.

// OPTION: cast-weights-f16: min-elements must be >= 0, got -2

// An fp16 weight whose payload is still float32 bytes is caught by the verifier before
// the pass runs (a half-converted model).
func.func @half_converted(%x: tensor<2xf32>) -> tensor<2xf32> {
  %h = "tfl.const"() <{value = dense<[1.0, 2.0]> : tensor<2xf32>}> : () -> tensor<2xf16>
  %w = "tfl.dequantize"(%h) : (tensor<2xf16>) -> tensor<2xf32>
  %y = "tfl.add"(%x, %w) <{fused_activation_function = "NONE"}> : (tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>
  func.return %y : tensor<2xf32>
}
// CHECK: tfl.const payload element f32 does not match result element f16
