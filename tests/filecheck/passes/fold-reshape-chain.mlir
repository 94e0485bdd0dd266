// RUN: tflquant-opt %s -p fold-reshape-chain | filecheck %s
// RUN: tflquant-opt %s -p 'fold-reshape-chain{remove-identity=false}' | filecheck %s --check-prefix=KEEP

// A chain of three reshapes becomes one reshape that reads the chain's input; the dead
// reshapes and their shape constants are erased; the result keeps its tensor name.
// CHECK-LABEL: func.func @chain
// CHECK-NEXT:    %[[S:.*]] = "tfl.const"() <{value = dense<[2, 6]> : tensor<2xi32>}>
// CHECK-NEXT:    %[[R:.*]] = "tfl.reshape"(%x, %[[S]]) {names = ["out"]} : (tensor<1x12xf32>, tensor<2xi32>) -> tensor<2x6xf32>
// CHECK-NEXT:    func.return %[[R]] : tensor<2x6xf32>
func.func @chain(%x: tensor<1x12xf32>) -> tensor<2x6xf32> {
  %s1 = "tfl.const"() <{value = dense<[3, 4]> : tensor<2xi32>}> : () -> tensor<2xi32>
  %a = "tfl.reshape"(%x, %s1) {names = ["a"]} : (tensor<1x12xf32>, tensor<2xi32>) -> tensor<3x4xf32>
  %s2 = "tfl.const"() <{value = dense<[12]> : tensor<1xi32>}> : () -> tensor<1xi32>
  %b = "tfl.reshape"(%a, %s2) {names = ["b"]} : (tensor<3x4xf32>, tensor<1xi32>) -> tensor<12xf32>
  %s3 = "tfl.const"() <{value = dense<[2, 6]> : tensor<2xi32>}> : () -> tensor<2xi32>
  %c = "tfl.reshape"(%b, %s3) {names = ["out"]} : (tensor<12xf32>, tensor<2xi32>) -> tensor<2x6xf32>
  func.return %c : tensor<2x6xf32>
}

// An inner reshape with another reader stays; only the outer one is rewired.
// CHECK-LABEL: func.func @shared
// CHECK:         %[[A:.*]] = "tfl.reshape"(%x, %{{.*}}) {names = ["a"]}
// CHECK:         "tfl.reshape"(%x, %{{.*}}) {names = ["b"]}
// CHECK:         "tfl.relu"(%[[A]])
func.func @shared(%x: tensor<1x12xf32>) -> (tensor<12xf32>, tensor<3x4xf32>) {
  %s1 = "tfl.const"() <{value = dense<[3, 4]> : tensor<2xi32>}> : () -> tensor<2xi32>
  %a = "tfl.reshape"(%x, %s1) {names = ["a"]} : (tensor<1x12xf32>, tensor<2xi32>) -> tensor<3x4xf32>
  %s2 = "tfl.const"() <{value = dense<[12]> : tensor<1xi32>}> : () -> tensor<1xi32>
  %b = "tfl.reshape"(%a, %s2) {names = ["b"]} : (tensor<3x4xf32>, tensor<1xi32>) -> tensor<12xf32>
  %r = "tfl.relu"(%a) : (tensor<3x4xf32>) -> tensor<3x4xf32>
  func.return %b, %r : tensor<12xf32>, tensor<3x4xf32>
}

// A reshape to its own input type disappears, unless it produces a model output.
// CHECK-LABEL: func.func @identity
// CHECK-NEXT:    %[[R:.*]] = "tfl.relu"(%x)
// CHECK-NEXT:    %[[S:.*]] = "tfl.const"()
// CHECK-NEXT:    %[[O:.*]] = "tfl.reshape"(%[[R]], %[[S]]) {names = ["out"]}
// CHECK-NEXT:    func.return %[[O]]
// KEEP-LABEL: func.func @identity
// KEEP-COUNT-2: "tfl.reshape"
func.func @identity(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %s = "tfl.const"() <{value = dense<[2, 3]> : tensor<2xi32>}> : () -> tensor<2xi32>
  %i = "tfl.reshape"(%x, %s) : (tensor<2x3xf32>, tensor<2xi32>) -> tensor<2x3xf32>
  %r = "tfl.relu"(%i) : (tensor<2x3xf32>) -> tensor<2x3xf32>
  %s2 = "tfl.const"() <{value = dense<[2, 3]> : tensor<2xi32>}> : () -> tensor<2xi32>
  %o = "tfl.reshape"(%r, %s2) {names = ["out"]} : (tensor<2x3xf32>, tensor<2xi32>) -> tensor<2x3xf32>
  func.return %o : tensor<2x3xf32>
}

// Quantized reshapes fold when the quantization is the same; a pair that changes the
// quantized type (a requantization) is left alone.
// CHECK-LABEL: func.func @quantized
// CHECK:         "tfl.reshape"(%x, %{{.*}}) : (tensor<1x4x!quant.uniform<i8:f32, 0.5:-3>>, tensor<1xi32>) -> tensor<4x!quant.uniform<i8:f32, 0.5:-3>>
// CHECK:         "tfl.reshape"(%{{.*}}, %{{.*}}) : (tensor<2x2x!quant.uniform<i8:f32, 0.25>>, tensor<1xi32>) -> tensor<4x!quant.uniform<i8:f32, 0.5:-3>>
func.func @quantized(%x: tensor<1x4x!quant.uniform<i8:f32, 0.5:-3>>) -> (tensor<4x!quant.uniform<i8:f32, 0.5:-3>>, tensor<4x!quant.uniform<i8:f32, 0.5:-3>>) {
  %s1 = "tfl.const"() <{value = dense<[2, 2]> : tensor<2xi32>}> : () -> tensor<2xi32>
  %a = "tfl.reshape"(%x, %s1) : (tensor<1x4x!quant.uniform<i8:f32, 0.5:-3>>, tensor<2xi32>) -> tensor<2x2x!quant.uniform<i8:f32, 0.5:-3>>
  %s2 = "tfl.const"() <{value = dense<[4]> : tensor<1xi32>}> : () -> tensor<1xi32>
  %b = "tfl.reshape"(%a, %s2) : (tensor<2x2x!quant.uniform<i8:f32, 0.5:-3>>, tensor<1xi32>) -> tensor<4x!quant.uniform<i8:f32, 0.5:-3>>
  %c = "tfl.reshape"(%x, %s1) : (tensor<1x4x!quant.uniform<i8:f32, 0.5:-3>>, tensor<2xi32>) -> tensor<2x2x!quant.uniform<i8:f32, 0.25>>
  %d = "tfl.reshape"(%c, %s2) : (tensor<2x2x!quant.uniform<i8:f32, 0.25>>, tensor<1xi32>) -> tensor<4x!quant.uniform<i8:f32, 0.5:-3>>
  func.return %b, %d : tensor<4x!quant.uniform<i8:f32, 0.5:-3>>, tensor<4x!quant.uniform<i8:f32, 0.5:-3>>
}
