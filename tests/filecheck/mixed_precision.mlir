// RUN: echo '{"x": [-1.0, 1.0], "fc out": [-2.0, 2.0], "relu": [0.0, 2.0], "tanh": [0.0, 1.0], "probs": [0.0, 1.0]}' > %t.json
// RUN: tflquant-opt %s -p 'op-precision{ops="fc out=int16","TANH=int16"}' | filecheck %s --check-prefix=MARK
// RUN: tflquant-opt %s -p 'op-precision{ops="fc out=int16","TANH=int16"},annotate-calibration{stats-file="%t.json"},insert-fake-quant,propagate-scales,rewrite-integer,legalize-float-fallback,quantize-bias{bias-type=int64}' | filecheck %s
// RUN: tflquant-opt %s -p 'op-precision{ops="fc out=int16","TANH=int16"},annotate-calibration{stats-file="%t.json"},insert-fake-quant{requantize-inputs=true},propagate-scales,rewrite-integer,legalize-float-fallback,quantize-bias{bias-type=int64}' | filecheck %s --check-prefix=INPUT
// RUN: tflquant-opt %s -p 'op-precision{ops="SOFTMAX=int16"},annotate-calibration{stats-file="%t.json"},insert-fake-quant{requantize-inputs=true},propagate-scales,rewrite-integer,legalize-float-fallback,quantize-bias{bias-type=int64},set-io-types{type=int8}' | filecheck %s --check-prefix=OUTPUT
// RUN: tflquant-opt %s -p 'op-precision{ops="fc out=int16","TANH=float"},annotate-calibration{stats-file="%t.json"},insert-fake-quant,propagate-scales,rewrite-integer,legalize-float-fallback,quantize-bias{bias-type=int64}' | filecheck %s --check-prefix=FLOAT

// op-precision marks the ops named by output tensor or op type; the others take the mode's.
// MARK:      "tfl.fully_connected"{{.*}}names = ["fc out"], tflquant.precision = "int16"}
// MARK:      "tfl.relu"(%{{.*}}) {names = ["relu"]}
// MARK:      "tfl.tanh"(%{{.*}}) {names = ["tanh"], tflquant.precision = "int16"}

// An int16 FC (its input quantized straight to int16, int64 bias), an int8 RELU, an int16
// TANH (its fixed 1/32768 range), an int8 SOFTMAX: every int8 <-> int16 boundary is a
// requantizing QUANTIZE, named after the tensor it reads.
// CHECK-LABEL: func.func @main
// CHECK:      %[[X:.*]] = "tfl.quantize"(%x) {names = ["x_int16"]} : (tensor<1x3xf32>) -> tensor<1x3x!quant.uniform<i16:f32, 3.967406e-05>>
// CHECK:      %[[B:.*]] = "tfl.const"() {{.*}} -> tensor<4x!quant.uniform<i64:f32:0,
// CHECK:      %[[Y:.*]] = "tfl.fully_connected"(%[[X]], %{{.*}}, %[[B]]) {{.*}} -> tensor<1x4x!quant.uniform<i16:f32, 7.934812e-05>>
// CHECK-NEXT: %[[Y8:.*]] = "tfl.quantize"(%[[Y]]) {names = ["fc out_requantized"]} : (tensor<1x4x!quant.uniform<i16:f32, 7.934812e-05>>) -> tensor<1x4x!quant.uniform<i8:f32, 0.015686275:-1>>
// CHECK-NEXT: %[[R:.*]] = "tfl.relu"(%[[Y8]]) {names = ["relu"]} : (tensor<1x4x!quant.uniform<i8:f32, 0.015686275:-1>>) -> tensor<1x4x!quant.uniform<i8:f32, 0.007843138:-128>>
// CHECK-NEXT: %[[R16:.*]] = "tfl.quantize"(%[[R]]) {names = ["relu_requantized"]} : (tensor<1x4x!quant.uniform<i8:f32, 0.007843138:-128>>) -> tensor<1x4x!quant.uniform<i16:f32, 7.934812e-05>>
// CHECK-NEXT: %[[T:.*]] = "tfl.tanh"(%[[R16]]) {{.*}} -> tensor<1x4x!quant.uniform<i16:f32, 3.0517578e-05>>
// CHECK-NEXT: %[[T8:.*]] = "tfl.quantize"(%[[T]]) {names = ["tanh_requantized"]} : (tensor<1x4x!quant.uniform<i16:f32, 3.0517578e-05>>) -> tensor<1x4x!quant.uniform<i8:f32, 0.003921569:-128>>
// CHECK-NEXT: %[[P:.*]] = "tfl.softmax"(%[[T8]]) {{.*}} -> tensor<1x4x!quant.uniform<i8:f32, 0.00390625:-128>>
// CHECK-NEXT: "tfl.dequantize"(%[[P]]) {names = ["probs"]}

