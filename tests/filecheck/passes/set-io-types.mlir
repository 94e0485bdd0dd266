// RUN: tflquant-opt %s -p 'insert-fake-quant,propagate-scales,rewrite-integer,legalize-float-fallback,quantize-bias,set-io-types{type=int8}' | filecheck %s
// RUN: tflquant-opt %s -p 'insert-fake-quant,propagate-scales,rewrite-integer,legalize-float-fallback,quantize-bias,set-io-types{type=uint8}' | filecheck %s --check-prefix=U8
// RUN: tflquant-opt %s -p 'insert-fake-quant{activations=int16},propagate-scales,rewrite-integer,set-io-types{type=int16}' | filecheck %s --check-prefix=I16

// set-io-types: float model inputs/outputs become integer tensors; integer ones (token ids)
// are untouched; the function type follows.

// int8: the QUANTIZE/DEQUANTIZE at the boundary disappear; the output keeps its name.
// CHECK:      func.func @main(%x: tensor<1x4x!quant.uniform<i8:f32, 0.007843138:-1>> {tfl.name = "x"}, %t: tensor<1x4xi32> {tfl.name = "ids"}) -> (tensor<1x4x!quant.uniform<i8:f32, 0.003921569:-128>>, tensor<1x4xi32>)
// CHECK-NEXT: %r = "tfl.relu"(%x) {names = ["relu"]}
// CHECK-NEXT: func.return %r, %t
// uint8: zero points + 128, a QUANTIZE uint8 -> int8 at the input and int8 -> uint8 at the output.
// U8:      func.func @main(%x: tensor<1x4x!quant.uniform<ui8:f32, 0.007843138:127>> {tfl.name = "x"}, %t: tensor<1x4xi32> {tfl.name = "ids"}) -> (tensor<1x4x!quant.uniform<ui8:f32, 0.003921569>>, tensor<1x4xi32>)
// U8-NEXT: %[[Q:.*]] = "tfl.quantize"(%x) {names = ["x_int8"]} : (tensor<1x4x!quant.uniform<ui8:f32, 0.007843138:127>>) -> tensor<1x4x!quant.uniform<i8:f32, 0.007843138:-1>>
// U8-NEXT: %[[R:.*]] = "tfl.relu"(%[[Q]])
// U8-NEXT: %[[O:.*]] = "tfl.quantize"(%[[R]]) {names = ["relu"]} : (tensor<1x4x!quant.uniform<i8:f32, 0.003921569:-128>>) -> tensor<1x4x!quant.uniform<ui8:f32, 0.003921569>>
// U8-NEXT: func.return %[[O]], %t
// I16:      func.func @main(%x: tensor<1x4x!quant.uniform<i16:f32, 3.967406e-05>> {tfl.name = "x"}, %t: tensor<1x4xi32> {tfl.name = "ids"}) -> (tensor<1x4x!quant.uniform<i16:f32, 3.967406e-05>>, tensor<1x4xi32>)
func.func @main(%x: tensor<1x4xf32> {tfl.name = "x"}, %t: tensor<1x4xi32> {tfl.name = "ids"}) -> (tensor<1x4xf32>, tensor<1x4xi32>) {
  %xs = quant.stats %x, <-1.0, 1.0> : tensor<1x4xf32>
  %r = "tfl.relu"(%xs) {names = ["relu"]} : (tensor<1x4xf32>) -> tensor<1x4xf32>
  %rs = quant.stats %r, <0.0, 1.0> : tensor<1x4xf32>
  func.return %rs, %t : tensor<1x4xf32>, tensor<1x4xi32>
}
