// RUN: not tflquant-opt %s -p 'propagate-scales{mode=up}' 2>&1 | filecheck %s --check-prefix=OPTION
// RUN: tflquant-opt %s --verify-diagnostics -p propagate-scales | filecheck %s

// propagate-scales has no options; it works on valid fake-quant IR only.
// OPTION: bad pass pipeline

// A qcast must produce a quantized tensor: rejected before the pass runs.
func.func @bad(%x: tensor<2xf32>) -> tensor<2xf32> {
  %q = quant.qcast %x : tensor<2xf32> -> tensor<2xf32>
  func.return %q : tensor<2xf32>
}
// CHECK: quant.qcast must produce a quantized tensor
