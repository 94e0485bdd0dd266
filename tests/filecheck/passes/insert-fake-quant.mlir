// RUN: tflquant-opt %s --split-input-file -p insert-fake-quant | filecheck %s
// RUN: tflquant-opt %s --split-input-file -p 'insert-fake-quant{activations=int16 per-channel=false}' | filecheck %s --check-prefix=I16
// RUN: tflquant-opt %s --split-input-file -p 'insert-fake-quant{activations=int16 int16-headroom=1.0}' | filecheck %s --check-prefix=EXACT

// Calibration statistics become fake quantization (qcast/dcast): int8 asymmetric
// activations with the range widened to contain 0, int16 symmetric (zero point 0);
// weights int8 symmetric [-127, 127], per channel (conv: dim 0) unless per-channel=false;
// other constants like activations; biases stay float (quantize-bias handles them).

// [-1, 3]: scale 4/255, zero point round(-128 + 1/(4/255)) = -64; int16: 3 * 1.3 / 32767
// (int16 ranges get 30% headroom; constants are exact: their own range, no headroom).
// CHECK-LABEL: func.func @conv
// CHECK:      %[[Q:.*]] = quant.qcast %x : tensor<1x3x3x2xf32> -> tensor<1x3x3x2x!quant.uniform<i8:f32, 0.015686275:-64>>
// CHECK-NEXT: %[[X:.*]] = quant.dcast %[[Q]]
// CHECK:      %[[B:.*]] = "tfl.const"() {{.*}} {names = ["b"]} : () -> tensor<2xf32>
// CHECK-NEXT: %[[WQ:.*]] = quant.qcast %w : tensor<2x1x1x2xf32> -> tensor<2x1x1x2x!quant.uniform<i8<-127:127>:f32:0, {0.031496063, 0.003937008}>>
// CHECK-NEXT: %[[W:.*]] = quant.dcast %[[WQ]]
// CHECK-NEXT: %[[Y:.*]] = "tfl.conv_2d"(%[[X]], %[[W]], %[[B]])
// CHECK-NEXT: %[[YQ:.*]] = quant.qcast %[[Y]] : tensor<1x3x3x2xf32> -> tensor<1x3x3x2x!quant.uniform<i8:f32, 0.015686275:-1>>
// CHECK-NEXT: %[[YD:.*]] = quant.dcast %[[YQ]]
// CHECK-NEXT: func.return %[[YD]]
// CHECK-NOT:  quant.stats
// I16-LABEL: func.func @conv
// I16:       quant.qcast %x : tensor<1x3x3x2xf32> -> tensor<1x3x3x2x!quant.uniform<i16:f32, 0.00011902219>>
// I16:       quant.qcast %w : tensor<2x1x1x2xf32> -> tensor<2x1x1x2x!quant.uniform<i8<-127:127>:f32, 0.031496063>>
// I16:       tensor<1x3x3x2x!quant.uniform<i16:f32, 7.934812e-05>>
// EXACT-LABEL: func.func @conv
// EXACT:       quant.qcast %x : tensor<1x3x3x2xf32> -> tensor<1x3x3x2x!quant.uniform<i16:f32, 9.155553e-05>>
func.func @conv(%x: tensor<1x3x3x2xf32> {tfl.name = "x"}) -> tensor<1x3x3x2xf32> {
  %xs = quant.stats %x, <-1.0, 3.0> : tensor<1x3x3x2xf32>
  %w = "tfl.const"() <{value = dense<[[[[4.0, -2.0]]], [[[-0.5, 0.25]]]]> : tensor<2x1x1x2xf32>}> {names = ["w"]} : () -> tensor<2x1x1x2xf32>
  %b = "tfl.const"() <{value = dense<[0.5, -0.5]> : tensor<2xf32>}> {names = ["b"]} : () -> tensor<2xf32>
  %y = "tfl.conv_2d"(%xs, %w, %b) <{padding = "SAME", stride_w = 1 : i32, stride_h = 1 : i32}> {names = ["conv"]} : (tensor<1x3x3x2xf32>, tensor<2x1x1x2xf32>, tensor<2xf32>) -> tensor<1x3x3x2xf32>
  %ys = quant.stats %y, <-2.0, 2.0> : tensor<1x3x3x2xf32>
  func.return %ys : tensor<1x3x3x2xf32>
}


