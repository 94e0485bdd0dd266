// RUN: not tflquant-opt %s -p check-micro 2>&1 | filecheck %s

// Every op TFLite Micro cannot run is listed in one error: op type, output tensor name, why
// (op type without a kernel, tensor type, rank, a Prepare check such as hybrid CONV_2D).
// CHECK: TFLite Micro cannot run 5 ops of this model (target micro): SQRT 'sq': input is int8: TFLite Micro's SQRT takes float32; TRANSPOSE 't': rank 6: TFLite Micro's TRANSPOSE takes at most 5 dims; GELU 'g': TFLite Micro has no kernel for this op type; SELECT_V2 'sel': input 1 is int32: TFLite Micro's SELECT_V2 takes float32, int8, int16; CONV_2D 'conv': input float32 with weights int8: TFLite Micro takes float32/float32, int8/int8 or int16/int8 (a hybrid op: TFLite Micro has no hybrid kernels). Quantize for LiteRT (target litert) or change these ops in the float model.
func.func @main(%x: tensor<1x4x!quant.uniform<i8:f32, 0.05:-3>>, %y: tensor<1x2x1x3x4x1x!quant.uniform<i8:f32, 0.1>>, %c: tensor<4xi1>, %i: tensor<4xi32>, %f: tensor<1x4x4x2xf32>) -> (tensor<1x4x!quant.uniform<i8:f32, 0.05:-3>>, tensor<1x1x2x3x4x1x!quant.uniform<i8:f32, 0.1>>, tensor<1x4x!quant.uniform<i8:f32, 0.05:-3>>, tensor<4xi32>, tensor<1x4x4x3xf32>) {
  %s = "tfl.sqrt"(%x) {names = ["sq"]} : (tensor<1x4x!quant.uniform<i8:f32, 0.05:-3>>) -> tensor<1x4x!quant.uniform<i8:f32, 0.05:-3>>
  %p = "tfl.const"() <{value = dense<[2, 1, 0, 3, 4, 5]> : tensor<6xi32>}> : () -> tensor<6xi32>
  %t = "tfl.transpose"(%y, %p) {names = ["t"]} : (tensor<1x2x1x3x4x1x!quant.uniform<i8:f32, 0.1>>, tensor<6xi32>) -> tensor<1x1x2x3x4x1x!quant.uniform<i8:f32, 0.1>>
  %g = "tfl.gelu"(%x) {names = ["g"]} : (tensor<1x4x!quant.uniform<i8:f32, 0.05:-3>>) -> tensor<1x4x!quant.uniform<i8:f32, 0.05:-3>>
  %sel = "tfl.select_v2"(%c, %i, %i) {names = ["sel"]} : (tensor<4xi1>, tensor<4xi32>, tensor<4xi32>) -> tensor<4xi32>
  %w = "tfl.const"() <{value = dense<1> : tensor<3x1x1x2xi8>}> : () -> tensor<3x1x1x2x!quant.uniform<i8<-127:127>:f32:0, {0.1, 0.1, 0.1}>>
  %b = "tfl.const"() <{value = dense<0.0> : tensor<3xf32>}> : () -> tensor<3xf32>
  %conv = "tfl.conv_2d"(%f, %w, %b) <{padding = "SAME", stride_h = 1 : i32, stride_w = 1 : i32}> {names = ["conv"]} : (tensor<1x4x4x2xf32>, tensor<3x1x1x2x!quant.uniform<i8<-127:127>:f32:0, {0.1, 0.1, 0.1}>>, tensor<3xf32>) -> tensor<1x4x4x3xf32>
  func.return %s, %t, %g, %sel, %conv : tensor<1x4x!quant.uniform<i8:f32, 0.05:-3>>, tensor<1x1x2x3x4x1x!quant.uniform<i8:f32, 0.1>>, tensor<1x4x!quant.uniform<i8:f32, 0.05:-3>>, tensor<4xi32>, tensor<1x4x4x3xf32>
}
