// RUN: tflquant-opt %s -p legalize-for-micro | filecheck %s

// An int8 GELU becomes CAST -> ADD 128 -> GATHER from a 256-entry int8 table of its output
// type; the GATHER keeps the GELU's result type and name. The offset has the index's full
// shape (LiteRT's elementwise int32 ADD, not its slower broadcasting one).
// CHECK-LABEL: func.func @gelu
// CHECK-NEXT:    %[[C:.*]] = "tfl.cast"(%x) {names = ["g/table_index"]} : (tensor<1x4x!quant.uniform<i8:f32, 0.05:-3>>) -> tensor<1x4xi32>
// CHECK-NEXT:    %[[O:.*]] = "tfl.const"() <{value = dense<128> : tensor<1x4xi32>}> {names = ["g/table_offset"]} : () -> tensor<1x4xi32>
// CHECK-NEXT:    %[[I:.*]] = "tfl.add"(%[[C]], %[[O]]) {names = ["g/table_index_offset"]} : (tensor<1x4xi32>, tensor<1x4xi32>) -> tensor<1x4xi32>
// CHECK-NEXT:    %[[T:.*]] = "tfl.const"() <{value = dense<"0x{{[0-9A-F]+}}"> : tensor<256xi8>}> {names = ["g/table"]} : () -> tensor<256x!quant.uniform<i8:f32, 0.04:-120>>
// CHECK-NEXT:    %[[Y:.*]] = "tfl.gather"(%[[T]], %[[I]]) <{axis = 0 : i32}> {names = ["g"]} : (tensor<256x!quant.uniform<i8:f32, 0.04:-120>>, tensor<1x4xi32>) -> tensor<1x4x!quant.uniform<i8:f32, 0.04:-120>>
// CHECK-NEXT:    func.return %[[Y]]
func.func @gelu(%x: tensor<1x4x!quant.uniform<i8:f32, 0.05:-3>>) -> tensor<1x4x!quant.uniform<i8:f32, 0.04:-120>> {
  %y = "tfl.gelu"(%x) {names = ["g"]} : (tensor<1x4x!quant.uniform<i8:f32, 0.05:-3>>) -> tensor<1x4x!quant.uniform<i8:f32, 0.04:-120>>
  func.return %y : tensor<1x4x!quant.uniform<i8:f32, 0.04:-120>>
}

// GELUs of one function share the offset of a shape and equal tables: the second GELU
// (same types) makes neither again; the third (other input scale) has its own table.
// CHECK-LABEL: func.func @gelu_shared
// CHECK-NEXT:    "tfl.cast"(%x) {names = ["g1/table_index"]}
// CHECK-NEXT:    %[[O:.*]] = "tfl.const"() <{value = dense<128> : tensor<1x4xi32>}> {names = ["g1/table_offset"]}
// CHECK-NEXT:    "tfl.add"
// CHECK-NEXT:    %[[T:.*]] = "tfl.const"() {{.*}} {names = ["g1/table"]}
// CHECK-NEXT:    %[[Y1:.*]] = "tfl.gather"(%[[T]], {{.*}}) {{.*}} {names = ["g1"]}
// CHECK-NEXT:    %[[C2:.*]] = "tfl.cast"(%[[Y1]]) {names = ["g2/table_index"]}
// CHECK-NEXT:    %[[I2:.*]] = "tfl.add"(%[[C2]], %[[O]]) {names = ["g2/table_index_offset"]}
// CHECK-NEXT:    %[[Y2:.*]] = "tfl.gather"(%[[T]], %[[I2]]) {{.*}} {names = ["g2"]}
// CHECK-NEXT:    %[[C3:.*]] = "tfl.cast"(%z) {names = ["g3/table_index"]}
// CHECK-NEXT:    %[[I3:.*]] = "tfl.add"(%[[C3]], %[[O]]) {names = ["g3/table_index_offset"]}
// CHECK-NEXT:    %[[T3:.*]] = "tfl.const"() {{.*}} {names = ["g3/table"]}
// CHECK-NEXT:    "tfl.gather"(%[[T3]], %[[I3]]) {{.*}} {names = ["g3"]}
// CHECK-NEXT:    func.return
func.func @gelu_shared(%x: tensor<1x4x!quant.uniform<i8:f32, 0.05:-3>>, %z: tensor<1x4x!quant.uniform<i8:f32, 0.07:-3>>) -> (tensor<1x4x!quant.uniform<i8:f32, 0.05:-3>>, tensor<1x4x!quant.uniform<i8:f32, 0.05:-3>>) {
  %y1 = "tfl.gelu"(%x) {names = ["g1"]} : (tensor<1x4x!quant.uniform<i8:f32, 0.05:-3>>) -> tensor<1x4x!quant.uniform<i8:f32, 0.05:-3>>
  %y2 = "tfl.gelu"(%y1) {names = ["g2"]} : (tensor<1x4x!quant.uniform<i8:f32, 0.05:-3>>) -> tensor<1x4x!quant.uniform<i8:f32, 0.05:-3>>
  %y3 = "tfl.gelu"(%z) {names = ["g3"]} : (tensor<1x4x!quant.uniform<i8:f32, 0.07:-3>>) -> tensor<1x4x!quant.uniform<i8:f32, 0.05:-3>>
  func.return %y2, %y3 : tensor<1x4x!quant.uniform<i8:f32, 0.05:-3>>, tensor<1x4x!quant.uniform<i8:f32, 0.05:-3>>
}

