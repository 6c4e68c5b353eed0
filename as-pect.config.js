// as-pect runs the AssemblyScript unit specs in tests/unit against pure modules (parsers,
// encoders, codecs). Behaviour that needs a proxy is tested against real Envoy instead.
export default {
  entries: ["tests/unit/**/*.spec.ts"],
  include: [],
  disclude: [/node_modules/],
  async instantiate(memory, createImports, instantiate, binary) {
    return instantiate(binary, createImports({ env: { memory } }));
  },
  outputBinary: false,
};
