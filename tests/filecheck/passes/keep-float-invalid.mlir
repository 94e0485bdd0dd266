// RUN: tflquant-opt %s --split-input-file --verify-diagnostics -p 'keep-float{ops="RELU","nope"}' | filecheck %s

// A name that matches no output tensor or op type is an error (a typo must not go unnoticed).
// CHECK: keep-float: no op has the output tensor or op type 'nope'; name ops by an output tensor name (tflquant inspect lists them) or a TFLite op type such as SOFTMAX
func.func @main(%x: tensor<1x3xf32> {tfl.name = "x"}) -> tensor<1x3xf32> {
  %r = "tfl.relu"(%x) {names = ["relu"]} : (tensor<1x3xf32>) -> tensor<1x3xf32>
  func.return %r : tensor<1x3xf32>
}
