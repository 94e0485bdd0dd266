// RUN: tflquant-opt %s --split-input-file -p freeze-batch-size | filecheck %s
// RUN: tflquant-opt %s --split-input-file -p 'freeze-batch-size{size=4}' | filecheck %s --check-prefix=FOUR

// The dynamic batch of the input becomes 1 and static shapes flow through elementwise ops
// (with broadcasting), FULLY_CONNECTED, RESHAPE and TRANSPOSE with constant operands,
// SOFTMAX, MEAN and CONCATENATION; names and arg attributes stay. A RESHAPE whose shape is
// computed at run time keeps its dynamic dims, and so does what follows it.
// CHECK-LABEL: func.func @main
// CHECK-SAME:    (%x: tensor<1x4x8xf32> {tfl.name = "in"}) -> (tensor<1x8x4xf32>, tensor<1x4xf32>, tensor<?x?xf32>)
// CHECK:         "tfl.add"(%x, %{{.*}}) {names = ["add"]} : (tensor<1x4x8xf32>, tensor<8xf32>) -> tensor<1x4x8xf32>
// CHECK:         "tfl.fully_connected"({{.*}}) <{keep_num_dims = true}> {names = ["fc"]} : (tensor<1x4x8xf32>, tensor<8x8xf32>, none) -> tensor<1x4x8xf32>
// CHECK:         "tfl.reshape"({{.*}}) {names = ["flat"]} : (tensor<1x4x8xf32>, tensor<2xi32>) -> tensor<1x32xf32>
// CHECK:         "tfl.softmax"({{.*}}) -> tensor<1x32xf32>
// CHECK:         "tfl.transpose"({{.*}}) {names = ["tr"]} : (tensor<1x4x8xf32>, tensor<3xi32>) -> tensor<1x8x4xf32>
// CHECK:         "tfl.mean"({{.*}}) <{keep_dims = false}> {names = ["mean"]} : (tensor<1x4x8xf32>, tensor<1xi32>) -> tensor<1x4xf32>
// CHECK:         "tfl.concatenation"({{.*}}) -> tensor<1x64xf32>
// CHECK:         "tfl.shape"(%x) <{out_type = "INT32"}> : (tensor<1x4x8xf32>) -> tensor<3xi32>
// CHECK:         "tfl.reshape"({{.*}}) {names = ["runtime"]} : (tensor<1x4x8xf32>, tensor<2xi32>) -> tensor<?x?xf32>
// CHECK:         "tfl.relu"({{.*}}) : (tensor<?x?xf32>) -> tensor<?x?xf32>
// CHECK:         func.return {{.*}} : tensor<1x8x4xf32>, tensor<1x4xf32>, tensor<?x?xf32>
// FOUR-LABEL: func.func @main
// FOUR-SAME:    (%x: tensor<4x4x8xf32> {tfl.name = "in"}) -> (tensor<4x8x4xf32>, tensor<4x4xf32>, tensor<?x?xf32>)
// FOUR:         "tfl.reshape"({{.*}}) {names = ["flat"]} : (tensor<4x4x8xf32>, tensor<2xi32>) -> tensor<4x32xf32>
func.func @main(%x: tensor<?x4x8xf32> {tfl.name = "in"}) -> (tensor<?x8x4xf32>, tensor<?x4xf32>, tensor<?x?xf32>) {
  %b = "tfl.const"() <{value = dense<1.0> : tensor<8xf32>}> : () -> tensor<8xf32>
  %a = "tfl.add"(%x, %b) {names = ["add"]} : (tensor<?x4x8xf32>, tensor<8xf32>) -> tensor<?x4x8xf32>
  %w = "tfl.const"() <{value = dense<0.5> : tensor<8x8xf32>}> : () -> tensor<8x8xf32>
  %n = tfl.no_value
  %fc = "tfl.fully_connected"(%a, %w, %n) <{keep_num_dims = true}> {names = ["fc"]} : (tensor<?x4x8xf32>, tensor<8x8xf32>, none) -> tensor<?x4x8xf32>
  %s = "tfl.const"() <{value = dense<[-1, 32]> : tensor<2xi32>}> : () -> tensor<2xi32>
  %flat = "tfl.reshape"(%fc, %s) {names = ["flat"]} : (tensor<?x4x8xf32>, tensor<2xi32>) -> tensor<?x32xf32>
  %sm = "tfl.softmax"(%flat) <{beta = 1.0 : f32}> {names = ["sm"]} : (tensor<?x32xf32>) -> tensor<?x32xf32>
  %p = "tfl.const"() <{value = dense<[0, 2, 1]> : tensor<3xi32>}> : () -> tensor<3xi32>
  %tr = "tfl.transpose"(%fc, %p) {names = ["tr"]} : (tensor<?x4x8xf32>, tensor<3xi32>) -> tensor<?x8x4xf32>
  %ax = "tfl.const"() <{value = dense<[2]> : tensor<1xi32>}> : () -> tensor<1xi32>
  %m = "tfl.mean"(%a, %ax) <{keep_dims = false}> {names = ["mean"]} : (tensor<?x4x8xf32>, tensor<1xi32>) -> tensor<?x4xf32>
  %c = "tfl.concatenation"(%sm, %flat) <{axis = 1 : i32}> {names = ["cat"]} : (tensor<?x32xf32>, tensor<?x32xf32>) -> tensor<?x64xf32>
  %sh = "tfl.shape"(%x) <{out_type = "INT32"}> : (tensor<?x4x8xf32>) -> tensor<3xi32>
  %i = "tfl.const"() <{value = dense<[0, 1]> : tensor<2xi32>}> : () -> tensor<2xi32>
  %g = "tfl.gather"(%sh, %i) : (tensor<3xi32>, tensor<2xi32>) -> tensor<2xi32>
  %rt = "tfl.reshape"(%x, %g) {names = ["runtime"]} : (tensor<?x4x8xf32>, tensor<2xi32>) -> tensor<?x?xf32>
  %r = "tfl.relu"(%rt) : (tensor<?x?xf32>) -> tensor<?x?xf32>
  func.return %tr, %m, %r : tensor<?x8x4xf32>, tensor<?x4xf32>, tensor<?x?xf32>
}

