// RUN: tflquant-opt %s --split-input-file -p fold-constants | filecheck %s
// RUN: tflquant-opt %s --split-input-file -p 'fold-constants{max-bytes=16}' | filecheck %s --check-prefix=SMALL

// The run-time shape computation of a Tensordot (SHAPE of a static tensor -> GATHER ->
// REDUCE_PROD -> PACK, and CONCATENATION) folds to constants that keep their tensor
// names; the RESHAPE it fed gets a static result type and so does what follows it. The
// constants only the folded ops read are erased.
// CHECK-LABEL: func.func @tensordot
// CHECK-SAME:    -> tensor<1x4x6xf32>
// CHECK-NOT:     "tfl.shape"
// CHECK-NOT:     "tfl.gather"
// CHECK-NOT:     "tfl.reduce_prod"
// CHECK-NOT:     "tfl.pack"
// CHECK-DAG:     %[[STACK:.*]] = "tfl.const"() <{value = dense<[4, 8]> : tensor<2xi32>}> {names = ["stack"]} : () -> tensor<2xi32>
// CHECK-DAG:     %[[CAT:.*]] = "tfl.const"() <{value = dense<[1, 4, 6]> : tensor<3xi32>}> {names = ["concat"]} : () -> tensor<3xi32>
// CHECK:         %[[R:.*]] = "tfl.reshape"(%x, %[[STACK]]) {names = ["reshape"]} : (tensor<1x4x8xf32>, tensor<2xi32>) -> tensor<4x8xf32>
// CHECK:         %[[FC:.*]] = "tfl.fully_connected"(%[[R]], {{.*}}) {names = ["fc"]} : (tensor<4x8xf32>, tensor<6x8xf32>, none) -> tensor<4x6xf32>
// CHECK:         "tfl.reshape"(%[[FC]], %[[CAT]]) {names = ["out"]} : (tensor<4x6xf32>, tensor<3xi32>) -> tensor<1x4x6xf32>
// CHECK-NOT:     "tfl.const"
// CHECK:         func.return
func.func @tensordot(%x: tensor<1x4x8xf32>) -> tensor<?x4x6xf32> {
  %w = "tfl.const"() <{value = dense<0.5> : tensor<6x8xf32>}> : () -> tensor<6x8xf32>
  %n = tfl.no_value
  %i01 = "tfl.const"() <{value = dense<[0, 1]> : tensor<2xi32>}> : () -> tensor<2xi32>
  %i2 = "tfl.const"() <{value = dense<[2]> : tensor<1xi32>}> : () -> tensor<1xi32>
  %ax = "tfl.const"() <{value = dense<[0]> : tensor<1xi32>}> : () -> tensor<1xi32>
  %six = "tfl.const"() <{value = dense<[6]> : tensor<1xi32>}> : () -> tensor<1xi32>
  %sh = "tfl.shape"(%x) <{out_type = "INT32"}> {names = ["shape"]} : (tensor<1x4x8xf32>) -> tensor<3xi32>
  %g = "tfl.gather"(%sh, %i01) {names = ["g01"]} : (tensor<3xi32>, tensor<2xi32>) -> tensor<2xi32>
  %p0 = "tfl.reduce_prod"(%g, %ax) {names = ["prod"]} : (tensor<2xi32>, tensor<1xi32>) -> tensor<i32>
  %cat = "tfl.concatenation"(%g, %six) <{axis = 0 : i32}> {names = ["concat"]} : (tensor<2xi32>, tensor<1xi32>) -> tensor<3xi32>
  %g2 = "tfl.gather"(%sh, %i2) {names = ["g2"]} : (tensor<3xi32>, tensor<1xi32>) -> tensor<1xi32>
  %p1 = "tfl.reduce_prod"(%g2, %ax) {names = ["prod1"]} : (tensor<1xi32>, tensor<1xi32>) -> tensor<i32>
  %st = "tfl.pack"(%p0, %p1) <{values_count = 2 : i32}> {names = ["stack"]} : (tensor<i32>, tensor<i32>) -> tensor<2xi32>
  %r = "tfl.reshape"(%x, %st) {names = ["reshape"]} : (tensor<1x4x8xf32>, tensor<2xi32>) -> tensor<?x?xf32>
  %fc = "tfl.fully_connected"(%r, %w, %n) {names = ["fc"]} : (tensor<?x?xf32>, tensor<6x8xf32>, none) -> tensor<?x6xf32>
  %o = "tfl.reshape"(%fc, %cat) {names = ["out"]} : (tensor<?x6xf32>, tensor<3xi32>) -> tensor<?x4x6xf32>
  func.return %o : tensor<?x4x6xf32>
}

