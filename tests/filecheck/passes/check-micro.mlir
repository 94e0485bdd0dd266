// RUN: tflquant-opt %s -p check-micro | filecheck %s

// A model TFLite Micro runs passes unchanged: int8 ops it has kernels for, a 5-D TRANSPOSE,
// float SQRT, the QUANTIZE / DEQUANTIZE of float I/O.
// CHECK-LABEL: func.func @main
// CHECK-NEXT:    "tfl.quantize"(%x)
// CHECK-NEXT:    "tfl.relu"
// CHECK-NEXT:    "tfl.dequantize"
// CHECK-NEXT:    "tfl.sqrt"
// CHECK-NEXT:    "tfl.const"
// CHECK-NEXT:    "tfl.transpose"(%y, %{{.*}})
func.func @main(%x: tensor<1x4xf32>, %y: tensor<1x2x3x4x5x!quant.uniform<i8:f32, 0.1>>) -> (tensor<1x4xf32>, tensor<1x3x2x4x5x!quant.uniform<i8:f32, 0.1>>) {
  %q = "tfl.quantize"(%x) : (tensor<1x4xf32>) -> tensor<1x4x!quant.uniform<i8:f32, 0.05:-3>>
  %r = "tfl.relu"(%q) : (tensor<1x4x!quant.uniform<i8:f32, 0.05:-3>>) -> tensor<1x4x!quant.uniform<i8:f32, 0.05:-3>>
  %d = "tfl.dequantize"(%r) : (tensor<1x4x!quant.uniform<i8:f32, 0.05:-3>>) -> tensor<1x4xf32>
  %s = "tfl.sqrt"(%d) : (tensor<1x4xf32>) -> tensor<1x4xf32>
  %p = "tfl.const"() <{value = dense<[0, 2, 1, 3, 4]> : tensor<5xi32>}> : () -> tensor<5xi32>
  %t = "tfl.transpose"(%y, %p) : (tensor<1x2x3x4x5x!quant.uniform<i8:f32, 0.1>>, tensor<5xi32>) -> tensor<1x3x2x4x5x!quant.uniform<i8:f32, 0.1>>
  func.return %s, %t : tensor<1x4xf32>, tensor<1x3x2x4x5x!quant.uniform<i8:f32, 0.1>>
}
