// RUN: tflquant-opt %s -p 'quantize-weights{min-elements=4}' | filecheck %s --check-prefix=TABLE16
// RUN: tflquant-opt %s -p 'quantize-weights{min-elements=4 op-bits="GATHER=8"}' | filecheck %s
// RUN: tflquant-opt %s -p 'quantize-weights{min-elements=4 per-channel=false op-bits="GATHER=8"}' | filecheck %s --check-prefix=TENSOR

// Constant tables read by GATHER and EMBEDDING_LOOKUP (quantize-weights).
//
// Default, under a global 8-bit setting: a GATHER table is int16 with one scale
// (max|w| / 32767), whatever its size; its int16 rows are gathered and then dequantized, so no
// float copy of the table is made. EMBEDDING_LOOKUP keeps int8 per row (its hybrid kernel).
// TABLE16-LABEL: func.func @lookups
// TABLE16:      %[[T:.*]] = "tfl.const"() <{value = dense<{{\[\[}}32767, 82], [-32767, 164]]> : tensor<2x2xi16>}> {names = ["table"]} : () -> tensor<2x2x!quant.uniform<i16<-32767:32767>:f32, 0.00012207404>>
// TABLE16-NEXT: %[[G:.*]] = "tfl.gather"(%[[T]], %ids) <{axis = 0 : i32}> {names = ["emb_int16"]} : (tensor<2x2x!quant.uniform<i16<-32767:32767>:f32, 0.00012207404>>, tensor<3xi32>) -> tensor<3x2x!quant.uniform<i16<-32767:32767>:f32, 0.00012207404>>
// TABLE16-NEXT: "tfl.dequantize"(%[[G]]) {names = ["emb"]} : (tensor<3x2x!quant.uniform<i16<-32767:32767>:f32, 0.00012207404>>) -> tensor<3x2xf32>
// TABLE16:      "tfl.embedding_lookup"(%ids, %{{.*}}) : (tensor<3xi32>, tensor<2x2x!quant.uniform<i8<-127:127>:f32:0, {0.031496063, 0.015748031}>>) -> tensor<3x2xf32>
// TABLE16:      %[[C:.*]] = "tfl.const"() <{value = dense<{{\[\[}}32767, 0], [-16384, 8192]]> : tensor<2x2xi16>}> {names = ["cols"]}
// TABLE16-NEXT: %[[G2:.*]] = "tfl.gather"(%[[C]], %ids2) <{axis = 1 : i32}> : (tensor<2x2x!quant.uniform<i16<-32767:32767>:f32, 0.00012207404>>, tensor<1x3xi32>) -> tensor<2x1x3x!quant.uniform<i16<-32767:32767>:f32, 0.00012207404>>
// TABLE16-NEXT: "tfl.dequantize"(%[[G2]])
//
// With op-bits GATHER=8 (CHECK, TENSOR):
// Gather from a constant table: a small table is per channel along its rows or its last
// (feature) dimension, whichever gives it the higher SQNR (here: features for `table`,
// rows for `cols`), and dequantized once (constant input) before a float gather. With one scale
// (per-channel=false, or tables over 2^20 elements) int8 rows are gathered, then
// dequantized; the float result keeps the tensor's name. Embedding lookup is hybrid, per row.
// CHECK-LABEL: func.func @lookups
// CHECK:      %[[T:.*]] = "tfl.const"() <{value = dense<{{\[\[}}127, 63], [-127, 127]]> : tensor<2x2xi8>}> {names = ["table"]{{(, tflquant.sqnr = [^}]* : f64)?}}} : () -> tensor<2x2x!quant.uniform<i8<-127:127>:f32:1, {0.031496063, 0.00015748032}>>
// CHECK-NEXT: %[[TD:.*]] = "tfl.dequantize"(%[[T]]) {names = ["table_dequantize"]} : (tensor<2x2x!quant.uniform<i8<-127:127>:f32:1, {0.031496063, 0.00015748032}>>) -> tensor<2x2xf32>
// CHECK:      %[[G:.*]] = "tfl.gather"(%[[TD]], %ids) <{axis = 0 : i32}> {names = ["emb"]} : (tensor<2x2xf32>, tensor<3xi32>) -> tensor<3x2xf32>
// CHECK:      %[[E:.*]] = "tfl.const"() <{value = dense<{{\[\[}}127, 0], [-127, 64]]> : tensor<2x2xi8>}> {names = ["rows"]{{(, tflquant.sqnr = [^}]* : f64)?}}} : () -> tensor<2x2x!quant.uniform<i8<-127:127>:f32:0, {0.031496063, 0.015748031}>>
// CHECK:      %[[L:.*]] = "tfl.embedding_lookup"(%ids, %[[E]])
// CHECK:      %[[C:.*]] = "tfl.const"() {{.*}} {names = ["cols"]{{(, tflquant.sqnr = [^}]* : f64)?}}} : () -> tensor<2x2x!quant.uniform<i8<-127:127>:f32:0, {0.031496063, 0.015748031}>>
// CHECK-NEXT: %[[CD:.*]] = "tfl.dequantize"(%[[C]])
// CHECK:      %[[G2:.*]] = "tfl.gather"(%[[CD]], %ids2) <{axis = 1 : i32}> : (tensor<2x2xf32>, tensor<1x3xi32>) -> tensor<2x1x3xf32>
// CHECK:      func.return %[[G]], %[[L]], %[[G2]]
// TENSOR-LABEL: func.func @lookups
// TENSOR:      %[[G:.*]] = "tfl.gather"({{.*}}) <{axis = 0 : i32}> {names = ["emb_int8"]} : (tensor<2x2x!quant.uniform<i8<-127:127>:f32, 0.031496063>>, tensor<3xi32>) -> tensor<3x2x!quant.uniform<i8<-127:127>:f32, 0.031496063>>
// TENSOR-NEXT: "tfl.dequantize"(%[[G]]) {names = ["emb"]} : (tensor<3x2x!quant.uniform<i8<-127:127>:f32, 0.031496063>>) -> tensor<3x2xf32>
func.func @lookups(%ids: tensor<3xi32>, %ids2: tensor<1x3xi32>) -> (tensor<3x2xf32>, tensor<3x2xf32>, tensor<2x1x3xf32>) {
  %t = "tfl.const"() <{value = dense<[[4.0, 0.01], [-4.0, 0.02]]> : tensor<2x2xf32>}> {names = ["table"]} : () -> tensor<2x2xf32>
  %g = "tfl.gather"(%t, %ids) <{axis = 0 : i32}> {names = ["emb"]} : (tensor<2x2xf32>, tensor<3xi32>) -> tensor<3x2xf32>
  %e = "tfl.const"() <{value = dense<[[4.0, 0.0], [-2.0, 1.0]]> : tensor<2x2xf32>}> {names = ["rows"]} : () -> tensor<2x2xf32>
  %l = "tfl.embedding_lookup"(%ids, %e) : (tensor<3xi32>, tensor<2x2xf32>) -> tensor<3x2xf32>
  %c = "tfl.const"() <{value = dense<[[4.0, 0.0], [-2.0, 1.0]]> : tensor<2x2xf32>}> {names = ["cols"]} : () -> tensor<2x2xf32>
  %g2 = "tfl.gather"(%c, %ids2) <{axis = 1 : i32}> : (tensor<2x2xf32>, tensor<1x3xi32>) -> tensor<2x1x3xf32>
  func.return %g, %l, %g2 : tensor<3x2xf32>, tensor<3x2xf32>, tensor<2x1x3xf32>
}
