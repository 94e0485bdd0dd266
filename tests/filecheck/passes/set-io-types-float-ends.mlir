// RUN: tflquant-opt %s -p 'insert-fake-quant,propagate-scales,rewrite-integer,legalize-float-fallback,quantize-bias,set-io-types{type=int8}' | filecheck %s
// RUN: tflquant-opt %s -p 'insert-fake-quant,propagate-scales,rewrite-integer,legalize-float-fallback,quantize-bias,set-io-types{type=uint8}' | filecheck %s --check-prefix=U8

// Integer I/O around ops that stay float (no integer kernel, or kept float), as the TF
// converter does it: the calibrated input is read through a DEQUANTIZE, the calibrated
// output comes from a QUANTIZE that takes the output's name (the float tensor becomes
// `<name>_float`). rewrite-integer and legalize-float-fallback leave the calibrated types
// on the function's arguments and results for set-io-types.

// CHECK-LABEL: func.func @float_ends(%x: tensor<1x4x!quant.uniform<i8:f32, 0.007843138:-1>> {tfl.name = "x"}) -> tensor<1x4x!quant.uniform<i8:f32, 0.03137255:-1>>
// CHECK-NEXT:    %[[D:.*]] = "tfl.dequantize"(%x) {names = ["x_dequantized"]}
// CHECK-NEXT:    %ax = "tfl.const"()
// CHECK-NEXT:    %[[C:.*]] = "tfl.cumsum"(%[[D]], %ax) {names = ["cumsum_float"]}
// CHECK-NEXT:    %[[Q:.*]] = "tfl.quantize"(%[[C]]) {names = ["cumsum"]} : (tensor<1x4xf32>) -> tensor<1x4x!quant.uniform<i8:f32, 0.03137255:-1>>
// CHECK-NEXT:    func.return %[[Q]]
// CHECK-NOT:     tflquant.quant_type

// U8-LABEL: func.func @float_ends(%x: tensor<1x4x!quant.uniform<ui8:f32, 0.007843138:127>> {tfl.name = "x"}) -> tensor<1x4x!quant.uniform<ui8:f32, 0.03137255:127>>
// U8-NEXT:    "tfl.dequantize"(%x) {names = ["x_dequantized"]} : (tensor<1x4x!quant.uniform<ui8:f32, 0.007843138:127>>) -> tensor<1x4xf32>
// U8:         "tfl.quantize"(%{{.*}}) {names = ["cumsum"]} : (tensor<1x4xf32>) -> tensor<1x4x!quant.uniform<ui8:f32, 0.03137255:127>>

func.func @float_ends(%x: tensor<1x4xf32> {tfl.name = "x"}) -> tensor<1x4xf32> {
  %xs = quant.stats %x, <-1.0, 1.0> : tensor<1x4xf32>
  %ax = "tfl.const"() <{value = dense<1> : tensor<i32>}> : () -> tensor<i32>
  %c = "tfl.cumsum"(%xs, %ax) {names = ["cumsum"]} : (tensor<1x4xf32>, tensor<i32>) -> tensor<1x4xf32>
  %cs = quant.stats %c, <-4.0, 4.0> : tensor<1x4xf32>
  func.return %cs : tensor<1x4xf32>
}
