import { JsonKind, JsonParser } from "../../../assembly/config/json";

function parseOk(text: string): JsonKind {
  const p = new JsonParser(text);
  const v = p.parse();
  expect(p.error).toBe("", text);
  return v!.kind;
}

function parseError(text: string): string {
  const p = new JsonParser(text);
  expect(p.parse()).toBeNull(text);
  return p.error + "@" + p.errorPos.toString();
}

describe("JsonParser", () => {
  it("reads every kind of value", () => {
    expect(parseOk("null")).toBe(JsonKind.Null);
    expect(parseOk(" true ")).toBe(JsonKind.Bool);
    expect(parseOk("-12.5e3")).toBe(JsonKind.Number);
    expect(parseOk('"a\\u0041\\n"')).toBe(JsonKind.String);
    expect(parseOk("[1, [2], {}]")).toBe(JsonKind.Array);
    expect(parseOk('{"a": {"b": [true, false, null]}}')).toBe(JsonKind.Object);
  });

  it("keeps member order, values and offsets", () => {
    const v = new JsonParser('{"reporter": "source", "n": 42, "s": "x\\"y"}').parse()!;
    expect(v.keys.join(",")).toBe("reporter,n,s");
    expect(v.get("reporter")!.stringValue).toBe("source");
    expect(v.get("reporter")!.pos).toBe(13);
    expect(v.get("n")!.numberValue).toBe(42.0);
    expect(v.get("s")!.stringValue).toBe('x"y');
    expect(v.get("missing")).toBeNull();
  });

  it("reports malformed input with its offset instead of trapping", () => {
    expect(parseError("")).toBe("unexpected end of input@0");
    expect(parseError("{")).toBe("expected a member name@1");
    expect(parseError('{"a" 1}')).toBe("expected ':'@5");
    expect(parseError('{"a": 1,}')).toBe("expected a member name@8");
    expect(parseError("[1 2]")).toBe("expected ',' or ']'@3");
    expect(parseError('"abc')).toBe("unterminated string@4");
    expect(parseError('"\\x"')).toBe("unknown escape@2");
    expect(parseError('"\\u12g4"')).toBe("malformed \\u escape@5");
    expect(parseError("01")).toBe("leading zero in number@1");
    expect(parseError("1x")).toBe("unexpected trailing characters@1");
    expect(parseError("-")).toBe("malformed number@1");
    expect(parseError("tru")).toBe("unexpected character 't'@0");
    expect(parseError('{"a": 1, "a": 2}')).toBe("duplicate member 'a'@9");
    expect(parseError("{} x")).toBe("unexpected trailing characters@3");
  });

  it("refuses nesting deeper than 64 levels", () => {
    expect(parseError("[".repeat(100) + "]".repeat(100))).toBe("nesting deeper than 64@65");
  });
});
