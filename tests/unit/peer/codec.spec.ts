import { base64Decode, base64Encode } from "../../../assembly/peer/base64";
import { PbValue, ValueKind, decodeStruct, encodeStruct } from "../../../assembly/peer/struct";

// Expected Struct bytes, made with protobuf's deterministic serialization from JSON ($JSON below):
//   PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python python3 -c 'import base64,json,sys; from google.protobuf import struct_pb2 as p; s=p.Struct(); s.update(json.loads(sys.argv[1])); print(base64.b64encode(s.SerializeToString(deterministic=True)).decode())' "$JSON"
// C++ libprotobuf 3.21 parsing these and re-serializing them deterministically gives the same bytes.
// The pure-Python backend is forced on purpose: the default upb backend (protobuf 7.36) puts a key
// after the keys it is a prefix of ("NAMESPACE" before "NAME"), which C++ does not.

// $JSON = {"NAME": "productpage-v1-abc", "NAMESPACE": "default", "WORKLOAD_NAME": "productpage-v1",
//   "CLUSTER_ID": "Kubernetes", "OWNER": "kubernetes://apis/apps/v1/namespaces/default/deployments/productpage-v1",
//   "LABELS": {"app": "productpage", "version": "v1", "service.istio.io/canonical-name": "productpage",
//   "service.istio.io/canonical-revision": "v1"}}
const ISTIO =
  "ChoKCkNMVVNURVJfSUQSDBoKS3ViZXJuZXRlcwqUAQoGTEFCRUxTEokBKoYBChQKA2FwcBINGgtwcm9kdWN0cGFnZQowCh9zZXJ2aWNlLmlz" +
  "dGlvLmlvL2Nhbm9uaWNhbC1uYW1lEg0aC3Byb2R1Y3RwYWdlCisKI3NlcnZpY2UuaXN0aW8uaW8vY2Fub25pY2FsLXJldmlzaW9uEgQaAnYx" +
  "Cg8KB3ZlcnNpb24SBBoCdjEKHAoETkFNRRIUGhJwcm9kdWN0cGFnZS12MS1hYmMKFgoJTkFNRVNQQUNFEgkaB2RlZmF1bHQKUgoFT1dORVIS" +
  "SRpHa3ViZXJuZXRlczovL2FwaXMvYXBwcy92MS9uYW1lc3BhY2VzL2RlZmF1bHQvZGVwbG95bWVudHMvcHJvZHVjdHBhZ2UtdjEKIQoNV09S" +
  "S0xPQURfTkFNRRIQGg5wcm9kdWN0cGFnZS12MQ==";

// The same payload as the upb backend orders it: valid protobuf in another entry order, as a
// peer that does not serialize deterministically may send.
const ISTIO_UPB_ORDER =
  "ChoKCkNMVVNURVJfSUQSDBoKS3ViZXJuZXRlcwqUAQoGTEFCRUxTEokBKoYBChQKA2FwcBINGgtwcm9kdWN0cGFnZQowCh9zZXJ2aWNlLmlz" +
  "dGlvLmlvL2Nhbm9uaWNhbC1uYW1lEg0aC3Byb2R1Y3RwYWdlCisKI3NlcnZpY2UuaXN0aW8uaW8vY2Fub25pY2FsLXJldmlzaW9uEgQaAnYx" +
  "Cg8KB3ZlcnNpb24SBBoCdjEKFgoJTkFNRVNQQUNFEgkaB2RlZmF1bHQKHAoETkFNRRIUGhJwcm9kdWN0cGFnZS12MS1hYmMKUgoFT1dORVIS" +
  "SRpHa3ViZXJuZXRlczovL2FwaXMvYXBwcy92MS9uYW1lc3BhY2VzL2RlZmF1bHQvZGVwbG95bWVudHMvcHJvZHVjdHBhZ2UtdjEKIQoNV09S" +
  "S0xPQURfTkFNRRIQGg5wcm9kdWN0cGFnZS12MQ==";

