// RUN: tflquant-opt %s --split-input-file -p cast-weights-f16 | filecheck %s
// RUN: tflquant-opt %s --split-input-file -p cast-weights-f16,cast-weights-f16 | filecheck %s
// RUN: tflquant-opt %s --split-input-file -p 'cast-weights-f16{min-elements=4}' | filecheck %s --check-prefix=MIN4

// Float16 weights: every float32 constant read by tfl ops becomes an fp16 constant (same
// name) and one DEQUANTIZE to float32 shared by its readers; activations stay float32.
// Running the pass twice gives the same IR (already-fp16 weights are recognised).

// The module says so in its metadata, as the TF converter's float16 files do.
// CHECK:      builtin.module attributes {tfl.metadata = {reduced_precision_support = "fp16accfp32"}}
// CHECK-LABEL: func.func @conv
// CHECK:      %[[W:.*]] = "tfl.const"() <{value = dense<{{\[\[\[\[}}1.000000e+00, -2.000000e+00]], {{\[\[}}3.330080e-01, 0.000000e+00]]], {{\[\[\[}}6.550400e+04, -6.550400e+04]], {{\[\[}}9.997560e-02, 0.000000e+00]]]]> : tensor<2x2x1x2xf16>}> {names = ["conv/w"]} : () -> tensor<2x2x1x2xf16>
// CHECK-NEXT: %[[WD:.*]] = "tfl.dequantize"(%[[W]]) {names = ["conv/w_dequantize"]} : (tensor<2x2x1x2xf16>) -> tensor<2x2x1x2xf32>
// CHECK-NEXT: %[[B:.*]] = "tfl.const"() <{value = dense<[5.000000e-01, -5.000000e-01]> : tensor<2xf16>}> {names = ["conv/b"]} : () -> tensor<2xf16>
// CHECK-NEXT: %[[BD:.*]] = "tfl.dequantize"(%[[B]]) {names = ["conv/b_dequantize"]} : (tensor<2xf16>) -> tensor<2xf32>
// CHECK-NEXT: %[[Y:.*]] = "tfl.conv_2d"(%x, %[[WD]], %[[BD]]) {{.*}} : (tensor<1x3x3x2xf32>, tensor<2x2x1x2xf32>, tensor<2xf32>) -> tensor<1x3x3x2xf32>
// CHECK-NEXT: %[[S:.*]] = "tfl.const"() <{value = dense<2.500000e-01> : tensor<f16>}> : () -> tensor<f16>
// CHECK-NEXT: %[[SD:.*]] = "tfl.dequantize"(%[[S]]) : (tensor<f16>) -> tensor<f32>
// CHECK-NEXT: "tfl.mul"(%[[Y]], %[[SD]])
// CHECK-NEXT: "tfl.add"(%{{.*}}, %[[SD]])
// MIN4-LABEL: func.func @conv
// MIN4:       tensor<2x2x1x2xf16>
// MIN4-NOT:   tensor<2xf16>
// MIN4-NOT:   tensor<f16>
func.func @conv(%x: tensor<1x3x3x2xf32> {tfl.name = "x"}) -> tensor<1x3x3x2xf32> {
  %w = "tfl.const"() <{value = dense<[[[[1.0, -2.0]], [[0.333, 0.0]]], [[[1.0e6, -1.0e9]], [[0.1, 1.0e-9]]]]> : tensor<2x2x1x2xf32>}> {names = ["conv/w"]} : () -> tensor<2x2x1x2xf32>
  %b = "tfl.const"() <{value = dense<[0.5, -0.5]> : tensor<2xf32>}> {names = ["conv/b"]} : () -> tensor<2xf32>
  %y = "tfl.conv_2d"(%x, %w, %b) <{padding = "SAME", stride_w = 1 : i32, stride_h = 1 : i32}> : (tensor<1x3x3x2xf32>, tensor<2x2x1x2xf32>, tensor<2xf32>) -> tensor<1x3x3x2xf32>
  %s = "tfl.const"() <{value = dense<0.25> : tensor<f32>}> : () -> tensor<f32>
  %m = "tfl.mul"(%y, %s) <{fused_activation_function = "NONE"}> : (tensor<1x3x3x2xf32>, tensor<f32>) -> tensor<1x3x3x2xf32>
  %a = "tfl.add"(%m, %s) <{fused_activation_function = "NONE"}> : (tensor<1x3x3x2xf32>, tensor<f32>) -> tensor<1x3x3x2xf32>
  func.return %a : tensor<1x3x3x2xf32>
}

// -----

// Left alone: weights already fp16 behind a DEQUANTIZE, integer constants, a constant that
// is a model output, and one read by an opaque (custom) op.
// CHECK:      builtin.module {
// CHECK-LABEL: func.func @untouched
// CHECK-NEXT: %h = "tfl.const"() {{.*}} : () -> tensor<2x2xf16>
// CHECK-NEXT: %w = "tfl.dequantize"(%h) {names = ["w"]} : (tensor<2x2xf16>) -> tensor<2x2xf32>
// CHECK-NEXT: %s = "tfl.const"() {{.*}} : () -> tensor<2xi32>
// CHECK-NEXT: %r = "tfl.reshape"
// CHECK-NEXT: %o = "tfl.const"() {{.*}} : () -> tensor<4xf32>
// CHECK-NEXT: %c = "tfl.opaque"(%o)
// CHECK-NEXT: %k = "tfl.const"() {{.*}} : () -> tensor<4xf32>
// CHECK-NEXT: func.return
func.func @untouched(%x: tensor<2x2xf32>) -> (tensor<2x2xf32>, tensor<4xf32>, tensor<4xf32>) {
  %h = "tfl.const"() <{value = dense<[[4.0, 1.0], [2.0, 3.0]]> : tensor<2x2xf16>}> : () -> tensor<2x2xf16>
  %w = "tfl.dequantize"(%h) {names = ["w"]} : (tensor<2x2xf16>) -> tensor<2x2xf32>
  %s = "tfl.const"() <{value = dense<[2, 2]> : tensor<2xi32>}> : () -> tensor<2xi32>
  %r = "tfl.reshape"(%w, %s) : (tensor<2x2xf32>, tensor<2xi32>) -> tensor<2x2xf32>
  %o = "tfl.const"() <{value = dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>}> : () -> tensor<4xf32>
  %c = "tfl.opaque"(%o) <{code = 32 : i32, version = 1 : i32, custom_code = "MyCustomOp"}> : (tensor<4xf32>) -> tensor<4xf32>
  %k = "tfl.const"() <{value = dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>}> : () -> tensor<4xf32>
  func.return %r, %c, %k : tensor<2x2xf32>, tensor<4xf32>, tensor<4xf32>
}
