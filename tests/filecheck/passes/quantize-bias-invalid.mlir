// RUN: not tflquant-opt %s -p 'quantize-bias{bias-type=int16}' 2>&1 | filecheck %s

// Only int32 and int64 biases exist in TFLite's integer kernels.
// CHECK: quantize-bias: bias-type must be int32 or int64, got 'int16'
func.func @f() {
  func.return
}
