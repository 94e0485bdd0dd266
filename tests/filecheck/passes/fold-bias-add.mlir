// RUN: tflquant-opt %s -p fold-bias-add | filecheck %s

// Keras' Dense on a 3-D input: FULLY_CONNECTED -> RESHAPE (to heads) -> ADD(bias per head
// and feature). The constant becomes the layer's bias (one value per output feature, in
// the layer's order), the ADD's activation the layer's, the RESHAPE takes the ADD's name and the
// layer's output, which now holds layer + bias, is renamed "fc/with_bias".
// CHECK-LABEL: func.func @tensordot
// CHECK-NEXT:    %w = "tfl.const"()
// CHECK-NEXT:    %[[B:.*]] = "tfl.const"() <{value = dense<[1.000000e+00, 2.000000e+00, 3.000000e+00, 4.000000e+00, 5.000000e+00, 6.000000e+00]> : tensor<6xf32>}> {names = ["bias"]} : () -> tensor<6xf32>
// CHECK-NEXT:    %[[Y:.*]] = "tfl.fully_connected"(%x, %w, %[[B]]) <{keep_num_dims = true, fused_activation_function = "RELU"}> {names = ["fc/with_bias"]} : (tensor<?x4x8xf32>, tensor<6x8xf32>, tensor<6xf32>) -> tensor<?x4x6xf32>
// CHECK-NEXT:    %s = "tfl.const"()
// CHECK-NEXT:    %[[R:.*]] = "tfl.reshape"(%[[Y]], %s) {names = ["biasadd"]} : (tensor<?x4x6xf32>, tensor<4xi32>) -> tensor<?x4x2x3xf32>
// CHECK-NEXT:    func.return %[[R]]
func.func @tensordot(%x: tensor<?x4x8xf32>) -> tensor<?x4x2x3xf32> {
  %w = "tfl.const"() <{value = dense<0.5> : tensor<6x8xf32>}> {names = ["w"]} : () -> tensor<6x8xf32>
  %n = "tfl.no_value"() : () -> none
  %y = "tfl.fully_connected"(%x, %w, %n) <{keep_num_dims = true}> {names = ["fc"]} : (tensor<?x4x8xf32>, tensor<6x8xf32>, none) -> tensor<?x4x6xf32>
  %s = "tfl.const"() <{value = dense<[-1, 4, 2, 3]> : tensor<4xi32>}> : () -> tensor<4xi32>
  %r = "tfl.reshape"(%y, %s) {names = ["r"]} : (tensor<?x4x6xf32>, tensor<4xi32>) -> tensor<?x4x2x3xf32>
  %c = "tfl.const"() <{value = dense<[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]> : tensor<2x3xf32>}> {names = ["bias"]} : () -> tensor<2x3xf32>
  %z = "tfl.add"(%r, %c) <{fused_activation_function = "RELU"}> {names = ["biasadd"]} : (tensor<?x4x2x3xf32>, tensor<2x3xf32>) -> tensor<?x4x2x3xf32>
  func.return %z : tensor<?x4x2x3xf32>
}

