// RUN: tflquant-opt %s -p equalize-cross-layer | filecheck %s
// RUN: tflquant-opt %s -p 'equalize-cross-layer,equalize-cross-layer' | filecheck %s

// equalize-cross-layer: output channel i of the first layer is divided by
// s_i = sqrt(r1_i / r2_i) and input channel i of the second multiplied by it (r: max |w|
// per channel), so both ranges become sqrt(r1_i * r2_i). Here r1 = [4, 0.25] and
// r2 = [1, 4]: s = [2, 0.25], W1 = [2, 1], b1 = [1, 4], W2 = [2, 1] (both ranges [2, 1]).
// The layers are marked; a second run changes nothing.
// CHECK-LABEL: func.func @relu_pair
// CHECK-DAG:   %[[W1:.*]] = "tfl.const"() <{value = dense<[[[[2.000000e+00]]], [[[1.000000e+00]]]]> : tensor<2x1x1x1xf32>}> {names = ["c1/w"]}
// CHECK-DAG:   %[[B1:.*]] = "tfl.const"() <{value = dense<[1.000000e+00, 4.000000e+00]> : tensor<2xf32>}> {names = ["c1/b"]}
// CHECK:       "tfl.conv_2d"(%{{.*}}, %[[W1]], %[[B1]]) {{.*}}fused_activation_function = "RELU"{{.*}}tflquant.equalized
// CHECK:       %[[W2:.*]] = "tfl.const"() <{value = dense<[[[[2.000000e+00, 1.000000e+00]]]]> : tensor<1x1x1x2xf32>}> {names = ["c2/w"]}
// CHECK:       "tfl.conv_2d"(%{{.*}}, %[[W2]], %{{.*}}) {{.*}}tflquant.equalized
func.func @relu_pair(%x: tensor<1x2x2x1xf32> {tfl.name = "x"}) -> tensor<1x2x2x1xf32> {
  %w1 = "tfl.const"() <{value = dense<[[[[4.0]]], [[[0.25]]]]> : tensor<2x1x1x1xf32>}> {names = ["c1/w"]} : () -> tensor<2x1x1x1xf32>
  %b1 = "tfl.const"() <{value = dense<[2.0, 1.0]> : tensor<2xf32>}> {names = ["c1/b"]} : () -> tensor<2xf32>
  %y = "tfl.conv_2d"(%x, %w1, %b1) <{padding = "SAME", stride_w = 1 : i32, stride_h = 1 : i32, fused_activation_function = "RELU"}> {names = ["c1"]} : (tensor<1x2x2x1xf32>, tensor<2x1x1x1xf32>, tensor<2xf32>) -> tensor<1x2x2x2xf32>
  %w2 = "tfl.const"() <{value = dense<[[[[1.0, 4.0]]]]> : tensor<1x1x1x2xf32>}> {names = ["c2/w"]} : () -> tensor<1x1x1x2xf32>
  %b2 = "tfl.const"() <{value = dense<[0.5]> : tensor<1xf32>}> {names = ["c2/b"]} : () -> tensor<1xf32>
  %z = "tfl.conv_2d"(%y, %w2, %b2) <{padding = "SAME", stride_w = 1 : i32, stride_h = 1 : i32, fused_activation_function = "NONE"}> {names = ["c2"]} : (tensor<1x2x2x2xf32>, tensor<1x1x1x2xf32>, tensor<1xf32>) -> tensor<1x2x2x1xf32>
  func.return %z : tensor<1x2x2x1xf32>
}

