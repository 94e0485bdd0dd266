// The tflquant-opt driver: pass listing, IR dumps between passes, stdin, split input,
// and one-line errors with exit status 2.

// RUN: tflquant-opt --list-passes | filecheck %s --check-prefix=LIST
// LIST: tflquant passes
// LIST: fold-reshape-chain{remove-identity=true}
// LIST-NEXT: Collapses RESHAPE chains into one RESHAPE and removes identity reshapes; values unchanged.

// RUN: tflquant-opt %s -p 'fold-reshape-chain,cse' --print-ir-after-all 2>&1 >/dev/null | filecheck %s --check-prefix=AFTER
// AFTER: // -----// IR Dump After fold-reshape-chain //----- //
// AFTER: // -----// IR Dump After cse //----- //

// RUN: tflquant-opt %s -p fold-reshape-chain --print-ir-before=fold-reshape-chain 2>&1 >/dev/null | filecheck %s --check-prefix=BEFORE
// BEFORE: // -----// IR Dump Before fold-reshape-chain //----- //
// BEFORE-COUNT-2: "tfl.reshape"

// RUN: cat %s | tflquant-opt - -p fold-reshape-chain | filecheck %s --check-prefix=STDIN
// STDIN: func.func @f
// STDIN-COUNT-1: "tfl.reshape"
// STDIN-NOT: "tfl.reshape"

// RUN: tflquant-opt %s -o %t.mlir && tflquant-opt %t.mlir | filecheck %s --check-prefix=OUT
// OUT: func.func @f

// RUN: not tflquant-opt %s -p no-such-pass 2>&1 | filecheck %s --check-prefix=BADPASS
// BADPASS: tflquant-opt: error: bad pass pipeline 'no-such-pass': Unrecognized passes: ['no-such-pass']

// An unquoted option value is a syntax error of the spec: one line, no traceback.
// RUN: not tflquant-opt %s -p 'correct-bias{stats-file=x.json}' 2>&1 | filecheck %s --check-prefix=BADSPEC
// BADSPEC: tflquant-opt: error: bad pass pipeline 'correct-bias{stats-file=x.json}':
// BADSPEC-NOT: Traceback

// RUN: not tflquant-opt %s.missing 2>&1 | filecheck %s --check-prefix=MISSING
// MISSING: tflquant-opt: error:

// A .tflite in, a .tflite out (the writer), read back.
// RUN: tflquant-opt %S/../../../examples/digits_cnn.tflite -p fold-reshape-chain -o %t.tflite && tflquant-opt %t.tflite | filecheck %s --check-prefix=TFLITE
// TFLITE: func.func @main(%0: tensor<?x16x16x1xf32> {tfl.name = "serving_default_keras_tensor:0"})
// TFLITE: "tfl.softmax"

// RUN: tflquant-opt --print-pipeline int8 | filecheck %s --check-prefix=PIPE
// PIPE: annotate-calibration,fold-bias-add,insert-fake-quant

// The integer-only pipeline for TFLite Micro: static shapes first, Micro's checks last.
// RUN: tflquant-opt --print-pipeline int8 --io-type int8 --target micro | filecheck %s --check-prefix=MICRO
// MICRO: freeze-batch-size,fold-constants,annotate-calibration,
// MICRO-SAME: set-io-types{type=int8},legalize-for-micro,check-micro
// RUN: tflquant-opt --print-pipeline int8 --io-type int8 | filecheck %s --check-prefix=LITERT
// LITERT-NOT: micro
// LITERT: set-io-types{type=int8}
// LITERT-NOT: micro

func.func @f(%x: tensor<1x6xf32>) -> tensor<6xf32> {
  %s1 = "tfl.const"() <{value = dense<[2, 3]> : tensor<2xi32>}> : () -> tensor<2xi32>
  %a = "tfl.reshape"(%x, %s1) : (tensor<1x6xf32>, tensor<2xi32>) -> tensor<2x3xf32>
  %s2 = "tfl.const"() <{value = dense<[6]> : tensor<1xi32>}> : () -> tensor<1xi32>
  %b = "tfl.reshape"(%a, %s2) : (tensor<2x3xf32>, tensor<1xi32>) -> tensor<6xf32>
  func.return %b : tensor<6xf32>
}
