// RUN: tflquant-opt %s | filecheck %s
// RUN: tflquant-opt %s | tflquant-opt | filecheck %s
// RUN: tflquant-opt %s --print-op-generic | tflquant-opt | filecheck %s

// Round trip of the tfl dialect: builtin ops with options and names, constants
// (float and quantized), absent optional inputs, and variadic inputs.

// CHECK-LABEL: func.func @conv
// CHECK:      %[[W:.*]] = "tfl.const"() <{value = dense<{{.*}}> : tensor<2x1x1x3xf32>}> {names = ["w"]} : () -> tensor<2x1x1x3xf32>
// CHECK-NEXT: %[[NB:.*]] = tfl.no_value
// CHECK-NEXT: %[[C:.*]] = "tfl.conv_2d"(%x, %[[W]], %[[NB]]) <{padding = "SAME", stride_w = 1 : i32, stride_h = 2 : i32, fused_activation_function = "RELU6"}> {names = ["conv"]} : (tensor<1x4x4x3xf32>, tensor<2x1x1x3xf32>, none) -> tensor<1x2x4x2xf32>
// CHECK-NEXT: func.return %[[C]]
func.func @conv(%x: tensor<1x4x4x3xf32> {tfl.name = "input"}) -> tensor<1x2x4x2xf32> {
  %w = "tfl.const"() <{value = dense<[[[[1.0, 2.0, 3.0]]], [[[4.0, 5.0, 6.0]]]]> : tensor<2x1x1x3xf32>}> {names = ["w"]} : () -> tensor<2x1x1x3xf32>
  %nb = "tfl.no_value"() : () -> none
  %c = "tfl.conv_2d"(%x, %w, %nb) <{padding = "SAME", stride_w = 1 : i32, stride_h = 2 : i32, fused_activation_function = "RELU6"}> {names = ["conv"]} : (tensor<1x4x4x3xf32>, tensor<2x1x1x3xf32>, none) -> tensor<1x2x4x2xf32>
  func.return %c : tensor<1x2x4x2xf32>
}

// CHECK-LABEL: func.func @quantized
// CHECK:      "tfl.const"() <{value = dense<[-127, 0, 5, 127]> : tensor<4xi8>}> : () -> tensor<4x!quant.uniform<i8<-127:127>:f32, 0.5>>
// CHECK:      "tfl.add"(%x, %{{.*}}) <{fused_activation_function = "NONE"}> : (tensor<4x!quant.uniform<i8:f32, 0.25:-1>>, tensor<4x!quant.uniform<i8<-127:127>:f32, 0.5>>) -> tensor<4x!quant.uniform<i8:f32, 0.5:3>>
func.func @quantized(%x: tensor<4x!quant.uniform<i8:f32, 0.25:-1>>) -> tensor<4x!quant.uniform<i8:f32, 0.5:3>> {
  %k = "tfl.const"() <{value = dense<[-127, 0, 5, 127]> : tensor<4xi8>}> : () -> tensor<4x!quant.uniform<i8<-127:127>:f32, 0.5>>
  %y = "tfl.add"(%x, %k) <{fused_activation_function = "NONE"}> : (tensor<4x!quant.uniform<i8:f32, 0.25:-1>>, tensor<4x!quant.uniform<i8<-127:127>:f32, 0.5>>) -> tensor<4x!quant.uniform<i8:f32, 0.5:3>>
  func.return %y : tensor<4x!quant.uniform<i8:f32, 0.5:3>>
}

// CHECK-LABEL: func.func @variadic
// CHECK: "tfl.concatenation"(%a, %b, %a) <{axis = 1 : i32}> : (tensor<1x2xf32>, tensor<1x3xf32>, tensor<1x2xf32>) -> tensor<1x7xf32>
// CHECK: "tfl.reshape"(%{{.*}}, %{{.*}}) : (tensor<1x7xf32>, tensor<2xi32>) -> tensor<7x1xf32>
// CHECK: "tfl.softmax"(%{{.*}}) <{beta = 1.000000e+00 : f32}> : (tensor<7x1xf32>) -> tensor<?x1xf32>
func.func @variadic(%a: tensor<1x2xf32>, %b: tensor<1x3xf32>) -> tensor<?x1xf32> {
  %c = "tfl.concatenation"(%a, %b, %a) <{axis = 1 : i32}> : (tensor<1x2xf32>, tensor<1x3xf32>, tensor<1x2xf32>) -> tensor<1x7xf32>
  %s = "tfl.const"() <{value = dense<[7, 1]> : tensor<2xi32>}> : () -> tensor<2xi32>
  %r = "tfl.reshape"(%c, %s) : (tensor<1x7xf32>, tensor<2xi32>) -> tensor<7x1xf32>
  %m = "tfl.softmax"(%r) <{beta = 1.0 : f32}> : (tensor<7x1xf32>) -> tensor<?x1xf32>
  func.return %m : tensor<?x1xf32>
}
