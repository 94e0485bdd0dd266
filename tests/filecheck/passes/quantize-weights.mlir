// RUN: tflquant-opt %s --split-input-file -p 'quantize-weights{min-elements=4}' | filecheck %s
// RUN: tflquant-opt %s --split-input-file -p 'quantize-weights{min-elements=4 per-channel=false}' | filecheck %s --check-prefix=TENSOR
// RUN: tflquant-opt %s --split-input-file -p quantize-weights | filecheck %s --check-prefix=DEFAULT

// Dynamic-range quantization: weights of hybrid-capable ops become int8 symmetric
// ([-127, 127], zero point 0, scale max|w|/127), per channel where the kernel takes it;
// activations stay float. The default threshold (1024 elements) keeps these small weights float.
// DEFAULT-NOT: !quant.uniform

// Conv: per channel along dim 0, read directly by the hybrid kernel; the bias stays float.
// CHECK-LABEL: func.func @conv
// CHECK:      %[[W:.*]] = "tfl.const"() <{value = dense<{{\[\[\[\[}}127, -64]], {{\[\[}}32, 0]]], {{\[\[\[}}-127, 127]], {{\[\[}}0, 127]]]]> : tensor<2x2x1x2xi8>}> {names = ["conv/w"]{{(, tflquant.sqnr = [^}]* : f64)?}}} : () -> tensor<2x2x1x2x!quant.uniform<i8<-127:127>:f32:0, {0.031496063, 0.003937008}>>
// CHECK-NEXT: %[[B:.*]] = "tfl.const"() {{.*}} : () -> tensor<2xf32>
// CHECK-NEXT: "tfl.conv_2d"(%x, %[[W]], %[[B]]) <{padding = "SAME", stride_w = 1 : i32, stride_h = 1 : i32}> {names = ["conv"]} : (tensor<1x3x3x2xf32>, tensor<2x2x1x2x!quant.uniform<i8<-127:127>:f32:0, {0.031496063, 0.003937008}>>, tensor<2xf32>) -> tensor<1x3x3x2xf32>
// CHECK-NOT:  tfl.dequantize
// TENSOR-LABEL: func.func @conv
// TENSOR:     "tfl.const"() <{value = dense<{{\[\[\[\[}}127, -64]], {{\[\[}}32, 0]]], {{\[\[\[}}-16, 16]], {{\[\[}}0, 16]]]]> : tensor<2x2x1x2xi8>}> {names = ["conv/w"]} : () -> tensor<2x2x1x2x!quant.uniform<i8<-127:127>:f32, 0.031496063>>
// TENSOR-NOT: tfl.dequantize
func.func @conv(%x: tensor<1x3x3x2xf32> {tfl.name = "x"}) -> tensor<1x3x3x2xf32> {
  %w = "tfl.const"() <{value = dense<[[[[4.0, -2.0]], [[1.0, 0.0]]], [[[-0.5, 0.5]], [[0.0, 0.5]]]]> : tensor<2x2x1x2xf32>}> {names = ["conv/w"]} : () -> tensor<2x2x1x2xf32>
  %b = "tfl.const"() <{value = dense<[0.5, -0.5]> : tensor<2xf32>}> {names = ["conv/b"]} : () -> tensor<2xf32>
  %y = "tfl.conv_2d"(%x, %w, %b) <{padding = "SAME", stride_w = 1 : i32, stride_h = 1 : i32}> {names = ["conv"]} : (tensor<1x3x3x2xf32>, tensor<2x2x1x2xf32>, tensor<2xf32>) -> tensor<1x3x3x2xf32>
  func.return %y : tensor<1x3x3x2xf32>
}

// -----

