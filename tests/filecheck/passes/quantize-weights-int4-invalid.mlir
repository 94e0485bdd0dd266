// RUN: tflquant-opt %s --verify-diagnostics -p 'quantize-weights{min-elements=4 bits=4 granularity=block block-size=64}' | filecheck %s --check-prefix=BLOCK
// RUN: tflquant-opt %s --verify-diagnostics -p 'quantize-weights{min-elements=4 op-bits="nosuch=8"}' | filecheck %s --check-prefix=NAME
// RUN: tflquant-opt %s --verify-diagnostics -p 'quantize-weights{min-elements=4 op-bits="fc=4/block/256"}' | filecheck %s --check-prefix=OVR
// RUN: not tflquant-opt %s -p 'quantize-weights{bits=3}' 2>&1 | filecheck %s --check-prefix=BITS
// RUN: not tflquant-opt %s -p 'quantize-weights{bits=8 granularity=block}' 2>&1 | filecheck %s --check-prefix=BLOCK8

// BLOCK: block size 64 does not divide the last dimension (32) of weight tensor 'w' of FULLY_CONNECTED 'fc': choose a block size that divides it, or give that op another granularity (op-bits NAME=4/channel)
// NAME: op-bits names 'nosuch', which is no op with a quantizable weight
// OVR: block size 256 does not divide the last dimension (32)
// BITS: weight bits must be 8, 4 or 2, got 3
// BLOCK8: block granularity takes 4-bit weights
func.func @fc(%x: tensor<1x32xf32>) -> tensor<1x2xf32> {
  %w = "tfl.const"() <{value = dense<0.5> : tensor<2x32xf32>}> {names = ["w"]} : () -> tensor<2x32xf32>
  %n = tfl.no_value
  %y = "tfl.fully_connected"(%x, %w, %n) {names = ["fc"]} : (tensor<1x32xf32>, tensor<2x32xf32>, none) -> tensor<1x2xf32>
  func.return %y : tensor<1x2xf32>
}
