// RUN: tflquant-opt %s -p insert-fake-quant,propagate-scales,rewrite-integer,legalize-float-fallback | filecheck %s
// RUN: tflquant-opt %s --verify-diagnostics -p 'insert-fake-quant,propagate-scales,rewrite-integer,legalize-float-fallback{strict=true}' | filecheck %s --check-prefix=STRICT

// CUMSUM has no integer kernel: it reads a DEQUANTIZE (shared with the model output's) and
// its result reaches the integer ADD through a QUANTIZE. No qcast/dcast is left.
// CHECK:      %[[C:.*]] = "tfl.conv_2d"
// CHECK-NEXT: %[[D:.*]] = "tfl.dequantize"(%[[C]]) {names = ["conv"]}
// CHECK:      %[[S:.*]] = "tfl.cumsum"(%[[D]], %ax) {names = ["cumsum"]}
// CHECK-NEXT: %[[Q:.*]] = "tfl.quantize"(%[[S]]) {names = ["cumsum_int8"]} : (tensor<1x2x2x2xf32>) -> tensor<1x2x2x2x!quant.uniform<i8:f32, 0.023529412:-128>>
// CHECK:      "tfl.add"(%[[Q]], %{{.*}})
// CHECK-NOT:  quant.{{[qd]}}cast
// Integer-only: one error naming every op that would stay float.
// STRICT: integer-only quantization is impossible: 1 op(s) have no integer kernel or no calibration data and would stay float: 'cumsum' (CUMSUM)
func.func @main(%x: tensor<1x2x2x2xf32> {tfl.name = "x"}) -> (tensor<1x2x2x2xf32>, tensor<1x2x2x2xf32>) {
  %xs = quant.stats %x, <-1.0, 1.0> : tensor<1x2x2x2xf32>
  %w = "tfl.const"() <{value = dense<[[[[1.0, -2.0]]], [[[0.5, 0.25]]]]> : tensor<2x1x1x2xf32>}> {names = ["w"]} : () -> tensor<2x1x1x2xf32>
  %b = "tfl.const"() <{value = dense<[0.1, -0.2]> : tensor<2xf32>}> {names = ["b"]} : () -> tensor<2xf32>
  %c = "tfl.conv_2d"(%xs, %w, %b) <{padding = "SAME", stride_w = 1 : i32, stride_h = 1 : i32, fused_activation_function = "RELU"}> {names = ["conv"]} : (tensor<1x2x2x2xf32>, tensor<2x1x1x2xf32>, tensor<2xf32>) -> tensor<1x2x2x2xf32>
  %cs = quant.stats %c, <0.0, 3.0> : tensor<1x2x2x2xf32>
  %ax = "tfl.const"() <{value = dense<3> : tensor<i32>}> {names = ["axis"]} : () -> tensor<i32>
  %s = "tfl.cumsum"(%cs, %ax) {names = ["cumsum"]} : (tensor<1x2x2x2xf32>, tensor<i32>) -> tensor<1x2x2x2xf32>
  %ss = quant.stats %s, <0.0, 6.0> : tensor<1x2x2x2xf32>
  %k = "tfl.const"() <{value = dense<0.5> : tensor<2xf32>}> {names = ["k"]} : () -> tensor<2xf32>
  %a = "tfl.add"(%ss, %k) {names = ["add"]} : (tensor<1x2x2x2xf32>, tensor<2xf32>) -> tensor<1x2x2x2xf32>
  %as = quant.stats %a, <0.5, 6.5> : tensor<1x2x2x2xf32>
  func.return %as, %cs : tensor<1x2x2x2xf32>, tensor<1x2x2x2xf32>
}
