// RUN: echo '{"input": [-1.0, 1.0], "add": {"min": -2.0, "max": 3.0}, "relu": [0.0, 3.0], "w": [0.0, 1.0], "tok": [0.0, 5.0], "deq": [0.0, 1.0]}' > %t.json
// RUN: tflquant-opt %s -p 'annotate-calibration{stats-file="%t.json"}' | filecheck %s
// RUN: tflquant-opt %s -p 'annotate-calibration{stats-file="%t.json"},annotate-calibration{stats-file="%t.json"}' | filecheck %s
// RUN: tflquant-opt %s -p 'annotate-calibration' | filecheck %s --check-prefix=NOSTATS

// Every f32 argument and activation with statistics gets one quant.stats op and all of its
// uses (func.return included) read the annotated value; integer arguments, constants and
// DEQUANTIZE of constants (weights) do not. A second run adds nothing.

// CHECK-LABEL: func.func @main
// CHECK-NEXT:    %[[IN:.*]] = quant.stats %arg0, <-1.0, 1.0> : tensor<1x4xf32>
// CHECK-NOT:     quant.stats %arg1
// CHECK:         %[[W:.*]] = "tfl.const"()
// CHECK-NOT:     quant.stats %[[W]]
// CHECK:         %[[DQ:.*]] = "tfl.dequantize"
// CHECK-NOT:     quant.stats %[[DQ]]
// CHECK:         %[[ADD:.*]] = "tfl.add"(%[[IN]], %[[W]])
// CHECK-NEXT:    %[[ADDS:.*]] = quant.stats %[[ADD]], <-2.0, 3.0> : tensor<1x4xf32>
// CHECK-NEXT:    %[[RELU:.*]] = "tfl.relu"(%[[ADDS]])
// CHECK-NEXT:    %[[RELUS:.*]] = quant.stats %[[RELU]], <0.0, 3.0> : tensor<1x4xf32>
// CHECK-NEXT:    %[[NOSTAT:.*]] = "tfl.mul"(%[[RELUS]], %[[DQ]])
// CHECK-NEXT:    func.return %[[RELUS]], %[[NOSTAT]]
// CHECK-NOT:     quant.stats

// NOSTATS-NOT: quant.stats

builtin.module {
  func.func @main(%arg0: tensor<1x4xf32> {tfl.name = "input"}, %arg1: tensor<1x4xi32> {tfl.name = "tok"}) -> (tensor<1x4xf32>, tensor<1x4xf32>) {
    %w = "tfl.const"() <{value = dense<1.0> : tensor<1x4xf32>}> {names = ["w"]} : () -> tensor<1x4xf32>
    %h = "tfl.const"() <{value = dense<1.0> : tensor<1x4xf16>}> {names = ["h"]} : () -> tensor<1x4xf16>
    %d = "tfl.dequantize"(%h) {names = ["deq"]} : (tensor<1x4xf16>) -> tensor<1x4xf32>
    %0 = "tfl.add"(%arg0, %w) <{fused_activation_function = "NONE"}> {names = ["add"]} : (tensor<1x4xf32>, tensor<1x4xf32>) -> tensor<1x4xf32>
    %1 = "tfl.relu"(%0) {names = ["relu"]} : (tensor<1x4xf32>) -> tensor<1x4xf32>
    %2 = "tfl.mul"(%1, %d) <{fused_activation_function = "NONE"}> {names = ["no_stats"]} : (tensor<1x4xf32>, tensor<1x4xf32>) -> tensor<1x4xf32>
    func.return %1, %2 : tensor<1x4xf32>, tensor<1x4xf32>
  }
}
