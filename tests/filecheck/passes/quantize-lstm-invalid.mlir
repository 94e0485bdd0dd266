// RUN: not tflquant-opt %s -p 'quantize-lstm{cell-headroom=0.5}' 2>&1 | filecheck %s

// The cell state's power-of-two range may only be widened.
// CHECK: quantize-lstm: cell-headroom must be in [1, 64], got 0.5
func.func @f() {
  func.return
}