// -----

// A constant ADD operand is quantized like an activation from its own range [-0.5, 2];
// NEG (no integer kernel) becomes MUL by a constant -1.
// CHECK-LABEL: func.func @add_const
// CHECK:      %[[KQ:.*]] = quant.qcast %k : tensor<4xf32> -> tensor<4x!quant.uniform<i8:f32, 0.009803922:-77>>
// CHECK-NEXT: %[[K:.*]] = quant.dcast %[[KQ]]
// CHECK-NEXT: "tfl.add"(%{{.*}}, %[[K]])
// CHECK:      %[[M:.*]] = "tfl.const"() <{value = dense<-1.000000e+00> : tensor<f32>}> {names = ["neg/minus_one"]}
// CHECK-NEXT: %[[MQ:.*]] = quant.qcast %[[M]] : tensor<f32> -> tensor<!quant.uniform<i8:f32, 0.003921569:127>>
// CHECK-NEXT: %[[MD:.*]] = quant.dcast %[[MQ]]
// CHECK-NEXT: %n = "tfl.mul"(%ys, %[[MD]]) {names = ["neg"]}
// CHECK-NOT:  tfl.neg
// I16-LABEL: func.func @add_const
// I16:       quant.qcast %k : tensor<4xf32> -> tensor<4x!quant.uniform<i16:f32, 6.103702e-05>>

func.func @add_const(%x: tensor<1x4xf32> {tfl.name = "x"}) -> tensor<1x4xf32> {
  %xs = quant.stats %x, <0.0, 1.0> : tensor<1x4xf32>
  %k = "tfl.const"() <{value = dense<[0.5, 1.0, -0.5, 2.0]> : tensor<4xf32>}> {names = ["k"]} : () -> tensor<4xf32>
  %y = "tfl.add"(%xs, %k) <{fused_activation_function = "NONE"}> {names = ["add"]} : (tensor<1x4xf32>, tensor<4xf32>) -> tensor<1x4xf32>
  %ys = quant.stats %y, <0.0, 3.0> : tensor<1x4xf32>
  %n = "tfl.neg"(%ys) {names = ["neg"]} : (tensor<1x4xf32>) -> tensor<1x4xf32>
  %ns = quant.stats %n, <-3.0, 0.0> : tensor<1x4xf32>
  func.return %ns : tensor<1x4xf32>
}


// -----

// BATCH_MATMUL's constant operand: int8 symmetric per tensor (its kernel has no per-channel
// path); in 16x8 it must be int16 like the other operand. An op without an integer kernel
// (CUMSUM) keeps its constants float.
// CHECK-LABEL: func.func @matmul
// CHECK:      quant.qcast %w : tensor<3x2xf32> -> tensor<3x2x!quant.uniform<i8<-127:127>:f32, 0.015748031>>
// CHECK:      %c = "tfl.const"()
// CHECK-NEXT: "tfl.cumsum"(%ys, %c)
// I16-LABEL: func.func @matmul
// I16:       quant.qcast %w : tensor<3x2xf32> -> tensor<3x2x!quant.uniform<i16:f32, 6.103702e-05>>