// With a dynamic dimension, or more than 4096 elements, the offset is a scalar (broadcast
// by the ADD).
// CHECK-LABEL: func.func @gelu_dynamic
// CHECK-NEXT:    %[[C:.*]] = "tfl.cast"(%x) {names = ["g/table_index"]} : (tensor<?x4x!quant.uniform<i8:f32, 0.05:-3>>) -> tensor<?x4xi32>
// CHECK-NEXT:    %[[O:.*]] = "tfl.const"() <{value = dense<128> : tensor<i32>}> {names = ["g/table_offset"]} : () -> tensor<i32>
// CHECK-NEXT:    "tfl.add"(%[[C]], %[[O]]) {names = ["g/table_index_offset"]} : (tensor<?x4xi32>, tensor<i32>) -> tensor<?x4xi32>
func.func @gelu_dynamic(%x: tensor<?x4x!quant.uniform<i8:f32, 0.05:-3>>) -> tensor<?x4x!quant.uniform<i8:f32, 0.04:-120>> {
  %y = "tfl.gelu"(%x) {names = ["g"]} : (tensor<?x4x!quant.uniform<i8:f32, 0.05:-3>>) -> tensor<?x4x!quant.uniform<i8:f32, 0.04:-120>>
  func.return %y : tensor<?x4x!quant.uniform<i8:f32, 0.04:-120>>
}