// A layer that has a bias adds the constant to it; SUB subtracts it; CONV_2D and
// DEPTHWISE_CONV_2D fold like FULLY_CONNECTED (channels last). The ADD may read the
// constant first.
// CHECK-LABEL: func.func @with_bias_sub_and_convs
// CHECK:         %[[B1:.*]] = "tfl.const"() <{value = dense<[1.500000e+00, -1.000000e+00]> : tensor<2xf32>}> {names = ["c1"]}
// CHECK-NEXT:    %[[F:.*]] = "tfl.fully_connected"(%x, %w, %[[B1]]) <{fused_activation_function = "NONE"}> {names = ["sub"]}
// CHECK:         %[[B2:.*]] = "tfl.const"() <{value = dense<[2.500000e-01, 5.000000e-01]> : tensor<2xf32>}> {names = ["c2"]}
// CHECK-NEXT:    %[[C:.*]] = "tfl.conv_2d"(%img, %k, %[[B2]]) <{padding = "SAME", stride_h = 1 : i32, stride_w = 1 : i32, fused_activation_function = "RELU6"}> {names = ["cadd"]}
// CHECK:         %[[B3:.*]] = "tfl.const"() <{value = dense<[1.000000e+00, 2.000000e+00]> : tensor<2xf32>}> {names = ["c3"]}
// CHECK-NEXT:    %[[D:.*]] = "tfl.depthwise_conv_2d"(%[[C]], %dk, %[[B3]])
// CHECK-SAME:    {names = ["dadd"]}
// CHECK-NOT:     "tfl.add"
// CHECK-NOT:     "tfl.sub"
// CHECK:         func.return %[[F]], %[[D]]
func.func @with_bias_sub_and_convs(%x: tensor<1x3xf32>, %img: tensor<1x4x4x1xf32>) -> (tensor<1x2xf32>, tensor<1x4x4x2xf32>) {
  %w = "tfl.const"() <{value = dense<1.0> : tensor<2x3xf32>}> : () -> tensor<2x3xf32>
  %b = "tfl.const"() <{value = dense<[2.0, 0.0]> : tensor<2xf32>}> : () -> tensor<2xf32>
  %y = "tfl.fully_connected"(%x, %w, %b) {names = ["fc"]} : (tensor<1x3xf32>, tensor<2x3xf32>, tensor<2xf32>) -> tensor<1x2xf32>
  %c1 = "tfl.const"() <{value = dense<[0.5, 1.0]> : tensor<2xf32>}> {names = ["c1"]} : () -> tensor<2xf32>
  %z = "tfl.sub"(%y, %c1) {names = ["sub"]} : (tensor<1x2xf32>, tensor<2xf32>) -> tensor<1x2xf32>
  %k = "tfl.const"() <{value = dense<0.1> : tensor<2x3x3x1xf32>}> : () -> tensor<2x3x3x1xf32>
  %n = "tfl.no_value"() : () -> none
  %cv = "tfl.conv_2d"(%img, %k, %n) <{padding = "SAME", stride_h = 1 : i32, stride_w = 1 : i32}> {names = ["conv"]} : (tensor<1x4x4x1xf32>, tensor<2x3x3x1xf32>, none) -> tensor<1x4x4x2xf32>
  %c2 = "tfl.const"() <{value = dense<[[[[0.25, 0.5]]]]> : tensor<1x1x1x2xf32>}> {names = ["c2"]} : () -> tensor<1x1x1x2xf32>
  %ca = "tfl.add"(%c2, %cv) <{fused_activation_function = "RELU6"}> {names = ["cadd"]} : (tensor<1x1x1x2xf32>, tensor<1x4x4x2xf32>) -> tensor<1x4x4x2xf32>
  %dk = "tfl.const"() <{value = dense<0.2> : tensor<1x3x3x2xf32>}> : () -> tensor<1x3x3x2xf32>
  %db = "tfl.const"() <{value = dense<[1.0, 1.0]> : tensor<2xf32>}> : () -> tensor<2xf32>
  %dw = "tfl.depthwise_conv_2d"(%ca, %dk, %db) <{padding = "SAME", stride_h = 1 : i32, stride_w = 1 : i32, depth_multiplier = 1 : i32}> {names = ["dw"]} : (tensor<1x4x4x2xf32>, tensor<1x3x3x2xf32>, tensor<2xf32>) -> tensor<1x4x4x2xf32>
  %c3 = "tfl.const"() <{value = dense<[0.0, 1.0]> : tensor<2xf32>}> {names = ["c3"]} : () -> tensor<2xf32>
  %da = "tfl.add"(%dw, %c3) {names = ["dadd"]} : (tensor<1x4x4x2xf32>, tensor<2xf32>) -> tensor<1x4x4x2xf32>
  func.return %z, %da : tensor<1x2xf32>, tensor<1x4x4x2xf32>
}

