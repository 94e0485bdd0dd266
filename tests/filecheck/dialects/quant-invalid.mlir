// RUN: tflquant-opt %s --split-input-file --verify-diagnostics | filecheck %s

// Every malformed quant type, attribute or op is rejected with a message that says why.

func.func @zp_out_of_range(%x: tensor<4x!quant.uniform<i8:f32, 0.1:300>>) {
  func.return
}
// CHECK: zero point 300 out of storage range [-128, 127]

// -----

func.func @negative_scale(%x: tensor<4x!quant.uniform<i8:f32, -0.1>>) {
  func.return
}
// CHECK: quant scale must be positive and finite

// -----

func.func @bad_storage(%x: tensor<4x!quant.uniform<i3:f32, 0.1>>) {
  func.return
}
// CHECK: quant storage type must be 2, 4, 8, 16, 32 or 64 bits

// -----

func.func @blockwise_i16(%x: tensor<2x32x!quant.blockwise<i16:f32, 32, dense<1.0> : tensor<2x1xf16>>>) {
  func.return
}
// CHECK: blockwise storage must be i4 or i8

// -----

func.func @blockwise_zero_scale(%x: tensor<2x32x!quant.blockwise<i4:f32, 32, dense<0.0> : tensor<2x1xf16>>>) {
  func.return
}
// CHECK: blockwise scales must be positive and finite (fp16 normals)

// -----

func.func @blockwise_const_shape() -> tensor<2x64x!quant.blockwise<i4:f32, 32, dense<1.0> : tensor<2x1xf16>>> {
  %w = "tfl.const"() <{value = dense<1> : tensor<2x64xi8>}> : () -> tensor<2x64x!quant.blockwise<i4:f32, 32, dense<1.0> : tensor<2x1xf16>>>
  func.return %w : tensor<2x64x!quant.blockwise<i4:f32, 32, dense<1.0> : tensor<2x1xf16>>>
}
// CHECK: block scales have shape [2, 1], expected [2, 2]

// -----

func.func @signed_storage(%x: tensor<4x!quant.uniform<si8:f32, 0.1>>) {
  func.return
}
// CHECK: quant storage type must be signless (i8) or unsigned (ui8)

// -----

func.func @narrow_too_wide(%x: tensor<4x!quant.uniform<i8<-200:127>:f32, 0.1>>) {
  func.return
}
// CHECK: storage range [-200, 127] does not fit i8

// -----

func.func @stats_min_gt_max(%x: tensor<4xf32>) -> tensor<4xf32> {
  %s = quant.stats %x, <2.0, 1.0> : tensor<4xf32>
  func.return %s : tensor<4xf32>
}
// CHECK: quant.stats min 2.0 is greater than max 1.0

// -----

func.func @qcast_to_float(%x: tensor<4xf32>) -> tensor<4xf32> {
  %q = quant.qcast %x : tensor<4xf32> -> tensor<4xf32>
  func.return %q : tensor<4xf32>
}
// CHECK: quant.qcast must produce a quantized tensor

// -----

func.func @qcast_shape(%x: tensor<4xf32>) -> tensor<2x!quant.uniform<i8:f32, 0.1>> {
  %q = quant.qcast %x : tensor<4xf32> -> tensor<2x!quant.uniform<i8:f32, 0.1>>
  func.return %q : tensor<2x!quant.uniform<i8:f32, 0.1>>
}
// CHECK: quant.qcast must keep the shape

// -----

func.func @dcast_wrong_expressed(%q: tensor<4x!quant.uniform<i8:f32, 0.1>>) -> tensor<4xf16> {
  %d = quant.dcast %q : tensor<4x!quant.uniform<i8:f32, 0.1>> -> tensor<4xf16>
  func.return %d : tensor<4xf16>
}
// CHECK: quant.dcast result element type must be the expressed type