// Depthwise: per channel along dim 3 (its hybrid kernel takes nothing else); with
// per-channel=false the weight is per tensor and a DEQUANTIZE feeds the float kernel.
// CHECK-LABEL: func.func @depthwise
// CHECK:      %[[W:.*]] = "tfl.const"() <{value = dense<{{\[\[\[\[}}127, 64], [-127, 127]]]]> : tensor<1x1x2x2xi8>}> {names = ["dw/w"]{{(, tflquant.sqnr = [^}]* : f64)?}}} : () -> tensor<1x1x2x2x!quant.uniform<i8<-127:127>:f32:3, {0.015748031, 0.007874016}>>
// CHECK:      "tfl.depthwise_conv_2d"(%x, %[[W]], %{{.*}})
// CHECK-NOT:  tfl.dequantize
// TENSOR-LABEL: func.func @depthwise
// TENSOR:      %[[W:.*]] = "tfl.const"() {{.*}} {names = ["dw/w"]} : () -> tensor<1x1x2x2x!quant.uniform<i8<-127:127>:f32, 0.015748031>>
// TENSOR-NEXT: %[[D:.*]] = "tfl.dequantize"(%[[W]]) {names = ["dw/w_dequantize"]} : (tensor<1x1x2x2x!quant.uniform<i8<-127:127>:f32, 0.015748031>>) -> tensor<1x1x2x2xf32>
// TENSOR:      "tfl.depthwise_conv_2d"(%x, %[[D]], %{{.*}})
func.func @depthwise(%x: tensor<1x2x2x2xf32>) -> tensor<1x2x2x2xf32> {
  %w = "tfl.const"() <{value = dense<[[[[2.0, 0.5], [-2.0, 1.0]]]]> : tensor<1x1x2x2xf32>}> {names = ["dw/w"]} : () -> tensor<1x1x2x2xf32>
  %b = "tfl.const"() <{value = dense<[0.0, 0.0]> : tensor<2xf32>}> : () -> tensor<2xf32>
  %y = "tfl.depthwise_conv_2d"(%x, %w, %b) <{padding = "VALID", stride_w = 1 : i32, stride_h = 1 : i32, depth_multiplier = 1 : i32}> : (tensor<1x2x2x2xf32>, tensor<1x1x2x2xf32>, tensor<2xf32>) -> tensor<1x2x2x2xf32>
  func.return %y : tensor<1x2x2x2xf32>
}

// -----

// Fully connected: per channel along dim 0, asymmetric input quantization switched on.
// CHECK-LABEL: func.func @fully_connected
// CHECK:      %[[W:.*]] = "tfl.const"() <{value = dense<{{\[\[}}64, -127, 32, 16], [32, 64, -127, 95]]> : tensor<2x4xi8>}> {names = ["w"]{{(, tflquant.sqnr = [^}]* : f64)?}}} : () -> tensor<2x4x!quant.uniform<i8<-127:127>:f32:0, {0.015748031, 0.0031496063}>>
// CHECK:      "tfl.fully_connected"(%x, %[[W]], %{{.*}}) <{fused_activation_function = "RELU", asymmetric_quantize_inputs = true}> {names = ["y"]}
// TENSOR-LABEL: func.func @fully_connected
// TENSOR:     "tfl.fully_connected"({{.*}}) <{fused_activation_function = "RELU", asymmetric_quantize_inputs = true}> {{.*}} : (tensor<1x4xf32>, tensor<2x4x!quant.uniform<i8<-127:127>:f32, 0.015748031>>, tensor<2xf32>) -> tensor<1x2xf32>
func.func @fully_connected(%x: tensor<1x4xf32>) -> tensor<1x2xf32> {
  %w = "tfl.const"() <{value = dense<[[1.0, -2.0, 0.5, 0.25], [0.1, 0.2, -0.4, 0.3]]> : tensor<2x4xf32>}> {names = ["w"]} : () -> tensor<2x4xf32>
  %b = "tfl.const"() <{value = dense<[1.0, 2.0]> : tensor<2xf32>}> {names = ["b"]} : () -> tensor<2xf32>
  %y = "tfl.fully_connected"(%x, %w, %b) <{fused_activation_function = "RELU"}> {names = ["y"]} : (tensor<1x4xf32>, tensor<2x4xf32>, tensor<2xf32>) -> tensor<1x2xf32>
  func.return %y : tensor<1x2xf32>
}

