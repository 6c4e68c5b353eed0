// Writes a probed copy of a module (see probes.ts): `node probe-build.mjs in.wasm out.wasm
// fn...` puts a call to the import mesh_test.called(i) at the entry of the i-th function.
// Plain JavaScript run by node itself: under tsx, loading binaryen's 10 MB bundle takes
// seconds more than the work.
import { readFileSync, writeFileSync } from "node:fs";
import binaryen from "binaryen";

const [input, output, ...functions] = process.argv.slice(2);
// The features AssemblyScript 0.27 emits (the Makefile's WASM_FEATURES) and no more: with
// every feature on, binaryen writes encodings Node's V8 does not read.
const F = binaryen.Features;
const m = binaryen.readBinary(readFileSync(input));
m.setFeatures(F.MutableGlobals | F.NontrappingFPToInt | F.BulkMemory | F.BulkMemoryOpt | F.SignExt);
m.addFunctionImport("__probe", "mesh_test", "called", binaryen.i32, binaryen.none);
functions.forEach((name, i) => {
  const f = m.getFunction(name);
  if (!f) {
    console.error(`probe: no function ${name} in ${input}`);
    process.exit(2);
  }
  const info = binaryen.getFunctionInfo(f);
  binaryen.Function.setBody(f, m.block(null, [m.call("__probe", [m.i32.const(i)], binaryen.none), info.body], info.results));
});
if (!m.validate()) {
  console.error("probe: the instrumented module does not validate");
  process.exit(3);
}
writeFileSync(output, m.emitBinary());
m.dispose();