func.func @matmul(%x: tensor<2x3xf32> {tfl.name = "x"}) -> tensor<2x2xf32> {
  %xs = quant.stats %x, <-1.0, 1.0> : tensor<2x3xf32>
  %w = "tfl.const"() <{value = dense<[[1.0, -2.0], [0.5, 0.0], [0.25, 1.0]]> : tensor<3x2xf32>}> {names = ["w"]} : () -> tensor<3x2xf32>
  %y = "tfl.batch_matmul"(%xs, %w) {names = ["mm"]} : (tensor<2x3xf32>, tensor<3x2xf32>) -> tensor<2x2xf32>
  %ys = quant.stats %y, <-2.0, 2.0> : tensor<2x2xf32>
  %c = "tfl.const"() <{value = dense<1.0> : tensor<2x2xf32>}> {names = ["c"]} : () -> tensor<2x2xf32>
  %z = "tfl.cumsum"(%ys, %c) {names = ["cs"]} : (tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x2xf32>
  func.return %z : tensor<2x2xf32>
}

// -----

// Weights stored as fp16 behind a DEQUANTIZE (a float16-converted model) are read as their
// float32 values: the filter is fake-quantized, the bias becomes a float32 constant for
// quantize-bias, and the DEQUANTIZE ops disappear.
// CHECK-LABEL: func.func @fp16_weights
// CHECK:      %[[W:.*]] = "tfl.const"() <{value = dense<{{\[\[\[\[}}1.000000e+00]]], {{\[\[\[}}-5.000000e-01]]]]> : tensor<2x1x1x1xf32>}> {names = ["w16"]}
// CHECK:      %[[B:.*]] = "tfl.const"() <{value = dense<[2.500000e-01, 0.000000e+00]> : tensor<2xf32>}> {names = ["b16"]}
// CHECK:      quant.qcast %[[W]] : tensor<2x1x1x1xf32> -> tensor<2x1x1x1x!quant.uniform<i8<-127:127>:f32:0, {0.007874016, 0.003937008}>>
// CHECK:      "tfl.conv_2d"(%{{.*}}, %{{.*}}, %[[B]])
// CHECK-NOT:  tfl.dequantize
func.func @fp16_weights(%x: tensor<1x1x1x1xf32> {tfl.name = "x"}) -> tensor<1x1x1x2xf32> {
  %xs = quant.stats %x, <-1.0, 1.0> : tensor<1x1x1x1xf32>
  %w16 = "tfl.const"() <{value = dense<[[[[1.0]]], [[[-0.5]]]]> : tensor<2x1x1x1xf16>}> {names = ["w16"]} : () -> tensor<2x1x1x1xf16>
  %w = "tfl.dequantize"(%w16) {names = ["w"]} : (tensor<2x1x1x1xf16>) -> tensor<2x1x1x1xf32>
  %b16 = "tfl.const"() <{value = dense<[0.25, 0.0]> : tensor<2xf16>}> {names = ["b16"]} : () -> tensor<2xf16>
  %b = "tfl.dequantize"(%b16) {names = ["b"]} : (tensor<2xf16>) -> tensor<2xf32>
  %y = "tfl.conv_2d"(%xs, %w, %b) <{padding = "VALID", stride_w = 1 : i32, stride_h = 1 : i32}> {names = ["conv"]} : (tensor<1x1x1x1xf32>, tensor<2x1x1x1xf32>, tensor<2xf32>) -> tensor<1x1x1x2xf32>
  %ys = quant.stats %y, <-1.0, 1.0> : tensor<1x1x1x2xf32>
  func.return %ys : tensor<1x1x1x2xf32>
}

// -----

// SQUARED_DIFFERENCE has an int8 kernel but no int16 one: in 16x8 it becomes
// MUL(d, d) with d = SUB(x, y) fake-quantized over [x_min - y_max, x_max - y_min]
// ([-1.3, 1.3] - [-0.65, 0.65] -> [-1.95, 1.95]).
// CHECK-LABEL: func.func @squared_difference
// CHECK:     "tfl.squared_difference"
// I16-LABEL: func.func @squared_difference
// I16:       %[[D:.*]] = "tfl.sub"(%xs, %ys) {names = ["sqd/diff"]}
// I16-NEXT:  %[[DQ:.*]] = quant.qcast %[[D]] : tensor<1x4xf32> -> tensor<1x4x!quant.uniform<i16:f32, 5.9512302e-05>>
// I16-NEXT:  %[[DD:.*]] = quant.dcast %[[DQ]]
// I16-NEXT:  %sq = "tfl.mul"(%[[DD]], %[[DD]]) {names = ["sqd"]}
// I16-NOT:   tfl.squared_difference
func.func @squared_difference(%x: tensor<1x4xf32> {tfl.name = "x"}, %y: tensor<1x4xf32> {tfl.name = "y"}) -> tensor<1x4xf32> {
  %xs = quant.stats %x, <-1.0, 1.0> : tensor<1x4xf32>
  %ys = quant.stats %y, <-0.5, 0.5> : tensor<1x4xf32>
  %sq = "tfl.squared_difference"(%xs, %ys) {names = ["sqd"]} : (tensor<1x4xf32>, tensor<1x4xf32>) -> tensor<1x4xf32>
  %sqs = quant.stats %sq, <0.0, 2.25> : tensor<1x4xf32>
  func.return %sqs : tensor<1x4xf32>
}