// -----

// Below the threshold a weight stays float (3 elements < 4).
// CHECK-LABEL: func.func @small
// CHECK-NOT:  !quant.uniform
// CHECK:      "tfl.fully_connected"(%x, %{{.*}}, %{{.*}}) <{fused_activation_function = "NONE"}> : (tensor<1x3xf32>, tensor<1x3xf32>, none) -> tensor<1x1xf32>
func.func @small(%x: tensor<1x3xf32>) -> tensor<1x1xf32> {
  %w = "tfl.const"() <{value = dense<[[1.0, 2.0, 3.0]]> : tensor<1x3xf32>}> : () -> tensor<1x3xf32>
  %n = "tfl.no_value"() : () -> none
  %y = "tfl.fully_connected"(%x, %w, %n) <{fused_activation_function = "NONE"}> : (tensor<1x3xf32>, tensor<1x3xf32>, none) -> tensor<1x1xf32>
  func.return %y : tensor<1x1xf32>
}

// -----

// Batch matmul: a constant right-hand side is int8 per tensor (hybrid, asymmetric inputs);
// a constant left-hand side has no hybrid kernel (the converter keeps it float too).
// CHECK-LABEL: func.func @batch_matmul
// CHECK:      %[[L:.*]] = "tfl.const"() {{.*}} {names = ["lhs"]{{(, tflquant.sqnr = [^}]* : f64)?}}} : () -> tensor<2x2xf32>
// CHECK:      %[[R:.*]] = "tfl.const"() <{value = dense<{{\[\[}}127, -127], [64, 0]]> : tensor<2x2xi8>}> {names = ["rhs"]{{(, tflquant.sqnr = [^}]* : f64)?}}} : () -> tensor<2x2x!quant.uniform<i8<-127:127>:f32, 0.015748031>>
// CHECK:      "tfl.batch_matmul"(%x, %[[R]]) <{asymmetric_quantize_inputs = true}>
// CHECK:      "tfl.batch_matmul"(%[[L]], %x)
// CHECK-NOT:  asymmetric_quantize_inputs
// CHECK-NOT:  tfl.dequantize
func.func @batch_matmul(%x: tensor<2x2xf32>) -> (tensor<2x2xf32>, tensor<2x2xf32>) {
  %l = "tfl.const"() <{value = dense<[[4.0, 1.0], [2.0, 3.0]]> : tensor<2x2xf32>}> {names = ["lhs"]} : () -> tensor<2x2xf32>
  %r = "tfl.const"() <{value = dense<[[2.0, -2.0], [1.0, 0.0]]> : tensor<2x2xf32>}> {names = ["rhs"]} : () -> tensor<2x2xf32>
  %a = "tfl.batch_matmul"(%x, %r) : (tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x2xf32>
  %b = "tfl.batch_matmul"(%l, %x) : (tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x2xf32>
  func.return %a, %b : tensor<2x2xf32>, tensor<2x2xf32>
}

// -----

// Transpose conv: per channel along dim 0 (output channels), hybrid.
// CHECK-LABEL: func.func @transpose_conv
// CHECK:      %[[W:.*]] = "tfl.const"() {{.*}} : () -> tensor<2x1x1x2x!quant.uniform<i8<-127:127>:f32:0, {0.015748031, 0.023622047}>>
// CHECK:      "tfl.transpose_conv"(%{{.*}}, %[[W]], %x, %{{.*}})
// CHECK-NOT:  tfl.dequantize
func.func @transpose_conv(%x: tensor<1x2x2x2xf32>) -> tensor<1x2x2x2xf32> {
  %s = "tfl.const"() <{value = dense<[1, 2, 2, 2]> : tensor<4xi32>}> : () -> tensor<4xi32>
  %w = "tfl.const"() <{value = dense<[[[[1.0, 2.0]]], [[[3.0, -1.0]]]]> : tensor<2x1x1x2xf32>}> : () -> tensor<2x1x1x2xf32>
  %n = "tfl.no_value"() : () -> none
  %y = "tfl.transpose_conv"(%s, %w, %x, %n) <{padding = "SAME", stride_w = 1 : i32, stride_h = 1 : i32}> : (tensor<4xi32>, tensor<2x1x1x2xf32>, tensor<1x2x2x2xf32>, none) -> tensor<1x2x2x2xf32>
  func.return %y : tensor<1x2x2x2xf32>
}

// -----

// A weight shared with an op that has no hybrid kernel: that reader gets one DEQUANTIZE.
// CHECK-LABEL: func.func @shared
// CHECK:      %[[W:.*]] = "tfl.const"() {{.*}} {names = ["w"]{{(, tflquant.sqnr = [^}]* : f64)?}}} : () -> tensor<2x2x!quant.uniform<i8<-127:127>:f32:0, {0.031496063, 0.023622047}>>
// CHECK-NEXT: %[[D:.*]] = "tfl.dequantize"(%[[W]]) {names = ["w_dequantize"]}
// CHECK:      "tfl.fully_connected"(%x, %[[W]], %{{.*}})
// CHECK:      "tfl.add"(%x, %[[D]])
// CHECK-NOT:  tfl.dequantize
func.func @shared(%x: tensor<2x2xf32>) -> (tensor<2x2xf32>, tensor<2x2xf32>) {
  %w = "tfl.const"() <{value = dense<[[4.0, 1.0], [2.0, 3.0]]> : tensor<2x2xf32>}> {names = ["w"]} : () -> tensor<2x2xf32>
  %n = "tfl.no_value"() : () -> none
  %a = "tfl.fully_connected"(%x, %w, %n) : (tensor<2x2xf32>, tensor<2x2xf32>, none) -> tensor<2x2xf32>
  %b = "tfl.add"(%x, %w) <{fused_activation_function = "NONE"}> : (tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x2xf32>
  func.return %a, %b : tensor<2x2xf32>, tensor<2x2xf32>
}

// -----

// Left alone: a weight that is also a model output, one also read by an opaque (custom)
// op, and ops without weights to quantize.
// CHECK-LABEL: func.func @untouched
// CHECK-NOT:  !quant.uniform
// CHECK-NOT:  tfl.dequantize
func.func @untouched(%x: tensor<2x2xf32>) -> (tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>) {
  %w = "tfl.const"() <{value = dense<[[4.0, 1.0], [2.0, 3.0]]> : tensor<2x2xf32>}> : () -> tensor<2x2xf32>
  %n = "tfl.no_value"() : () -> none
  %a = "tfl.fully_connected"(%x, %w, %n) : (tensor<2x2xf32>, tensor<2x2xf32>, none) -> tensor<2x2xf32>
  %c = "tfl.const"() <{value = dense<[[4.0, 1.0], [2.0, 3.0]]> : tensor<2x2xf32>}> : () -> tensor<2x2xf32>
  %b = "tfl.mul"(%x, %c) <{fused_activation_function = "NONE"}> : (tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x2xf32>
  %o = "tfl.const"() <{value = dense<[[4.0, 1.0], [2.0, 3.0]]> : tensor<2x2xf32>}> : () -> tensor<2x2xf32>
  %d = "tfl.fully_connected"(%x, %o, %n) : (tensor<2x2xf32>, tensor<2x2xf32>, none) -> tensor<2x2xf32>
  %e = "tfl.opaque"(%o) <{code = 32 : i32, version = 1 : i32, custom_code = "MyCustomOp"}> : (tensor<2x2xf32>) -> tensor<2x2xf32>
  %f = "tfl.add"(%d, %e) <{fused_activation_function = "NONE"}> : (tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x2xf32>
  func.return %a, %b, %w, %f : tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>
}

// -----

// A weight already stored as fp16 behind a DEQUANTIZE is quantized from its fp16 values;
// the fp16 constant and its DEQUANTIZE go away.
// CHECK-LABEL: func.func @from_fp16
// CHECK-NOT:  f16
// CHECK:      %[[W:.*]] = "tfl.const"() <{value = dense<{{\[\[}}127, 32], [85, 127]]> : tensor<2x2xi8>}> {names = ["w16"]{{(, tflquant.sqnr = [^}]* : f64)?}}} : () -> tensor<2x2x!quant.uniform<i8<-127:127>:f32:0, {0.031496063, 0.023622047}>>
// CHECK:      "tfl.fully_connected"(%x, %[[W]], %{{.*}}) <{asymmetric_quantize_inputs = true}>
// CHECK-NOT:  f16
func.func @from_fp16(%x: tensor<2x2xf32>) -> tensor<2x2xf32> {
  %h = "tfl.const"() <{value = dense<[[4.0, 1.0], [2.0, 3.0]]> : tensor<2x2xf16>}> {names = ["w16"]} : () -> tensor<2x2xf16>
  %w = "tfl.dequantize"(%h) {names = ["w"]} : (tensor<2x2xf16>) -> tensor<2x2xf32>
  %n = "tfl.no_value"() : () -> none
  %a = "tfl.fully_connected"(%x, %w, %n) : (tensor<2x2xf32>, tensor<2x2xf32>, none) -> tensor<2x2xf32>
  func.return %a : tensor<2x2xf32>
}

// -----

// LSTM: all weights int8 per tensor, or none (its hybrid kernel wants every weight int8).
// CHECK-LABEL: func.func @lstm
// CHECK-COUNT-8: "tfl.const"() <{value = dense<{{.*}}> : tensor<2x2xi8>}> {{.*}} -> tensor<2x2x!quant.uniform<i8<-127:127>:f32, {{.*}}>>
// CHECK:      "tfl.unidirectional_sequence_lstm"
// CHECK-SAME: asymmetric_quantize_inputs = true
func.func @lstm(%x: tensor<1x1x2xf32>) -> tensor<1x1x2xf32> {
  %w = "tfl.const"() <{value = dense<[[0.5, -1.0], [0.25, 2.0]]> : tensor<2x2xf32>}> : () -> tensor<2x2xf32>
  %w1 = "tfl.const"() <{value = dense<[[0.5, -1.0], [0.25, 2.0]]> : tensor<2x2xf32>}> : () -> tensor<2x2xf32>
  %w2 = "tfl.const"() <{value = dense<[[0.5, -1.0], [0.25, 2.0]]> : tensor<2x2xf32>}> : () -> tensor<2x2xf32>
  %w3 = "tfl.const"() <{value = dense<[[0.5, -1.0], [0.25, 2.0]]> : tensor<2x2xf32>}> : () -> tensor<2x2xf32>
  %r = "tfl.const"() <{value = dense<[[0.5, -1.0], [0.25, 3.0]]> : tensor<2x2xf32>}> : () -> tensor<2x2xf32>
  %r1 = "tfl.const"() <{value = dense<[[0.5, -1.0], [0.25, 3.0]]> : tensor<2x2xf32>}> : () -> tensor<2x2xf32>
  %r2 = "tfl.const"() <{value = dense<[[0.5, -1.0], [0.25, 3.0]]> : tensor<2x2xf32>}> : () -> tensor<2x2xf32>
  %r3 = "tfl.const"() <{value = dense<[[0.5, -1.0], [0.25, 3.0]]> : tensor<2x2xf32>}> : () -> tensor<2x2xf32>
  %b = "tfl.const"() <{value = dense<[0.0, 1.0]> : tensor<2xf32>}> : () -> tensor<2xf32>
  %n = "tfl.no_value"() : () -> none
  %h = "tfl.variable"() : () -> tensor<1x2xf32>
  %c = "tfl.variable"() : () -> tensor<1x2xf32>
  %y = "tfl.unidirectional_sequence_lstm"(%x, %w, %w1, %w2, %w3, %r, %r1, %r2, %r3, %n, %n, %n, %b, %b, %b, %b, %n, %n, %h, %c, %n, %n, %n, %n) <{fused_activation_function = "TANH", time_major = false}> : (tensor<1x1x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, none, none, none, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, none, none, tensor<1x2xf32>, tensor<1x2xf32>, none, none, none, none) -> tensor<1x1x2xf32>
  func.return %y : tensor<1x1x2xf32>
}

// -----

// An LSTM with a weight under the threshold stays entirely float.
// CHECK-LABEL: func.func @lstm_small
// CHECK-NOT:  !quant.uniform
// CHECK:      "tfl.unidirectional_sequence_lstm"
// CHECK-NOT:  asymmetric_quantize_inputs
func.func @lstm_small(%x: tensor<1x1x1xf32>) -> tensor<1x1x2xf32> {
  %w = "tfl.const"() <{value = dense<[[0.5, -1.0], [0.25, 2.0]]> : tensor<2x2xf32>}> : () -> tensor<2x2xf32>
  %s = "tfl.const"() <{value = dense<[[0.5], [0.25]]> : tensor<2x1xf32>}> : () -> tensor<2x1xf32>
  %b = "tfl.const"() <{value = dense<[0.0, 1.0]> : tensor<2xf32>}> : () -> tensor<2xf32>
  %n = "tfl.no_value"() : () -> none
  %h = "tfl.variable"() : () -> tensor<1x2xf32>
  %c = "tfl.variable"() : () -> tensor<1x2xf32>
  %y = "tfl.unidirectional_sequence_lstm"(%x, %s, %s, %s, %s, %w, %w, %w, %w, %n, %n, %n, %b, %b, %b, %b, %n, %n, %h, %c, %n, %n, %n, %n) <{fused_activation_function = "TANH"}> : (tensor<1x1x1xf32>, tensor<2x1xf32>, tensor<2x1xf32>, tensor<2x1xf32>, tensor<2x1xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, none, none, none, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, none, none, tensor<1x2xf32>, tensor<1x2xf32>, none, none, none, none) -> tensor<1x1x2xf32>
  func.return %y : tensor<1x1x2xf32>
}

// -----

// An embedding table tied to the output projection: the projection (hybrid kernel) decides
// the layout, per channel along dim 0, and the GATHER reads the table through a DEQUANTIZE.
// CHECK-LABEL: func.func @tied_embedding
// CHECK:      %[[T:.*]] = "tfl.const"() {{.*}} {names = ["tied"]{{(, tflquant.sqnr = [^}]* : f64)?}}} : () -> tensor<2x2x!quant.uniform<i8<-127:127>:f32:0, {0.031496063, 0.015748031}>>
// CHECK-NEXT: %[[TD:.*]] = "tfl.dequantize"(%[[T]])
// CHECK:      "tfl.gather"(%[[TD]], %ids)
// CHECK:      "tfl.fully_connected"(%{{.*}}, %[[T]], %{{.*}}) <{asymmetric_quantize_inputs = true}>
func.func @tied_embedding(%ids: tensor<3xi32>, %h: tensor<3x2xf32>) -> (tensor<3x2xf32>, tensor<3x2xf32>) {
  %t = "tfl.const"() <{value = dense<[[4.0, 0.0], [-2.0, 1.0]]> : tensor<2x2xf32>}> {names = ["tied"]} : () -> tensor<2x2xf32>
  %g = "tfl.gather"(%t, %ids) <{axis = 0 : i32}> : (tensor<2x2xf32>, tensor<3xi32>) -> tensor<3x2xf32>
  %n = "tfl.no_value"() : () -> none
  %y = "tfl.fully_connected"(%h, %t, %n) : (tensor<3x2xf32>, tensor<2x2xf32>, none) -> tensor<3x2xf32>
  func.return %g, %y : tensor<3x2xf32>, tensor<3x2xf32>
}
