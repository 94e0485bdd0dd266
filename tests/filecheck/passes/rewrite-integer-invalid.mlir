// RUN: tflquant-opt %s --split-input-file --verify-diagnostics -p rewrite-integer | filecheck %s
// RUN: not tflquant-opt %s -p 'rewrite-integer{activations=int8}' 2>&1 | filecheck %s --check-prefix=OPTION

// rewrite-integer has no options.
// OPTION: bad pass pipeline 'rewrite-integer{activations=int8}': Provided arguments ["activations"] not found in expected arguments []

// A fake-quantized constant holding NaN has no integer payload (it would silently become
// the zero point): the error names the tensor.
// CHECK: rewrite-integer: constant tensor 'k' holds NaN or infinite values; it cannot become an integer constant of type tensor<2x!quant.uniform<i8:f32, 0.1>>
func.func @nan_const(%x: tensor<1x2xf32> {tfl.name = "x"}) -> tensor<1x2xf32> {
  %xq = quant.qcast %x : tensor<1x2xf32> -> tensor<1x2x!quant.uniform<i8:f32, 0.1:0>>
  %xd = quant.dcast %xq : tensor<1x2x!quant.uniform<i8:f32, 0.1:0>> -> tensor<1x2xf32>
  %k = "tfl.const"() <{value = dense<"0x0000C07F0000803F"> : tensor<2xf32>}> {names = ["k"]} : () -> tensor<2xf32>
  %kq = quant.qcast %k : tensor<2xf32> -> tensor<2x!quant.uniform<i8:f32, 0.1:0>>
  %kd = quant.dcast %kq : tensor<2x!quant.uniform<i8:f32, 0.1:0>> -> tensor<2xf32>
  %a = "tfl.add"(%xd, %kd) {names = ["add"]} : (tensor<1x2xf32>, tensor<2xf32>) -> tensor<1x2xf32>
  %aq = quant.qcast %a : tensor<1x2xf32> -> tensor<1x2x!quant.uniform<i8:f32, 0.2:0>>
  %ad = quant.dcast %aq : tensor<1x2x!quant.uniform<i8:f32, 0.2:0>> -> tensor<1x2xf32>
  func.return %ad : tensor<1x2xf32>
}

// -----

// The same for an infinite constant read by a float op through the fake quantization.
// CHECK: rewrite-integer: constant tensor 'inf' holds NaN or infinite values
func.func @inf_const(%x: tensor<2xf32> {tfl.name = "x"}) -> tensor<2x!quant.uniform<i8:f32, 0.1:0>> {
  %k = "tfl.const"() <{value = dense<"0x0000807F0000803F"> : tensor<2xf32>}> {names = ["inf"]} : () -> tensor<2xf32>
  %kq = quant.qcast %k : tensor<2xf32> -> tensor<2x!quant.uniform<i8:f32, 0.1:0>>
  func.return %kq : tensor<2x!quant.uniform<i8:f32, 0.1:0>>
}