// -----

// Only the leading dim is frozen: other dynamic dims stay, and elementwise ops still carry
// the known ones. Functions other than the entry function (control-flow bodies) keep
// their types.
// CHECK-LABEL: func.func @seq
// CHECK-SAME:    (%x: tensor<1x?x8xf32>) -> tensor<1x?x8xf32>
// CHECK:         "tfl.mul"(%x, %{{.*}}) : (tensor<1x?x8xf32>, tensor<1x1x8xf32>) -> tensor<1x?x8xf32>
// CHECK-LABEL: func.func @body
// CHECK-SAME:    (%y: tensor<?x8xf32>) -> tensor<?x8xf32>
func.func @seq(%x: tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  %k = "tfl.const"() <{value = dense<2.0> : tensor<1x1x8xf32>}> : () -> tensor<1x1x8xf32>
  %y = "tfl.mul"(%x, %k) : (tensor<?x?x8xf32>, tensor<1x1x8xf32>) -> tensor<?x?x8xf32>
  func.return %y : tensor<?x?x8xf32>
}
func.func @body(%y: tensor<?x8xf32>) -> tensor<?x8xf32> {
  func.return %y : tensor<?x8xf32>
}

// -----

// With signature defs, every function a signature names is an entry function; the
// signatures are untouched.
// CHECK:       tfl.signatures = [{key = "a", function = "fa"}, {key = "b", function = "fb"}]
// CHECK-LABEL: func.func @fa
// CHECK-SAME:    -> tensor<1x3xf32>
// CHECK:         "tfl.conv_2d"{{.*}} : (tensor<1x8x8x2xf32>, tensor<3x3x3x2xf32>, tensor<3xf32>) -> tensor<1x4x4x3xf32>
// CHECK:         "tfl.average_pool_2d"{{.*}} -> tensor<1x1x1x3xf32>
// CHECK:         "tfl.batch_matmul"{{.*}} -> tensor<1x1x3xf32>
// CHECK-LABEL: func.func @fb
// CHECK-SAME:    (%x: tensor<1x2xi32>) -> tensor<1x2x4xf32>
// CHECK-LABEL: func.func @other
// CHECK-SAME:    (%x: tensor<?x2xf32>)
builtin.module attributes {tfl.signatures = [{key = "a", function = "fa"}, {key = "b", function = "fb"}]} {
  func.func @fa(%x: tensor<?x8x8x2xf32>) -> tensor<?x3xf32> {
    %w = "tfl.const"() <{value = dense<0.1> : tensor<3x3x3x2xf32>}> : () -> tensor<3x3x3x2xf32>
    %b = "tfl.const"() <{value = dense<0.0> : tensor<3xf32>}> : () -> tensor<3xf32>
    %c = "tfl.conv_2d"(%x, %w, %b) <{padding = "SAME", stride_h = 2 : i32, stride_w = 2 : i32}> : (tensor<?x8x8x2xf32>, tensor<3x3x3x2xf32>, tensor<3xf32>) -> tensor<?x?x?x3xf32>
    %p = "tfl.average_pool_2d"(%c) <{padding = "VALID", filter_height = 4 : i32, filter_width = 4 : i32, stride_h = 4 : i32, stride_w = 4 : i32}> : (tensor<?x?x?x3xf32>) -> tensor<?x1x1x3xf32>
    %s = "tfl.const"() <{value = dense<[-1, 1, 3]> : tensor<3xi32>}> : () -> tensor<3xi32>
    %r = "tfl.reshape"(%p, %s) : (tensor<?x1x1x3xf32>, tensor<3xi32>) -> tensor<?x1x3xf32>
    %m = "tfl.const"() <{value = dense<1.0> : tensor<3x3xf32>}> : () -> tensor<3x3xf32>
    %bm = "tfl.batch_matmul"(%r, %m) : (tensor<?x1x3xf32>, tensor<3x3xf32>) -> tensor<?x1x3xf32>
    %s2 = "tfl.const"() <{value = dense<[-1, 3]> : tensor<2xi32>}> : () -> tensor<2xi32>
    %o = "tfl.reshape"(%bm, %s2) : (tensor<?x1x3xf32>, tensor<2xi32>) -> tensor<?x3xf32>
    func.return %o : tensor<?x3xf32>
  }
  func.func @fb(%x: tensor<?x2xi32>) -> tensor<?x2x4xf32> {
    %t = "tfl.const"() <{value = dense<1.0> : tensor<5x4xf32>}> : () -> tensor<5x4xf32>
    %g = "tfl.gather"(%t, %x) : (tensor<5x4xf32>, tensor<?x2xi32>) -> tensor<?x2x4xf32>
    func.return %g : tensor<?x2x4xf32>
  }
  func.func @other(%x: tensor<?x2xf32>) -> tensor<?x2xf32> {
    func.return %x : tensor<?x2xf32>
  }
}