// With requantize-inputs (integer model I/O), a model input read by an int16 op is stored
// at the mode's int8 and requantized, so that set-io-types can make the input int8.
// INPUT-LABEL: func.func @main
// INPUT-NOT:  tflquant.quant_type
// INPUT:      %[[X8:.*]] = "tfl.quantize"(%x) {names = ["x_int8"]} : (tensor<1x3xf32>) -> tensor<1x3x!quant.uniform<i8:f32, 0.007843138:-1>>
// INPUT-NEXT: %[[X16:.*]] = "tfl.quantize"(%[[X8]]) {names = ["x_int8_requantized"]} : ({{.*}}) -> tensor<1x3x!quant.uniform<i16:f32, 3.967406e-05>>
// INPUT:      "tfl.fully_connected"(%[[X16]],

// With integer model I/O, a model output an int16 op computes leaves through a requantizing
// QUANTIZE to the I/O type (its int8 range from the calibration), which takes the output's
// name; the int16 tensor gets the storage suffix.
// OUTPUT-LABEL: func.func @main
// OUTPUT-SAME: -> tensor<1x4x!quant.uniform<i8:f32, 0.003921569:-128>>
// OUTPUT:      %[[P:.*]] = "tfl.softmax"(%{{.*}}) {{.*}}names = ["probs_int16"]{{.*}} -> tensor<1x4x!quant.uniform<i16:f32, 3.0517578e-05>>
// OUTPUT-NEXT: %[[Q:.*]] = "tfl.quantize"(%[[P]]) {names = ["probs"]} : ({{.*}}) -> tensor<1x4x!quant.uniform<i8:f32, 0.003921569:-128>>
// OUTPUT-NEXT: func.return %[[Q]]

// A float region reads DEQUANTIZE and feeds QUANTIZE, as float fallback does (the int8
// RELU still reads the int16 FC through a requantize).
// FLOAT-LABEL: func.func @main
// FLOAT:      %[[Y:.*]] = "tfl.fully_connected"{{.*}} -> tensor<1x4x!quant.uniform<i16:f32, 7.934812e-05>>
// FLOAT-NEXT: %[[Y8:.*]] = "tfl.quantize"(%[[Y]]) {names = ["fc out_requantized"]}
// FLOAT-NEXT: %[[R:.*]] = "tfl.relu"(%[[Y8]])
// FLOAT-NEXT: %[[RF:.*]] = "tfl.dequantize"(%[[R]]) {names = ["relu_dequantized"]}
// FLOAT-NEXT: %[[T:.*]] = "tfl.tanh"(%[[RF]]) {{.*}}tflquant.keep_float{{.*}} : (tensor<1x4xf32>) -> tensor<1x4xf32>
// FLOAT-NEXT: "tfl.quantize"(%[[T]]) {names = ["tanh_int8"]} : (tensor<1x4xf32>) -> tensor<1x4x!quant.uniform<i8:f32, 0.003921569:-128>>

func.func @main(%x: tensor<1x3xf32> {tfl.name = "x"}) -> tensor<1x4xf32> {
  %w = "tfl.const"() <{value = dense<[[0.5, -0.25, 1.0], [0.125, 0.75, -0.5], [-1.0, 0.25, 0.5], [0.0, 0.5, 0.25]]> : tensor<4x3xf32>}> {names = ["w"]} : () -> tensor<4x3xf32>
  %b = "tfl.const"() <{value = dense<[0.1, -0.2, 0.3, 0.0]> : tensor<4xf32>}> {names = ["b"]} : () -> tensor<4xf32>
  %y = "tfl.fully_connected"(%x, %w, %b) <{fused_activation_function = "NONE"}> {names = ["fc out"]} : (tensor<1x3xf32>, tensor<4x3xf32>, tensor<4xf32>) -> tensor<1x4xf32>
  %r = "tfl.relu"(%y) {names = ["relu"]} : (tensor<1x4xf32>) -> tensor<1x4xf32>
  %t = "tfl.tanh"(%r) {names = ["tanh"]} : (tensor<1x4xf32>) -> tensor<1x4xf32>
  %p = "tfl.softmax"(%t) <{beta = 1.0 : f32}> {names = ["probs"]} : (tensor<1x4xf32>) -> tensor<1x4xf32>
  func.return %p : tensor<1x4xf32>
}
