// RUN: tflquant-opt %s -p 'quantize-weights{min-elements=64 bits=4 granularity=block block-size=32}' | filecheck %s
// RUN: tflquant-opt %s -p 'quantize-weights{min-elements=64 bits=4 granularity=block block-size=32 weight-only=true}' | filecheck %s --check-prefix=WO
// RUN: tflquant-opt %s -p 'quantize-weights{min-elements=4 bits=4 op-bits="head=8"}' | filecheck %s --check-prefix=OVR

// int4 blocks of 32 along the input dimension: FULLY_CONNECTED reads them directly
// (LiteRT's BlockwiseQuantization, fp16 scales); in weight-only mode the blocks are rows
// of a per-channel int4 constant, dequantized and reshaped back; an op-bits override
// gives `head` int8 per channel while `fc` gets the global int4 per channel.
// CHECK-LABEL: func.func @fc
// CHECK:       %[[W:.*]] = "tfl.const"() <{value = dense<7> : tensor<2x64xi8>}> {names = ["w"]{{(, tflquant.sqnr = [^}]* : f64)?}}} : () -> tensor<2x64x!quant.blockwise<i4:f32, 32, dense<7.141110e-02> : tensor<2x2xf16>>>
// CHECK:       "tfl.fully_connected"(%x, %[[W]], %{{.*}}) <{asymmetric_quantize_inputs = true}> {names = ["fc"]}
// WO-LABEL:    func.func @fc
// WO:          %[[R:.*]] = "tfl.const"() <{value = dense<7> : tensor<4x32xi8>}> {names = ["w"]{{(, tflquant.sqnr = [^}]* : f64)?}}} : () -> tensor<4x32x!quant.uniform<i4<-7:7>:f32:0, {0.071428575, 0.071428575, 0.071428575, 0.071428575}>>
// WO-NEXT:     %[[D:.*]] = "tfl.dequantize"(%[[R]]) {names = ["w_dequantize"]} : (tensor<4x32x!quant.uniform<i4<-7:7>:f32:0, {0.071428575, 0.071428575, 0.071428575, 0.071428575}>>) -> tensor<4x32xf32>
// WO-NEXT:     %[[S:.*]] = "tfl.const"() <{value = dense<[2, 64]> : tensor<2xi32>}> {names = ["w_shape"]}
// WO-NEXT:     %[[B:.*]] = "tfl.reshape"(%[[D]], %[[S]]) {names = ["w_blocks"]} : (tensor<4x32xf32>, tensor<2xi32>) -> tensor<2x64xf32>
// WO:          "tfl.fully_connected"(%x, %[[B]], %{{.*}}) {names = ["fc"]}
// OVR-LABEL:   func.func @fc
// OVR:         "tfl.const"() <{value = dense<7> : tensor<2x64xi8>}> {names = ["w"]{{(, tflquant.sqnr = [^}]* : f64)?}}} : () -> tensor<2x64x!quant.uniform<i4<-7:7>:f32:0, {0.071428575, 0.071428575}>>
// OVR:         "tfl.const"() <{value = dense<127> : tensor<2x2xi8>}> {names = ["h"]{{(, tflquant.sqnr = [^}]* : f64)?}}} : () -> tensor<2x2x!quant.uniform<i8<-127:127>:f32:0, {0.003937008, 0.003937008}>>
func.func @fc(%x: tensor<1x64xf32>) -> tensor<1x2xf32> {
  %w = "tfl.const"() <{value = dense<0.5> : tensor<2x64xf32>}> {names = ["w"]} : () -> tensor<2x64xf32>
  %n = tfl.no_value
  %y = "tfl.fully_connected"(%x, %w, %n) {names = ["fc"]} : (tensor<1x64xf32>, tensor<2x64xf32>, none) -> tensor<1x2xf32>
  %h = "tfl.const"() <{value = dense<0.5> : tensor<2x2xf32>}> {names = ["h"]} : () -> tensor<2x2xf32>
  %z = "tfl.fully_connected"(%y, %h, %n) {names = ["head"]} : (tensor<1x2xf32>, tensor<2x2xf32>, none) -> tensor<1x2xf32>
  func.return %z : tensor<1x2xf32>
}