// $JSON = {"n": 1.5, "ok": true, "none": null, "empty": "", "list": [1, "two", false, null, [], {}], "ключ": "wert-ü"}
const MIXED =
  "CgsKBWVtcHR5EgIaAAosCgRsaXN0EiQyIgoJEQAAAAAAAPA/CgUaA3R3bwoCIAAKAggACgIyAAoCKgAKDgoBbhIJEQAAAAAAAPg/CgoKBG5v" +
  "bmUSAggACggKAm9rEgIgAQoVCgjQutC70Y7RhxIJGgd3ZXJ0LcO8";

// $JSON = {"\uff21": 1, "\ud83d\ude00": 2, "": "", "a": 0, "ab": -2.25, "b": {}, "c": [], "big": 1e300}
// U+FF21 sorts before U+1F600 in UTF-8 but after it in UTF-16; "" and prefixes sort first.
const EDGE =
  "CgYKABICGgAKDgoBYRIJEQAAAAAAAAAACg8KAmFiEgkRAAAAAAAAAsAKBwoBYhICKgAKEAoDYmlnEgkRnHUAiDzkN34KBwoBYxICMgAKEAoD" +
  "77yhEgkRAAAAAAAA8D8KEQoE8J+YgBIJEQAAAAAAAABA";

function bytes(b64: string): Uint8Array {
  return base64Decode(b64)!;
}

function utf8(s: string): Uint8Array {
  return Uint8Array.wrap(String.UTF8.encode(s));
}

function hexDigit(c: i32): i32 {
  return c <= 0x39 ? c - 0x30 : c - 0x61 + 10;
}

function fromHex(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length >> 1);
  for (let i = 0; i < out.length; i++) {
    out[i] = <u8>((hexDigit(hex.charCodeAt(2 * i)) << 4) | hexDigit(hex.charCodeAt(2 * i + 1)));
  }
  return out;
}

