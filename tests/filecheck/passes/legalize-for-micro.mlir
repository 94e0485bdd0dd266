// RUN: tflquant-opt %s -p legalize-for-micro | filecheck %s

// An int8 GELU becomes CAST -> ADD 128 -> GATHER from a 256-entry int8 table of its output
// type; the GATHER keeps the GELU's result type and name.
// CHECK-LABEL: func.func @gelu
// CHECK-NEXT:    %[[C:.*]] = "tfl.cast"(%x) {names = ["g/table_index"]} : (tensor<1x4x!quant.uniform<i8:f32, 0.05:-3>>) -> tensor<1x4xi32>
// CHECK-NEXT:    %[[O:.*]] = "tfl.const"() <{value = dense<128> : tensor<i32>}> {names = ["g/table_offset"]} : () -> tensor<i32>
// CHECK-NEXT:    %[[I:.*]] = "tfl.add"(%[[C]], %[[O]]) {names = ["g/table_index_offset"]} : (tensor<1x4xi32>, tensor<i32>) -> tensor<1x4xi32>
// CHECK-NEXT:    %[[T:.*]] = "tfl.const"() <{value = dense<"0x{{[0-9A-F]+}}"> : tensor<256xi8>}> {names = ["g/table"]} : () -> tensor<256x!quant.uniform<i8:f32, 0.04:-120>>
// CHECK-NEXT:    %[[Y:.*]] = "tfl.gather"(%[[T]], %[[I]]) <{axis = 0 : i32}> {names = ["g"]} : (tensor<256x!quant.uniform<i8:f32, 0.04:-120>>, tensor<1x4xi32>) -> tensor<1x4x!quant.uniform<i8:f32, 0.04:-120>>
// CHECK-NEXT:    func.return %[[Y]]
func.func @gelu(%x: tensor<1x4x!quant.uniform<i8:f32, 0.05:-3>>) -> tensor<1x4x!quant.uniform<i8:f32, 0.04:-120>> {
  %y = "tfl.gelu"(%x) {names = ["g"]} : (tensor<1x4x!quant.uniform<i8:f32, 0.05:-3>>) -> tensor<1x4x!quant.uniform<i8:f32, 0.04:-120>>
  func.return %y : tensor<1x4x!quant.uniform<i8:f32, 0.04:-120>>
}

// An int32 SELECT_V2 becomes b + int32(cond) * (a - b), broadcasting as SELECT_V2 does.
// CHECK-LABEL: func.func @select
// CHECK-NEXT:    %[[C:.*]] = "tfl.cast"(%c) {names = ["s/condition"]} : (tensor<1x3xi1>) -> tensor<1x3xi32>
// CHECK-NEXT:    %[[D:.*]] = "tfl.sub"(%a, %b) {names = ["s/difference"]} : (tensor<1x3xi32>, tensor<i32>) -> tensor<1x3xi32>
// CHECK-NEXT:    %[[M:.*]] = "tfl.mul"(%[[C]], %[[D]]) {names = ["s/selected_difference"]} : (tensor<1x3xi32>, tensor<1x3xi32>) -> tensor<1x3xi32>
// CHECK-NEXT:    %[[Y:.*]] = "tfl.add"(%b, %[[M]]) {names = ["s"]} : (tensor<i32>, tensor<1x3xi32>) -> tensor<1x3xi32>
// CHECK-NEXT:    func.return %[[Y]]
func.func @select(%c: tensor<1x3xi1>, %a: tensor<1x3xi32>, %b: tensor<i32>) -> tensor<1x3xi32> {
  %y = "tfl.select_v2"(%c, %a, %b) {names = ["s"]} : (tensor<1x3xi1>, tensor<1x3xi32>, tensor<i32>) -> tensor<1x3xi32>
  func.return %y : tensor<1x3xi32>
}

// Float GELU, int16 GELU and a float SELECT_V2 stay.
// CHECK-LABEL: func.func @kept
// CHECK-NEXT:    "tfl.gelu"(%x)
// CHECK-NEXT:    "tfl.gelu"(%h)
// CHECK-NEXT:    "tfl.select_v2"(%c, %x, %x)
func.func @kept(%x: tensor<4xf32>, %h: tensor<4x!quant.uniform<i16:f32, 0.001>>, %c: tensor<4xi1>) -> (tensor<4xf32>, tensor<4x!quant.uniform<i16:f32, 0.001>>, tensor<4xf32>) {
  %g = "tfl.gelu"(%x) : (tensor<4xf32>) -> tensor<4xf32>
  %g16 = "tfl.gelu"(%h) : (tensor<4x!quant.uniform<i16:f32, 0.001>>) -> tensor<4x!quant.uniform<i16:f32, 0.001>>
  %s = "tfl.select_v2"(%c, %x, %x) : (tensor<4xi1>, tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  func.return %g, %g16, %s : tensor<4xf32>, tensor<4x!quant.uniform<i16:f32, 0.001>>, tensor<4xf32>
}
