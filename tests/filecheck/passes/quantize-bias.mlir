// RUN: tflquant-opt %s --split-input-file -p insert-fake-quant,propagate-scales,rewrite-integer,legalize-float-fallback,quantize-bias | filecheck %s
// RUN: tflquant-opt %s --split-input-file -p 'insert-fake-quant{activations=int16},propagate-scales,rewrite-integer,legalize-float-fallback,quantize-bias{bias-type=int32}' | filecheck %s --check-prefix=I16

// quantize-bias: int32 biases (int64 where the kernel needs it) with zero point 0 and
// scale input_scale * filter_scale[c], per channel when the filter is.

// CONV_2D's kernel needs a bias: a missing one becomes zeros.
// CHECK-LABEL: func.func @conv_no_bias
// CHECK:      %[[B:.*]] = "tfl.const"() <{value = dense<0> : tensor<2xi32>}> {{.*}} : () -> tensor<2x!quant.uniform<i32:f32:0, {6.175699e-05, 3.0878495e-05}>>
// CHECK-NEXT: "tfl.conv_2d"(%{{.*}}, %{{.*}}, %[[B]])
// CHECK-NOT:  tfl.no_value
// I16-LABEL: func.func @conv_no_bias
// I16:       "tfl.const"() <{value = dense<0> : tensor<2xi32>}> {{.*}} : () -> tensor<2x!quant.uniform<i32:f32:0, {3.1239418e-07, 1.5619709e-07}>>
// An int32 bias on int16 inputs must be marked (the kernel reads an unmarked one as int64).
// I16-NEXT:  "tfl.conv_2d"({{.*}}) <{padding = "SAME", stride_w = 1 : i32, stride_h = 1 : i32, quantized_bias_type = "INT32"}>
func.func @conv_no_bias(%x: tensor<1x2x2x1xf32> {tfl.name = "x"}) -> tensor<1x2x2x2xf32> {
  %xs = quant.stats %x, <-1.0, 1.0> : tensor<1x2x2x1xf32>
  %w = "tfl.const"() <{value = dense<[[[[1.0]]], [[[0.5]]]]> : tensor<2x1x1x1xf32>}> {names = ["w"]} : () -> tensor<2x1x1x1xf32>
  %nb = "tfl.no_value"() : () -> none
  %c = "tfl.conv_2d"(%xs, %w, %nb) <{padding = "SAME", stride_w = 1 : i32, stride_h = 1 : i32}> {names = ["conv"]} : (tensor<1x2x2x1xf32>, tensor<2x1x1x1xf32>, none) -> tensor<1x2x2x2xf32>
  %cs = quant.stats %c, <-1.0, 1.0> : tensor<1x2x2x2xf32>
  func.return %cs : tensor<1x2x2x2xf32>
}


// -----

// 0.25 / (2/255 * 1/127) = 4048; -1.0 / (2/255 * 0.5/127) = -32385. DEPTHWISE_CONV_2D on int16
// takes only an int64 bias, whatever bias-type asks.
// CHECK-LABEL: func.func @depthwise
// CHECK:      "tfl.const"() <{value = dense<[4048, -32385]> : tensor<2xi32>}> {names = ["dw/b"]} : () -> tensor<2x!quant.uniform<i32:f32:0, {6.175699e-05, 3.0878495e-05}>>
// I16-LABEL: func.func @depthwise
// I16:       "tfl.const"() <{value = dense<[800271, -6402168]> : tensor<2xi64>}> {names = ["dw/b"]} : () -> tensor<2x!quant.uniform<i64:f32:0, {3.1239418e-07, 1.5619709e-07}>>

func.func @depthwise(%x: tensor<1x2x2x2xf32> {tfl.name = "x"}) -> tensor<1x2x2x2xf32> {
  %xs = quant.stats %x, <-1.0, 1.0> : tensor<1x2x2x2xf32>
  %w = "tfl.const"() <{value = dense<[[[[1.0, -0.5]]]]> : tensor<1x1x1x2xf32>}> {names = ["dw/w"]} : () -> tensor<1x1x1x2xf32>
  %b = "tfl.const"() <{value = dense<[0.25, -1.0]> : tensor<2xf32>}> {names = ["dw/b"]} : () -> tensor<2xf32>
  %c = "tfl.depthwise_conv_2d"(%xs, %w, %b) <{padding = "SAME", stride_w = 1 : i32, stride_h = 1 : i32, depth_multiplier = 1 : i32}> {names = ["dw"]} : (tensor<1x2x2x2xf32>, tensor<1x1x1x2xf32>, tensor<2xf32>) -> tensor<1x2x2x2xf32>
  %cs = quant.stats %c, <-2.0, 2.0> : tensor<1x2x2x2xf32>
  func.return %cs : tensor<1x2x2x2xf32>
}


// -----

// A bias of 1000 over a tiny input scale would overflow int32: the filter scale of that
// channel is widened (to 1000 / (s_in * 2^30)) and the filter requantized; the other
// channel keeps its scale 1/127.
// CHECK-LABEL: func.func @overflow
// CHECK:      "tfl.const"() <{value = dense<{{\[\[}}0, 0], [64, 127]]> : tensor<2x2xi8>}> {names = ["fc/w"]} : () -> tensor<2x2x!quant.uniform<i8<-127:127>:f32:0, {0.11874374, 0.007874016}>>
// CHECK-NEXT: "tfl.const"() <{value = dense<[1073740765, 16192499]> : tensor<2xi32>}> {names = ["fc/b"]} : () -> tensor<2x!quant.uniform<i32:f32:0, {9.313235e-07, 6.1756985e-08}>>

func.func @overflow(%x: tensor<1x2xf32> {tfl.name = "x"}) -> tensor<1x2xf32> {
  %xs = quant.stats %x, <-0.001, 0.001> : tensor<1x2xf32>
  %w = "tfl.const"() <{value = dense<[[0.001, 0.0], [0.5, 1.0]]> : tensor<2x2xf32>}> {names = ["fc/w"]} : () -> tensor<2x2xf32>
  %b = "tfl.const"() <{value = dense<[1000.0, 1.0]> : tensor<2xf32>}> {names = ["fc/b"]} : () -> tensor<2xf32>
  %y = "tfl.fully_connected"(%xs, %w, %b) {names = ["fc"]} : (tensor<1x2xf32>, tensor<2x2xf32>, tensor<2xf32>) -> tensor<1x2xf32>
  %ys = quant.stats %y, <0.0, 1001.0> : tensor<1x2xf32>
  func.return %ys : tensor<1x2xf32>
}