// -----

// Float and boolean arithmetic on constants folds as the reference kernels compute it;
// a SHAPE of a dynamic tensor, ops reading an activation, quantized ops, DEQUANTIZE of
// float16 weights and ops producing a model output stay.
// CHECK-LABEL: func.func @mixed
// CHECK:         "tfl.const"() <{value = dense<[2.000000e+00, 6.000000e+00]> : tensor<2xf32>}> {names = ["sum"]}
// CHECK:         "tfl.const"() <{value = dense<[true, false]> : tensor<2xi1>}> {names = ["less"]}
// CHECK:         "tfl.select_v2"
// CHECK:         "tfl.shape"(%y)
// CHECK:         "tfl.dequantize"
// CHECK:         "tfl.add"(%{{.*}}, %{{.*}}) {names = ["q"]}
// CHECK:         "tfl.mul"(%{{.*}}, %{{.*}}) {names = ["output"]}
func.func @mixed(%x: tensor<2xf32>, %y: tensor<?x2xf32>) -> (tensor<2xf32>, tensor<2xf32>, tensor<2xi32>, tensor<2xf32>, tensor<2x!quant.uniform<i8:f32, 0.5:1>>, tensor<2xf32>) {
  %a = "tfl.const"() <{value = dense<[1.0, 2.0]> : tensor<2xf32>}> : () -> tensor<2xf32>
  %b = "tfl.const"() <{value = dense<[1.0, 4.0]> : tensor<2xf32>}> : () -> tensor<2xf32>
  %s = "tfl.add"(%a, %b) {names = ["sum"]} : (tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>
  %t = "tfl.add"(%s, %x) {names = ["act"]} : (tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>
  %th = "tfl.const"() <{value = dense<3.0> : tensor<f32>}> : () -> tensor<f32>
  %l = "tfl.less"(%s, %th) {names = ["less"]} : (tensor<2xf32>, tensor<f32>) -> tensor<2xi1>
  %nl = "tfl.select_v2"(%l, %a, %b) : (tensor<2xi1>, tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>
  %sh = "tfl.shape"(%y) <{out_type = "INT32"}> : (tensor<?x2xf32>) -> tensor<2xi32>
  %h = "tfl.const"() <{value = dense<[1.0, 2.0]> : tensor<2xf16>}> : () -> tensor<2xf16>
  %d = "tfl.dequantize"(%h) : (tensor<2xf16>) -> tensor<2xf32>
  %q1 = "tfl.const"() <{value = dense<[1, 2]> : tensor<2xi8>}> : () -> tensor<2x!quant.uniform<i8:f32, 0.5:1>>
  %q = "tfl.add"(%q1, %q1) {names = ["q"]} : (tensor<2x!quant.uniform<i8:f32, 0.5:1>>, tensor<2x!quant.uniform<i8:f32, 0.5:1>>) -> tensor<2x!quant.uniform<i8:f32, 0.5:1>>
  %o = "tfl.mul"(%a, %b) {names = ["output"]} : (tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>
  func.return %t, %nl, %sh, %d, %q, %o : tensor<2xf32>, tensor<2xf32>, tensor<2xi32>, tensor<2xf32>, tensor<2x!quant.uniform<i8:f32, 0.5:1>>, tensor<2xf32>
}

// -----

// A FILL that would turn 8 bytes into 64 stays computed when that is above max-bytes.
// CHECK-LABEL: func.func @fill
// CHECK:         "tfl.const"() <{value = dense<7.000000e+00> : tensor<4x4xf32>}> {names = ["filled"]}
// SMALL-LABEL: func.func @fill
// SMALL:         "tfl.fill"
func.func @fill(%x: tensor<4x4xf32>) -> tensor<4x4xf32> {
  %dims = "tfl.const"() <{value = dense<[4, 4]> : tensor<2xi32>}> : () -> tensor<2xi32>
  %v = "tfl.const"() <{value = dense<7.0> : tensor<f32>}> : () -> tensor<f32>
  %f = "tfl.fill"(%dims, %v) {names = ["filled"]} : (tensor<2xi32>, tensor<f32>) -> tensor<4x4xf32>
  %r = "tfl.add"(%x, %f) : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  func.return %r : tensor<4x4xf32>
}