// Annotated IR: the layer's result now holds the ADD's values, so its quant.stats takes the
// ADD's range (per tensor); the ADD's own quant.stats reads the last value.
// CHECK-LABEL: func.func @annotated
// CHECK:         %[[Y:.*]] = "tfl.fully_connected"
// CHECK-NEXT:    %[[YS:.*]] = quant.stats %[[Y]], <-1.0, 3.0> : tensor<1x4x6xf32>
// CHECK:         %[[R:.*]] = "tfl.reshape"(%[[YS]], %s) {names = ["biasadd"]}
// CHECK-NEXT:    %[[RS:.*]] = quant.stats %[[R]], <-1.0, 3.0> : tensor<1x4x2x3xf32>
// CHECK-NEXT:    func.return %[[RS]]
func.func @annotated(%x: tensor<1x4x8xf32>) -> tensor<1x4x2x3xf32> {
  %w = "tfl.const"() <{value = dense<0.5> : tensor<6x8xf32>}> : () -> tensor<6x8xf32>
  %n = "tfl.no_value"() : () -> none
  %y = "tfl.fully_connected"(%x, %w, %n) <{keep_num_dims = true}> {names = ["fc"]} : (tensor<1x4x8xf32>, tensor<6x8xf32>, none) -> tensor<1x4x6xf32>
  %ys = quant.stats %y, <-2.0, 2.0> : tensor<1x4x6xf32>
  %s = "tfl.const"() <{value = dense<[1, 4, 2, 3]> : tensor<4xi32>}> : () -> tensor<4xi32>
  %r = "tfl.reshape"(%ys, %s) {names = ["r"]} : (tensor<1x4x6xf32>, tensor<4xi32>) -> tensor<1x4x2x3xf32>
  %rs = quant.stats %r, <-2.0, 2.0> : tensor<1x4x2x3xf32>
  %c = "tfl.const"() <{value = dense<1.0> : tensor<3xf32>}> : () -> tensor<3xf32>
  %z = "tfl.add"(%rs, %c) {names = ["biasadd"]} : (tensor<1x4x2x3xf32>, tensor<3xf32>) -> tensor<1x4x2x3xf32>
  %zs = quant.stats %z, <-1.0, 3.0> : tensor<1x4x2x3xf32>
  func.return %zs : tensor<1x4x2x3xf32>
}

// Left alone: a constant that varies along the sequence (not per channel), a layer with
// its own fused activation, a layer result something else reads too, a constant minus the
// layer (SUB with the constant first), and the ADD of two activations.
// CHECK-LABEL: func.func @kept
// CHECK-COUNT-2: "tfl.add"
// CHECK:         "tfl.sub"
// CHECK:         "tfl.add"
// CHECK:         "tfl.add"
// CHECK-NOT:     "tfl.add"
func.func @kept(%x: tensor<1x4x3xf32>) -> (tensor<1x4x2xf32>, tensor<1x4x2xf32>, tensor<1x4x2xf32>, tensor<1x4x2xf32>, tensor<1x4x2xf32>) {
  %w = "tfl.const"() <{value = dense<1.0> : tensor<2x3xf32>}> : () -> tensor<2x3xf32>
  %n = "tfl.no_value"() : () -> none
  %seq = "tfl.const"() <{value = dense<[[1.0], [2.0], [3.0], [4.0]]> : tensor<4x1xf32>}> : () -> tensor<4x1xf32>
  %y1 = "tfl.fully_connected"(%x, %w, %n) <{keep_num_dims = true}> : (tensor<1x4x3xf32>, tensor<2x3xf32>, none) -> tensor<1x4x2xf32>
  %a1 = "tfl.add"(%y1, %seq) : (tensor<1x4x2xf32>, tensor<4x1xf32>) -> tensor<1x4x2xf32>
  %c = "tfl.const"() <{value = dense<[1.0, 2.0]> : tensor<2xf32>}> : () -> tensor<2xf32>
  %y2 = "tfl.fully_connected"(%x, %w, %n) <{keep_num_dims = true, fused_activation_function = "RELU"}> : (tensor<1x4x3xf32>, tensor<2x3xf32>, none) -> tensor<1x4x2xf32>
  %a2 = "tfl.add"(%y2, %c) : (tensor<1x4x2xf32>, tensor<2xf32>) -> tensor<1x4x2xf32>
  %y3 = "tfl.fully_connected"(%x, %w, %n) <{keep_num_dims = true}> : (tensor<1x4x3xf32>, tensor<2x3xf32>, none) -> tensor<1x4x2xf32>
  %a3 = "tfl.sub"(%c, %y3) : (tensor<2xf32>, tensor<1x4x2xf32>) -> tensor<1x4x2xf32>
  %a4 = "tfl.add"(%y3, %c) : (tensor<1x4x2xf32>, tensor<2xf32>) -> tensor<1x4x2xf32>
  %a5 = "tfl.add"(%a1, %a2) : (tensor<1x4x2xf32>, tensor<1x4x2xf32>) -> tensor<1x4x2xf32>
  func.return %a1, %a2, %a3, %a4, %a5 : tensor<1x4x2xf32>, tensor<1x4x2xf32>, tensor<1x4x2xf32>, tensor<1x4x2xf32>, tensor<1x4x2xf32>
}