function toHex(data: Uint8Array): string {
  const digits = "0123456789abcdef";
  let s = "";
  for (let i = 0; i < data.length; i++) {
    s += digits.charAt(data[i] >> 4) + digits.charAt(data[i] & 15);
  }
  return s;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

function istioPayload(): PbValue {
  const labels = PbValue.struct()
    .set("app", PbValue.string("productpage"))
    .set("version", PbValue.string("v1"))
    .set("service.istio.io/canonical-name", PbValue.string("productpage"))
    .set("service.istio.io/canonical-revision", PbValue.string("v1"));
  return PbValue.struct()
    .set("NAME", PbValue.string("productpage-v1-abc"))
    .set("NAMESPACE", PbValue.string("default"))
    .set("WORKLOAD_NAME", PbValue.string("productpage-v1"))
    .set("CLUSTER_ID", PbValue.string("Kubernetes"))
    .set("OWNER", PbValue.string("kubernetes://apis/apps/v1/namespaces/default/deployments/productpage-v1"))
    .set("LABELS", labels);
}

/** `levels` Structs, each the member "a" of the one before. */
function nestedStructs(levels: i32): PbValue {
  const root = PbValue.struct();
  let current = root;
  for (let i = 1; i < levels; i++) {
    const inner = PbValue.struct();
    current.set("a", inner);
    current = inner;
  }
  return root;
}

/** A Struct holding `levels` Lists, each the only item of the one before. */
function nestedLists(levels: i32): PbValue {
  const outer = PbValue.list();
  let current = outer;
  for (let i = 1; i < levels; i++) {
    const inner = PbValue.list();
    current.push(inner);
    current = inner;
  }
  return PbValue.struct().set("l", outer);
}

// xorshift32 with a fixed seed, so the garbage corpus is the same on every run.
let rngState: u32 = 0x9e3779b9;
function nextRandom(): u32 {
  let x = rngState;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  rngState = x;
  return x;
}

/** Decodes hostile bytes; whatever is accepted must re-encode to a stable, decodable form. */
function decodeHostile(data: Uint8Array): bool {
  const v = decodeStruct(data);
  if (v === null) return false;
  const once = encodeStruct(v);
  const again = decodeStruct(once);
  expect(again).not.toBeNull(toHex(data));
  expect(toHex(encodeStruct(again!))).toBe(toHex(once), toHex(data));
  return true;
}

describe("base64", () => {
  it("matches the RFC 4648 test vectors both ways", () => {
    const plain: StaticArray<string> = ["", "f", "fo", "foo", "foob", "fooba", "foobar"];
    const coded: StaticArray<string> = ["", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"];
    for (let i = 0; i < plain.length; i++) {
      expect(base64Encode(utf8(plain[i]))).toBe(coded[i]);
      expect(toHex(base64Decode(coded[i])!)).toBe(toHex(utf8(plain[i])));
    }
  });

  it("uses the + and / alphabet", () => {
    expect(base64Encode(fromHex("fbffbf"))).toBe("+/+/");
    expect(toHex(base64Decode("+/+/")!)).toBe("fbffbf");
  });

  it("round-trips every byte value at every length up to 300", () => {
    for (let n = 0; n <= 300; n++) {
      const data = new Uint8Array(n);
      for (let i = 0; i < n; i++) data[i] = <u8>(i * 7 + n);
      const text = base64Encode(data);
      expect(text.length).toBe(((n + 2) / 3) * 4);
      expect(toHex(base64Decode(text)!)).toBe(toHex(data));
    }
  });

  it("decodes unpadded text", () => {
    expect(toHex(base64Decode("Zg")!)).toBe(toHex(utf8("f")));
    expect(toHex(base64Decode("Zm8")!)).toBe(toHex(utf8("fo")));
    expect(toHex(base64Decode("Zm9vYg")!)).toBe(toHex(utf8("foob")));
    expect(toHex(base64Decode("Zm9vYmE")!)).toBe(toHex(utf8("fooba")));
    expect(toHex(base64Decode(ISTIO.slice(0, ISTIO.length - 2))!)).toBe(toHex(bytes(ISTIO)));
  });

  it("refuses invalid characters, lengths and padding", () => {
    const bad: StaticArray<string> = [
      "Z", "Zm9vY", // a lone trailing character
      "Zg=", "Zm9vYg=", "Zg===", "A===", "====", "=", "==", // padding that does not complete a quantum
      "=Zg=", "Z=g=", "Zg==Zg==", "Zm9v====", // padding elsewhere than the end
      "Zm 9v", "Zm9v\n", " Zm9v", "Zm-_", "Zm9v.", "Zm9\u0000", "Zm9vü", "Zm9v\uD800", // not in the alphabet
    ];
    for (let i = 0; i < bad.length; i++) expect(base64Decode(bad[i])).toBeNull(bad[i]);
  });

  it("never traps on random text", () => {
    const chars = "ABCxyz019+/=-_ \n\u00ff\u4e2d";
    let accepted = 0;
    for (let n = 0; n < 500; n++) {
      let text = "";
      const len = nextRandom() % 13;
      for (let i: u32 = 0; i < len; i++) text += chars.charAt(<i32>(nextRandom() % <u32>chars.length));
      const decoded = base64Decode(text);
      if (decoded !== null) {
        accepted++;
        expect(base64Decode(base64Encode(decoded))!.length).toBe(decoded.length);
      }
    }
    expect(accepted).toBeGreaterThan(0);
  });
});

describe("Struct encoding", () => {
  it("encodes Istio peer metadata exactly as C++ deterministic serialization does", () => {
    expect(base64Encode(encodeStruct(istioPayload()))).toBe(ISTIO);
  });

  it("sorts by key at every level whatever the insertion order, without reordering the input", () => {
    const labels = PbValue.struct()
      .set("service.istio.io/canonical-revision", PbValue.string("v1"))
      .set("version", PbValue.string("v1"))
      .set("app", PbValue.string("productpage"))
      .set("service.istio.io/canonical-name", PbValue.string("productpage"));
    const payload = PbValue.struct()
      .set("WORKLOAD_NAME", PbValue.string("productpage-v1"))
      .set("LABELS", labels)
      .set("OWNER", PbValue.string("kubernetes://apis/apps/v1/namespaces/default/deployments/productpage-v1"))
      .set("NAMESPACE", PbValue.string("default"))
      .set("NAME", PbValue.string("productpage-v1-abc"))
      .set("CLUSTER_ID", PbValue.string("Kubernetes"));
    expect(base64Encode(encodeStruct(payload))).toBe(ISTIO);
    expect(payload.keys.join(",")).toBe("WORKLOAD_NAME,LABELS,OWNER,NAMESPACE,NAME,CLUSTER_ID");
    expect(labels.keys[0]).toBe("service.istio.io/canonical-revision");
  });

  it("writes numbers, bools, null, empty strings, lists and non-ASCII text", () => {
    const list = PbValue.list()
      .push(PbValue.number(1))
      .push(PbValue.string("two"))
      .push(PbValue.bool(false))
      .push(PbValue.nullValue())
      .push(PbValue.list())
      .push(PbValue.struct());
    const payload = PbValue.struct()
      .set("n", PbValue.number(1.5))
      .set("ok", PbValue.bool(true))
      .set("none", PbValue.nullValue())
      .set("empty", PbValue.string(""))
      .set("list", list)
      .set("ключ", PbValue.string("wert-ü"));
    expect(base64Encode(encodeStruct(payload))).toBe(MIXED);
  });

  it("orders by UTF-8 bytes and keeps empty keys, zero and empty containers", () => {
    const payload = PbValue.struct()
      .set("\uff21", PbValue.number(1))
      .set("\ud83d\ude00", PbValue.number(2))
      .set("", PbValue.string(""))
      .set("a", PbValue.number(0))
      .set("ab", PbValue.number(-2.25))
      .set("b", PbValue.struct())
      .set("c", PbValue.list())
      .set("big", PbValue.number(1e300));
    expect(base64Encode(encodeStruct(payload))).toBe(EDGE);
  });

  it("replaces a member set twice, in place", () => {
    const s = PbValue.struct()
      .set("a", PbValue.string("1"))
      .set("b", PbValue.bool(true))
      .set("a", PbValue.string("2"));
    expect(s.keys.join(",")).toBe("a,b");
    expect(s.getString("a")).toBe("2");
    expect(s.getString("b")).toBeNull();
  });

  it("writes the empty Struct as no bytes", () => {
    expect(encodeStruct(PbValue.struct()).length).toBe(0);
  });

  it("replaces unpaired surrogates so the bytes stay valid UTF-8", () => {
    // {"k": "\ud800"} with U+FFFD (ef bf bd) in place of the lone surrogate.
    expect(toHex(encodeStruct(PbValue.struct().set("k", PbValue.string("\ud800"))))).toBe("0a0a0a016b12051a03efbfbd");
  });

  it("grows its buffer for large payloads", () => {
    const payload = PbValue.struct();
    for (let i = 0; i < 200; i++) payload.set("key-" + i.toString(), PbValue.string("x".repeat(i)));
    const decoded = decodeStruct(encodeStruct(payload))!;
    expect(decoded.keys.length).toBe(200);
    expect(decoded.getString("key-199")).toBe("x".repeat(199));
  });
});

describe("Struct decoding", () => {
  it("reads Istio peer metadata with its nested LABELS", () => {
    const v = decodeStruct(bytes(ISTIO))!;
    expect(v.kind).toBe(ValueKind.Struct);
    expect(v.keys.length).toBe(6);
    expect(v.getString("NAME")).toBe("productpage-v1-abc");
    expect(v.getString("NAMESPACE")).toBe("default");
    expect(v.getString("WORKLOAD_NAME")).toBe("productpage-v1");
    expect(v.getString("CLUSTER_ID")).toBe("Kubernetes");
    expect(v.getString("OWNER")).toBe("kubernetes://apis/apps/v1/namespaces/default/deployments/productpage-v1");
    expect(v.getString("LABELS")).toBeNull();
    expect(v.getString("MESH_ID")).toBeNull();
    const labels = v.get("LABELS")!;
    expect(labels.kind).toBe(ValueKind.Struct);
    expect(labels.keys.length).toBe(4);
    expect(labels.getString("app")).toBe("productpage");
    expect(labels.getString("version")).toBe("v1");
    expect(labels.getString("service.istio.io/canonical-name")).toBe("productpage");
    expect(labels.getString("service.istio.io/canonical-revision")).toBe("v1");
  });

  it("reads entries in any order and re-encodes them deterministically", () => {
    const v = decodeStruct(bytes(ISTIO_UPB_ORDER))!;
    expect(v.getString("NAME")).toBe("productpage-v1-abc");
    expect(v.getString("NAMESPACE")).toBe("default");
    expect(base64Encode(encodeStruct(v))).toBe(ISTIO);
  });

  it("reads every kind of value", () => {
    const v = decodeStruct(bytes(MIXED))!;
    expect(v.get("n")!.kind).toBe(ValueKind.Number);
    expect(v.get("n")!.num).toBe(1.5);
    expect(v.get("ok")!.kind).toBe(ValueKind.Bool);
    expect(v.get("ok")!.flag).toBe(true);
    expect(v.get("none")!.kind).toBe(ValueKind.Null);
    expect(v.getString("empty")).toBe("");
    expect(v.getString("ключ")).toBe("wert-ü");
    const list = v.get("list")!;
    expect(list.kind).toBe(ValueKind.List);
    expect(list.items.length).toBe(6);
    expect(list.items[0].num).toBe(1.0);
    expect(list.items[1].str).toBe("two");
    expect(list.items[2].kind).toBe(ValueKind.Bool);
    expect(list.items[2].flag).toBe(false);
    expect(list.items[3].kind).toBe(ValueKind.Null);
    expect(list.items[4].kind).toBe(ValueKind.List);
    expect(list.items[5].kind).toBe(ValueKind.Struct);
    expect(base64Encode(encodeStruct(v))).toBe(MIXED);
  });

  it("round-trips empty keys, non-BMP keys and extreme numbers", () => {
    const v = decodeStruct(bytes(EDGE))!;
    expect(v.getString("")).toBe("");
    expect(v.get("\ud83d\ude00")!.num).toBe(2.0);
    expect(v.get("big")!.num).toBe(1e300);
    expect(base64Encode(encodeStruct(v))).toBe(EDGE);
  });

  it("reads an entry without key or value as the empty key and null", () => {
    // {key: "unset"} with an empty Value, then an entry holding only an empty Value.
    const v = decodeStruct(fromHex("0a090a05756e7365741200" + "0a021200"))!;
    expect(v.get("unset")!.kind).toBe(ValueKind.Null);
    expect(v.get("")!.kind).toBe(ValueKind.Null);
    expect(decodeStruct(new Uint8Array(0))!.keys.length).toBe(0);
  });

  it("keeps the last of repeated keys, replacing rather than merging", () => {
    // Concatenated messages merge, so this is one Struct that repeats "a" and "L".
    const first = PbValue.struct()
      .set("a", PbValue.string("1"))
      .set("L", PbValue.struct().set("x", PbValue.string("x")));
    const second = PbValue.struct()
      .set("a", PbValue.string("2"))
      .set("L", PbValue.struct().set("y", PbValue.string("y")))
      .set("b", PbValue.string("b"));
    const v = decodeStruct(concat(encodeStruct(first), encodeStruct(second)))!;
    expect(v.keys.length).toBe(3);
    expect(v.getString("a")).toBe("2");
    expect(v.getString("b")).toBe("b");
    expect(v.get("L")!.get("x")).toBeNull();
    expect(v.get("L")!.getString("y")).toBe("y");
  });

  it("merges a repeated Value field the way protobuf merges messages", () => {
    // Entry "k" whose value field appears three times: struct {x: "1"}, struct {y: "2"}, struct {x: "3"}.
    const v = decodeStruct(
      fromHex(
        "0a2d" + "0a016b" +
          "120c2a0a0a080a017812031a0131" + "120c2a0a0a080a017912031a0132" + "120c2a0a0a080a017812031a0133",
      ),
    );
    expect(v).not.toBeNull();
    const k = v!.get("k")!;
    expect(k.keys.length).toBe(2);
    expect(k.getString("x")).toBe("3");
    expect(k.getString("y")).toBe("2");
    // A later different kind replaces the earlier one: number 1.5, then string "s".
    const s = decodeStruct(fromHex("0a13" + "0a016b" + "1209" + "11000000000000f83f" + "1203" + "1a0173"))!;
    expect(s.get("k")!.kind).toBe(ValueKind.String);
    expect(s.getString("k")).toBe("s");
  });

  it("skips unknown fields of every wire type", () => {
    // varint field 2, fixed64 field 3, bytes field 4, fixed32 field 5 at the top, in the entry
    // (field 3 varint) and in the Value (field 7 varint), around {"k": "v"}.
    const unknownTop = "109601" + "190102030405060708" + "22026869" + "2d01020304";
    const v = decodeStruct(fromHex(unknownTop + "0a0d" + "18ff01" + "0a016b" + "1205" + "3801" + "1a0176" + unknownTop))!;
    expect(v.keys.length).toBe(1);
    expect(v.getString("k")).toBe("v");
  });

  it("accepts nesting up to maxDepth and refuses deeper", () => {
    expect(decodeStruct(encodeStruct(nestedStructs(16)))).not.toBeNull();
    expect(decodeStruct(encodeStruct(nestedStructs(17)))).toBeNull();
    expect(decodeStruct(encodeStruct(nestedStructs(17)), 17)).not.toBeNull();
    expect(decodeStruct(encodeStruct(nestedStructs(100)))).toBeNull();
    expect(decodeStruct(encodeStruct(nestedLists(100)))).toBeNull();
    const deep = decodeStruct(encodeStruct(nestedLists(100)), 101);
    expect(deep).not.toBeNull();
    expect(deep!.get("l")!.items[0].kind).toBe(ValueKind.List);
    expect(decodeStruct(bytes(ISTIO), 1)).toBeNull();
    expect(decodeStruct(bytes(ISTIO), 2)).not.toBeNull();
  });

  it("refuses truncated, oversized, mistyped and ill-formed input", () => {
    const bad: StaticArray<string> = [
      "0a", "0a80", "80", "0aff", // truncated tag or length varint
      "0a050a01", "0affffffff0f", "0affffffffffffffffff01", // length past the end
      "0a020a0561626364656667", // key length past its entry, though inside the buffer
      "0a041202110000", // number_value cut short
      "0a0b" + "12051100000000" + "0a020000", // number_value's 8 bytes past its Value
      "808080808080808080800100", // tag varint longer than ten bytes
      "ffffffff1f00", // tag beyond 32 bits
      "0000", "0200", // field number 0
      "0801", "0d00000000", // Struct.fields with a non-length wire type
      "0a020801", // entry key as varint
      "0a041202" + "1001", "0a041202" + "1801", "0a041202" + "2801", "0a041202" + "3001", // Value fields as varint
      "0a0b1209" + "210000000000000000", "0a071205" + "0d00000000", // bool as fixed64, null as fixed32
      "0a0612043202" + "0801", // ListValue.values as varint
      "0a03120500", // entry value's length past its entry
      "1300", "1400", "0a041202" + "3b3c", // groups, at the top and in a Value
      "1600", "1700", // wire types 6 and 7
      "1880", // unknown varint cut short
      "190102", "2d01", "2205", // unknown fixed and length fields cut short
    ];
    for (let i = 0; i < bad.length; i++) expect(decodeStruct(fromHex(bad[i]))).toBeNull(bad[i]);
  });

  it("refuses every truncation of a payload except at an entry boundary", () => {
    const full = bytes(ISTIO);
    let accepted = 0;
    for (let n = 0; n < full.length; n++) {
      const prefix = full.subarray(0, n);
      const v = decodeStruct(prefix);
      if (v === null) continue;
      // A cut between top-level entries is a valid, shorter Struct.
      accepted++;
      expect(toHex(encodeStruct(v))).toBe(toHex(prefix));
    }
    expect(accepted).toBe(6); // n = 0 and the ends of the first five entries
  });

  it("never traps on random bytes or on corrupted payloads", () => {
    let accepted = 0;
    for (let n = 0; n < 400; n++) {
      const data = new Uint8Array(nextRandom() % 48);
      for (let i = 0; i < data.length; i++) {
        // Bias towards small bytes so that tags and lengths are often plausible.
        const r = nextRandom();
        data[i] = <u8>(r & 1 ? r >> 8 : (r >> 8) & 0x3f);
      }
      if (decodeHostile(data)) accepted++;
    }
    const payload = bytes(MIXED);
    for (let n = 0; n < 400; n++) {
      const data = payload.slice(0);
      const flips = 1 + <i32>(nextRandom() % 3);
      for (let f = 0; f < flips; f++) data[<i32>(nextRandom() % <u32>data.length)] = <u8>nextRandom();
      if (decodeHostile(data)) accepted++;
    }
    expect(accepted).toBeGreaterThan(0);
  });
});