// A depthwise layer, a separate RELU and a RESHAPE into a FULLY_CONNECTED: the FC's
// column k reads channel k mod 2. r1 = [4, 0.25], r2 = [1, 4] as above.
// CHECK-LABEL: func.func @depthwise_relu_fc
// CHECK:       %[[W1:.*]] = "tfl.const"() <{value = dense<[[[[2.000000e+00, 1.000000e+00]]]]> : tensor<1x1x1x2xf32>}> {names = ["d/w"]}
// CHECK:       "tfl.depthwise_conv_2d"(%{{.*}}, %[[W1]], %{{.*}}) {{.*}}tflquant.equalized
// CHECK:       "tfl.relu"
// CHECK:       "tfl.reshape"
// CHECK:       %[[W2:.*]] = "tfl.const"() <{value = dense<{{\[}}[2.000000e+00, 1.000000e+00, 2.000000e+00, 2.500000e-01]]> : tensor<1x4xf32>}> {names = ["fc/w"]}
// CHECK:       "tfl.fully_connected"(%{{.*}}, %[[W2]], %{{.*}}) {names = ["fc"], tflquant.equalized}
func.func @depthwise_relu_fc(%x: tensor<1x1x2x2xf32> {tfl.name = "x"}) -> tensor<1x1xf32> {
  %w1 = "tfl.const"() <{value = dense<[[[[4.0, 0.25]]]]> : tensor<1x1x1x2xf32>}> {names = ["d/w"]} : () -> tensor<1x1x1x2xf32>
  %n = tfl.no_value
  %y = "tfl.depthwise_conv_2d"(%x, %w1, %n) <{padding = "VALID", stride_w = 1 : i32, stride_h = 1 : i32, depth_multiplier = 1 : i32, fused_activation_function = "NONE"}> {names = ["d"]} : (tensor<1x1x2x2xf32>, tensor<1x1x1x2xf32>, none) -> tensor<1x1x2x2xf32>
  %r = "tfl.relu"(%y) {names = ["relu"]} : (tensor<1x1x2x2xf32>) -> tensor<1x1x2x2xf32>
  %shape = "tfl.const"() <{value = dense<[1, 4]> : tensor<2xi32>}> {names = ["shape"]} : () -> tensor<2xi32>
  %f = "tfl.reshape"(%r, %shape) {names = ["flat"]} : (tensor<1x1x2x2xf32>, tensor<2xi32>) -> tensor<1x4xf32>
  %w2 = "tfl.const"() <{value = dense<[[1.0, 4.0, 1.0, 1.0]]> : tensor<1x4xf32>}> {names = ["fc/w"]} : () -> tensor<1x4xf32>
  %z = "tfl.fully_connected"(%f, %w2, %n) {names = ["fc"]} : (tensor<1x4xf32>, tensor<1x4xf32>, none) -> tensor<1x1xf32>
  func.return %z : tensor<1x1xf32>
}

// Not pairs: RELU6 between the layers (min(v/s, 6) != min(v, 6)/s), and an activation
// another op also reads (the function's result here): weights unchanged, nothing marked.
// CHECK-LABEL: func.func @not_pairs
// CHECK-NOT:   tflquant.equalized
// CHECK:       dense<[[[[4.000000e+00]]], [[[2.500000e-01]]]]>
// CHECK-NOT:   tflquant.equalized
// CHECK:       func.return
func.func @not_pairs(%x: tensor<1x2x2x1xf32> {tfl.name = "x"}) -> (tensor<1x2x2x1xf32>, tensor<1x2x2x2xf32>) {
  %w1 = "tfl.const"() <{value = dense<[[[[4.0]]], [[[0.25]]]]> : tensor<2x1x1x1xf32>}> {names = ["c1/w"]} : () -> tensor<2x1x1x1xf32>
  %n = tfl.no_value
  %y = "tfl.conv_2d"(%x, %w1, %n) <{padding = "SAME", stride_w = 1 : i32, stride_h = 1 : i32, fused_activation_function = "RELU6"}> {names = ["c1"]} : (tensor<1x2x2x1xf32>, tensor<2x1x1x1xf32>, none) -> tensor<1x2x2x2xf32>
  %w2 = "tfl.const"() <{value = dense<[[[[1.0, 4.0]]]]> : tensor<1x1x1x2xf32>}> {names = ["c2/w"]} : () -> tensor<1x1x1x2xf32>
  %z = "tfl.conv_2d"(%y, %w2, %n) <{padding = "SAME", stride_w = 1 : i32, stride_h = 1 : i32, fused_activation_function = "NONE"}> {names = ["c2"]} : (tensor<1x2x2x2xf32>, tensor<1x1x1x2xf32>, none) -> tensor<1x2x2x1xf32>
  %y2 = "tfl.conv_2d"(%x, %w1, %n) <{padding = "SAME", stride_w = 1 : i32, stride_h = 1 : i32, fused_activation_function = "NONE"}> {names = ["c3"]} : (tensor<1x2x2x1xf32>, tensor<2x1x1x1xf32>, none) -> tensor<1x2x2x2xf32>
  %z2 = "tfl.conv_2d"(%y2, %w2, %n) <{padding = "SAME", stride_w = 1 : i32, stride_h = 1 : i32, fused_activation_function = "NONE"}> {names = ["c4"]} : (tensor<1x2x2x2xf32>, tensor<1x1x1x2xf32>, none) -> tensor<1x2x2x1xf32>
  func.return %z, %y2 : tensor<1x2x2x1xf32>, tensor<1x2x2x2xf32>
}
