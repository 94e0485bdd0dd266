// RUN: tflquant-opt %s -p 'keep-float{ops="SOFTMAX","fc out"}' | filecheck %s
// RUN: tflquant-opt %s -p 'keep-float{ops="SOFTMAX","fc out"},keep-float{ops="SOFTMAX","fc out"}' | filecheck %s
// RUN: echo '{"x": [-1.0, 1.0], "fc out": [-2.0, 2.0], "relu": [0.0, 2.0], "probs": [0.0, 1.0]}' > %t.json
// RUN: tflquant-opt %s -p 'keep-float{ops="SOFTMAX","fc out"},annotate-calibration{stats-file="%t.json"},insert-fake-quant,propagate-scales,rewrite-integer,legalize-float-fallback,quantize-bias' | filecheck %s --check-prefix=PIPE

// Ops named by an output tensor name or by op type are marked; the rest is untouched.
// CHECK-LABEL: func.func @main
// CHECK:         "tfl.fully_connected"({{.*}}) {{.*}}names = ["fc out"], tflquant.keep_float, tflquant.fallback_reason = "kept float on request (keep-float)"}
// CHECK:         "tfl.relu"({{.*}}) {names = ["relu"]}
// CHECK:         "tfl.softmax"({{.*}}) {{.*}}names = ["probs"], tflquant.keep_float, tflquant.fallback_reason = "kept float on request (keep-float)"}

// The pipeline leaves the marked ops float between DEQUANTIZE and QUANTIZE (weights float)
// and quantizes the RELU between them.
// PIPE-LABEL: func.func @main
// PIPE:         "tfl.fully_connected"({{.*}}) {{.*}} -> tensor<1x4xf32>
// PIPE:         "tfl.quantize"
// PIPE:         "tfl.relu"({{.*}}) {names = ["relu"]} : (tensor<1x4x!quant.uniform<i8:f32
// PIPE:         "tfl.dequantize"
// PIPE:         "tfl.softmax"({{.*}}) {{.*}} -> tensor<1x4xf32>

func.func @main(%x: tensor<1x3xf32> {tfl.name = "x"}) -> tensor<1x4xf32> {
  %w = "tfl.const"() <{value = dense<[[0.5, -0.25, 1.0], [0.125, 0.75, -0.5], [-1.0, 0.25, 0.5], [0.0, 0.5, 0.25]]> : tensor<4x3xf32>}> {names = ["w"]} : () -> tensor<4x3xf32>
  %b = "tfl.const"() <{value = dense<[0.1, -0.2, 0.3, 0.0]> : tensor<4xf32>}> {names = ["b"]} : () -> tensor<4xf32>
  %y = "tfl.fully_connected"(%x, %w, %b) <{fused_activation_function = "NONE"}> {names = ["fc out"]} : (tensor<1x3xf32>, tensor<4x3xf32>, tensor<4xf32>) -> tensor<1x4xf32>
  %r = "tfl.relu"(%y) {names = ["relu"]} : (tensor<1x4xf32>) -> tensor<1x4xf32>
  %p = "tfl.softmax"(%r) <{beta = 1.0 : f32}> {names = ["probs"]} : (tensor<1x4xf32>) -> tensor<1x4xf32>
  func.return %p : tensor<1x4xf32>
}
