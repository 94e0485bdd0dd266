// fold-bias-add rejects no IR (what it cannot fold it leaves alone: fold-bias-add.mlir,
// @kept); it takes no options.
// RUN: not tflquant-opt %s -p 'fold-bias-add{keep=1}' 2>&1 | filecheck %s --check-prefix=OPTION
// OPTION: tflquant-opt: error: bad pass pipeline 'fold-bias-add{keep=1}'

func.func @f(%x: tensor<1x2xf32>) -> tensor<1x2xf32> {
  func.return %x : tensor<1x2xf32>
}