// CHECK-LABEL: func.func @gelu_large
// CHECK-NEXT:    %[[C:.*]] = "tfl.cast"(%x) {names = ["g/table_index"]} : (tensor<1x64x65x!quant.uniform<i8:f32, 0.05:-3>>) -> tensor<1x64x65xi32>
// CHECK-NEXT:    %[[O:.*]] = "tfl.const"() <{value = dense<128> : tensor<i32>}> {names = ["g/table_offset"]} : () -> tensor<i32>
// CHECK-NEXT:    "tfl.add"(%[[C]], %[[O]]) {names = ["g/table_index_offset"]} : (tensor<1x64x65xi32>, tensor<i32>) -> tensor<1x64x65xi32>
func.func @gelu_large(%x: tensor<1x64x65x!quant.uniform<i8:f32, 0.05:-3>>) -> tensor<1x64x65x!quant.uniform<i8:f32, 0.04:-120>> {
  %y = "tfl.gelu"(%x) {names = ["g"]} : (tensor<1x64x65x!quant.uniform<i8:f32, 0.05:-3>>) -> tensor<1x64x65x!quant.uniform<i8:f32, 0.04:-120>>
  func.return %y : tensor<1x64x65x!quant.uniform<i8:f32, 0.04:-120>>
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

// The embedding wrap select(ids < 0, ids + k, ids) with a constant k: a - b is k, so
// y = ids + int32(cond) * k, and the ADD ids + k, read by nothing else, goes (either
// operand order). An ADD with a fused activation is not ids + k: the general form.
// CHECK-LABEL: func.func @select_wrap
// CHECK-NEXT:    %[[K:.*]] = "tfl.const"() <{value = dense<32> : tensor<i32>}>
// CHECK-NEXT:    %[[Z:.*]] = "tfl.const"() <{value = dense<0> : tensor<i32>}>
// CHECK-NEXT:    %[[L:.*]] = "tfl.less"(%ids, %[[Z]])
// CHECK-NEXT:    %[[C:.*]] = "tfl.cast"(%[[L]]) {names = ["s/condition"]} : (tensor<1x16xi1>) -> tensor<1x16xi32>
// CHECK-NEXT:    %[[M:.*]] = "tfl.mul"(%[[C]], %[[K]]) {names = ["s/selected_difference"]} : (tensor<1x16xi32>, tensor<i32>) -> tensor<1x16xi32>
// CHECK-NEXT:    %[[Y:.*]] = "tfl.add"(%ids, %[[M]]) {names = ["s"]} : (tensor<1x16xi32>, tensor<1x16xi32>) -> tensor<1x16xi32>
// CHECK-NEXT:    %[[C2:.*]] = "tfl.cast"(%[[L]]) {names = ["s2/condition"]}
// CHECK-NEXT:    %[[M2:.*]] = "tfl.mul"(%[[C2]], %[[K]]) {names = ["s2/selected_difference"]}
// CHECK-NEXT:    %[[Y2:.*]] = "tfl.add"(%ids, %[[M2]]) {names = ["s2"]}
// CHECK-NEXT:    %[[R:.*]] = "tfl.add"(%ids, %[[K]]) <{fused_activation_function = "RELU"}>
// CHECK-NEXT:    "tfl.cast"(%[[L]]) {names = ["s3/condition"]}
// CHECK-NEXT:    "tfl.sub"(%[[R]], %ids) {names = ["s3/difference"]}
// CHECK-NEXT:    "tfl.mul"
// CHECK-NEXT:    "tfl.add"(%ids, {{.*}}) {names = ["s3"]}
// CHECK-NEXT:    func.return
func.func @select_wrap(%ids: tensor<1x16xi32>) -> (tensor<1x16xi32>, tensor<1x16xi32>, tensor<1x16xi32>) {
  %k = "tfl.const"() <{value = dense<32> : tensor<i32>}> : () -> tensor<i32>
  %z = "tfl.const"() <{value = dense<0> : tensor<i32>}> : () -> tensor<i32>
  %c = "tfl.less"(%ids, %z) : (tensor<1x16xi32>, tensor<i32>) -> tensor<1x16xi1>
  %a = "tfl.add"(%ids, %k) : (tensor<1x16xi32>, tensor<i32>) -> tensor<1x16xi32>
  %y = "tfl.select_v2"(%c, %a, %ids) {names = ["s"]} : (tensor<1x16xi1>, tensor<1x16xi32>, tensor<1x16xi32>) -> tensor<1x16xi32>
  %a2 = "tfl.add"(%k, %ids) : (tensor<i32>, tensor<1x16xi32>) -> tensor<1x16xi32>
  %y2 = "tfl.select_v2"(%c, %a2, %ids) {names = ["s2"]} : (tensor<1x16xi1>, tensor<1x16xi32>, tensor<1x16xi32>) -> tensor<1x16xi32>
  %a3 = "tfl.add"(%ids, %k) <{fused_activation_function = "RELU"}> : (tensor<1x16xi32>, tensor<i32>) -> tensor<1x16xi32>
  %y3 = "tfl.select_v2"(%c, %a3, %ids) {names = ["s3"]} : (tensor<1x16xi1>, tensor<1x16xi32>, tensor<1x16xi32>) -> tensor<1x16xi32>
  func.return %y, %y2, %y3 : tensor<1x16xi32>, tensor<1x16xi32>, tensor<1x16xi32>
}

// ids + k read by something else stays.
// CHECK-LABEL: func.func @select_wrap_shared_add
// CHECK:         %[[A:.*]] = "tfl.add"(%ids, %k)
// CHECK-NEXT:    "tfl.cast"
// CHECK-NEXT:    "tfl.mul"(%{{.*}}, %k)
// CHECK-NEXT:    %[[Y:.*]] = "tfl.add"(%ids, %{{.*}}) {names = ["s"]}
// CHECK-NEXT:    func.return %[[Y]], %[[A]]
func.func @select_wrap_shared_add(%ids: tensor<1x16xi32>, %c: tensor<1x16xi1>) -> (tensor<1x16xi32>, tensor<1x16xi32>) {
  %k = "tfl.const"() <{value = dense<32> : tensor<i32>}> : () -> tensor<i32>
  %a = "tfl.add"(%ids, %k) : (tensor<1x16xi32>, tensor<i32>) -> tensor<1x16xi32>
  %y = "tfl.select_v2"(%c, %a, %ids) {names = ["s"]} : (tensor<1x16xi1>, tensor<1x16xi32>, tensor<1x16xi32>) -> tensor<1x16xi32>
  func.return %y, %a : tensor<1x16xi32>, tensor<1x16xi32>
}

// int8 RELU_0_TO_1 whose output scale puts 1.0 at or above 127 (here 1/255 with zero point
// -128: exactly 127) is RELU, same types and name; where 1.0 falls inside the int8 range
// (scale 1/100) it becomes a table lookup like GELU.
// CHECK-LABEL: func.func @relu_0_to_1
// CHECK-NEXT:    %[[R:.*]] = "tfl.relu"(%x) {names = ["r"]} : (tensor<1x4x!quant.uniform<i8:f32, 0.02:-3>>) -> tensor<1x4x!quant.uniform<i8:f32, 0.003921569:-128>>
// CHECK-NEXT:    "tfl.cast"(%x) {names = ["k/table_index"]}
// CHECK:         %[[K:.*]] = "tfl.gather"(%{{.*}}, %{{.*}}) <{axis = 0 : i32}> {names = ["k"]}
// CHECK-NEXT:    func.return %[[R]], %[[K]]
func.func @relu_0_to_1(%x: tensor<1x4x!quant.uniform<i8:f32, 0.02:-3>>) -> (tensor<1x4x!quant.uniform<i8:f32, 0.003921569:-128>>, tensor<1x4x!quant.uniform<i8:f32, 0.01:-128>>) {
  %r = "tfl.relu_0_to_1"(%x) {names = ["r"]} : (tensor<1x4x!quant.uniform<i8:f32, 0.02:-3>>) -> tensor<1x4x!quant.uniform<i8:f32, 0.003921569:-128>>
  %k = "tfl.relu_0_to_1"(%x) {names = ["k"]} : (tensor<1x4x!quant.uniform<i8:f32, 0.02:-3>>) -> tensor<1x4x!quant.uniform<i8:f32, 0.01:-128>>
  func.return %r, %k : tensor<1x4x!quant.uniform<i8:f32, 0.003921569:-128>>, tensor<1x4x!quant.uniform<i8:f32, 0.01:-128>>
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

// int8 SQRT (TFLM: float only) is a table lookup too; float SQRT stays.
// CHECK-LABEL: func.func @sqrt
// CHECK-NEXT:    "tfl.cast"(%x) {names = ["s/table_index"]}
// CHECK:         %[[T:.*]] = "tfl.const"() <{value = dense<"0x{{[0-9A-F]+}}"> : tensor<256xi8>}> {names = ["s/table"]} : () -> tensor<256x!quant.uniform<i8:f32, 0.01:-128>>
// CHECK-NEXT:    %[[Y:.*]] = "tfl.gather"(%[[T]], %{{.*}}) <{axis = 0 : i32}> {names = ["s"]}
// CHECK-NEXT:    %[[F:.*]] = "tfl.sqrt"(%f)
// CHECK-NEXT:    func.return %[[Y]], %[[F]]
func.func @sqrt(%x: tensor<1x4x!quant.uniform<i8:f32, 0.02:-128>>, %f: tensor<4xf32>) -> (tensor<1x4x!quant.uniform<i8:f32, 0.01:-128>>, tensor<4xf32>) {
  %y = "tfl.sqrt"(%x) {names = ["s"]} : (tensor<1x4x!quant.uniform<i8:f32, 0.02:-128>>) -> tensor<1x4x!quant.uniform<i8:f32, 0.01:-128>>
  %g = "tfl.sqrt"(%f) : (tensor<4xf32>) -> tensor<4xf32>
  func.return %y, %g : tensor<1x4x!quant.uniform<i8:f32, 0.01:-128>>, tensor<4xf32>
}

// SELECT (v1) is SELECT_V2; its rank-1 condition (along dim 0) is reshaped to broadcast.
// CHECK-LABEL: func.func @select_v1
// CHECK-NEXT:    %[[S:.*]] = "tfl.const"() <{value = dense<[4, 1]> : tensor<2xi32>}> {names = ["s/condition_shape"]}
// CHECK-NEXT:    %[[C:.*]] = "tfl.reshape"(%c, %[[S]]) {names = ["s/condition"]} : (tensor<4xi1>, tensor<2xi32>) -> tensor<4x1xi1>
// CHECK-NEXT:    %[[Y:.*]] = "tfl.select_v2"(%[[C]], %a, %b) {names = ["s"]}
// CHECK-NEXT:    func.return %[[Y]]
func.func @select_v1(%c: tensor<4xi1>, %a: tensor<4x8x!quant.uniform<i8:f32, 0.1:0>>, %b: tensor<4x8x!quant.uniform<i8:f32, 0.1:0>>) -> tensor<4x8x!quant.uniform<i8:f32, 0.1:0>> {
  %y = "tfl.select"(%c, %a, %b) {names = ["s"]} : (tensor<4xi1>, tensor<4x8x!quant.uniform<i8:f32, 0.1:0>>, tensor<4x8x!quant.uniform<i8:f32, 0.1:0>>) -> tensor<4x8x!quant.uniform<i8:f32, 0.1:0>>
  func.return %y : tensor<4x8x!quant.uniform<i8:f32, 0.1:0>>
}

// A 6-D TRANSPOSE (TFLM: at most 5) whose size-1 dims drop out: RESHAPE to 3-D, TRANSPOSE,
// RESHAPE back to the 6-D result (same type and name). An int32 one stays (check-micro
// names it: TFLM has no int32 TRANSPOSE).
// CHECK-LABEL: func.func @transpose_6d
// CHECK:         %[[S:.*]] = "tfl.const"() <{value = dense<[2, 3, 4]> : tensor<3xi32>}> {names = ["t/collapsed_shape"]}
// CHECK-NEXT:    %[[R:.*]] = "tfl.reshape"(%x, %[[S]]) {names = ["t/collapsed"]}
// CHECK-NEXT:    %[[P:.*]] = "tfl.const"() <{value = dense<[1, 0, 2]> : tensor<3xi32>}> {names = ["t/collapsed_perm"]}
// CHECK-NEXT:    %[[T:.*]] = "tfl.transpose"(%[[R]], %[[P]]) {names = ["t/collapsed_transposed"]} : (tensor<2x3x4x!quant.uniform<i8:f32, 0.1>>, tensor<3xi32>) -> tensor<3x2x4x!quant.uniform<i8:f32, 0.1>>
// CHECK-NEXT:    %[[B:.*]] = "tfl.const"() <{value = dense<[1, 3, 1, 2, 4, 1]> : tensor<6xi32>}> {names = ["t/shape"]}
// CHECK-NEXT:    %[[Y:.*]] = "tfl.reshape"(%[[T]], %[[B]]) {names = ["t"]} : (tensor<3x2x4x!quant.uniform<i8:f32, 0.1>>, tensor<6xi32>) -> tensor<1x3x1x2x4x1x!quant.uniform<i8:f32, 0.1>>
// CHECK-NEXT:    %[[I:.*]] = "tfl.transpose"(%ids, %p) {names = ["ti"]}
// CHECK-NEXT:    func.return %[[Y]], %[[I]]
func.func @transpose_6d(%x: tensor<1x2x1x3x4x1x!quant.uniform<i8:f32, 0.1:0>>, %ids: tensor<1x2x1x3x4x1xi32>) -> (tensor<1x3x1x2x4x1x!quant.uniform<i8:f32, 0.1:0>>, tensor<1x3x1x2x4x1xi32>) {
  %p = "tfl.const"() <{value = dense<[0, 3, 2, 1, 4, 5]> : tensor<6xi32>}> : () -> tensor<6xi32>
  %y = "tfl.transpose"(%x, %p) {names = ["t"]} : (tensor<1x2x1x3x4x1x!quant.uniform<i8:f32, 0.1:0>>, tensor<6xi32>) -> tensor<1x3x1x2x4x1x!quant.uniform<i8:f32, 0.1:0>>
  %i = "tfl.transpose"(%ids, %p) {names = ["ti"]} : (tensor<1x2x1x3x4x1xi32>, tensor<6xi32>) -> tensor<1x3x1x2x4x1xi32>
  func.return %y, %i : tensor<1x3x1x2x4x1x!quant.uniform<i8:f32, 0.1:0>>, tensor<1x3x1x2x4x1xi32>
}

// TILE (no TFLM kernel): RESHAPE to [2, 1, 3] (the tiled dim gets a leading 1),
// BROADCAST_TO [2, 4, 3], RESHAPE to the result (same type and name).
// CHECK-LABEL: func.func @tile
// CHECK:         %[[S:.*]] = "tfl.const"() <{value = dense<[2, 1, 3]> : tensor<3xi32>}> {names = ["t/broadcastable_shape"]}
// CHECK-NEXT:    %[[R:.*]] = "tfl.reshape"(%x, %[[S]]) {names = ["t/broadcastable"]}
// CHECK-NEXT:    %[[B:.*]] = "tfl.const"() <{value = dense<[2, 4, 3]> : tensor<3xi32>}> {names = ["t/broadcast_shape"]}
// CHECK-NEXT:    %[[C:.*]] = "tfl.broadcast_to"(%[[R]], %[[B]]) {names = ["t/broadcast"]} : (tensor<2x1x3xi32>, tensor<3xi32>) -> tensor<2x4x3xi32>
// CHECK-NEXT:    %[[O:.*]] = "tfl.const"() <{value = dense<[2, 12]> : tensor<2xi32>}> {names = ["t/shape"]}
// CHECK-NEXT:    %[[Y:.*]] = "tfl.reshape"(%[[C]], %[[O]]) {names = ["t"]} : (tensor<2x4x3xi32>, tensor<2xi32>) -> tensor<2x12xi32>
// CHECK-NEXT:    func.return %[[Y]]
func.func @tile(%x: tensor<2x3xi32>) -> tensor<2x12xi32> {
  %m = "tfl.const"() <{value = dense<[1, 4]> : tensor<2xi32>}> : () -> tensor<2xi32>
  %y = "tfl.tile"(%x, %m) {names = ["t"]} : (tensor<2x3xi32>, tensor<2xi32>) -> tensor<2x12xi32>
  func.return %y : tensor<2x12xi32>
}

// A 5-D STRIDED_SLICE (TFLM: at most 4 dims): the size-1 dim 0 drops out, the whole dims 3
// and 4 merge into the stride-1 dim 2 before them ([1, 2) of 3 rows of 16: [16, 32) of 48),
// so RESHAPE to [4, 48], slice, RESHAPE to the result (shrink_axis_mask included).
// CHECK-LABEL: func.func @strided_slice_5d
// CHECK:         %[[S:.*]] = "tfl.const"() <{value = dense<[4, 48]> : tensor<2xi32>}> {names = ["s/collapsed_shape"]}
// CHECK-NEXT:    %[[R:.*]] = "tfl.reshape"(%x, %[[S]]) {names = ["s/collapsed"]}
// CHECK-NEXT:    %[[B:.*]] = "tfl.const"() <{value = dense<[0, 16]> : tensor<2xi32>}> {names = ["s/collapsed_begin"]}
// CHECK-NEXT:    %[[E:.*]] = "tfl.const"() <{value = dense<[4, 32]> : tensor<2xi32>}> {names = ["s/collapsed_end"]}
// CHECK-NEXT:    %[[T:.*]] = "tfl.const"() <{value = dense<1> : tensor<2xi32>}> {names = ["s/collapsed_strides"]}
// CHECK-NEXT:    %[[L:.*]] = "tfl.strided_slice"(%[[R]], %[[B]], %[[E]], %[[T]]) {names = ["s/collapsed_slice"]} : ({{.*}}) -> tensor<4x16x!quant.uniform<i8:f32, 0.1>>
// CHECK-NEXT:    %[[O:.*]] = "tfl.const"() <{value = dense<[1, 4, 2, 8]> : tensor<4xi32>}> {names = ["s/shape"]}
// CHECK-NEXT:    %[[Y:.*]] = "tfl.reshape"(%[[L]], %[[O]]) {names = ["s"]} : (tensor<4x16x!quant.uniform<i8:f32, 0.1>>, tensor<4xi32>) -> tensor<1x4x2x8x!quant.uniform<i8:f32, 0.1>>
// CHECK-NEXT:    func.return %[[Y]]
func.func @strided_slice_5d(%x: tensor<1x4x3x2x8x!quant.uniform<i8:f32, 0.1>>) -> tensor<1x4x2x8x!quant.uniform<i8:f32, 0.1>> {
  %b = "tfl.const"() <{value = dense<[0, 0, 1, 0, 0]> : tensor<5xi32>}> : () -> tensor<5xi32>
  %e = "tfl.const"() <{value = dense<[1, 4, 2, 2, 8]> : tensor<5xi32>}> : () -> tensor<5xi32>
  %s = "tfl.const"() <{value = dense<1> : tensor<5xi32>}> : () -> tensor<5xi32>
  %y = "tfl.strided_slice"(%x, %b, %e, %s) <{shrink_axis_mask = 4 : i32}> {names = ["s"]} : (tensor<1x4x3x2x8x!quant.uniform<i8:f32, 0.1>>, tensor<5xi32>, tensor<5xi32>, tensor<5xi32>) -> tensor<1x4x2x8x!quant.uniform<i8:f32, 0.1>>
  func.return %y : tensor<1x4x2x8x!quant.uniform<i8:f32, 0.1>>
}
