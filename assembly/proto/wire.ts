// Bounds-checked reading of protobuf's wire format over bytes in linear memory. What the host
// or the network sends (a CEL ListValue from Envoy, an OTLP collector's answer) is not trusted:
// a malformed field sets `failed` and reading stops; nothing traps and nothing allocates.

export const WIRE_VARINT: u32 = 0;
export const WIRE_I64: u32 = 1;
export const WIRE_LEN: u32 = 2;
export const WIRE_I32: u32 = 5;

export class WireReader {
  pos: usize = 0;
  end: usize = 0;
  failed: bool = false;

  /** Positions the reader on the bytes [start, end). */
  reset(start: usize, end: usize): WireReader {
    this.pos = start;
    this.end = end;
    this.failed = false;
    return this;
  }

  more(): bool {
    return !this.failed && this.pos < this.end;
  }

  /** A varint: at most ten bytes, bits past the 64th dropped as C++ does. 0 and `failed` when malformed. */
  varint(): u64 {
    let value: u64 = 0;
    for (let shift: u64 = 0; shift < 70; shift += 7) {
      if (this.pos >= this.end) break;
      const b = load<u8>(this.pos++);
      value |= <u64>(b & 0x7f) << shift;
      if (b < 0x80) return value;
    }
    this.failed = true;
    return 0;
  }

  /** The next field's key (field number << 3 | wire type); 0 and `failed` when malformed. */
  key(): u32 {
    const k = this.varint();
    if (this.failed || k > <u64>u32.MAX_VALUE || k >> 3 == 0) {
      this.failed = true;
      return 0;
    }
    return <u32>k;
  }

  /** Reads a length prefix; the reader stands at the field's first byte, the answer is its end. */
  lengthEnd(): usize {
    const n = this.varint();
    if (this.failed || n > <u64>(this.end - this.pos)) {
      this.failed = true;
      return this.pos;
    }
    return this.pos + <usize>n;
  }

  /** Skips one field of wire type `wire`; groups and undefined wire types fail. */
  skip(wire: u32): void {
    if (wire == WIRE_VARINT) this.varint();
    else if (wire == WIRE_LEN) this.pos = this.lengthEnd();
    else if (wire == WIRE_I64) this.advance(8);
    else if (wire == WIRE_I32) this.advance(4);
    else this.failed = true;
  }

  /** Moves past `n` bytes, or fails when fewer are left. */
  advance(n: usize): void {
    if (n > this.end - this.pos) this.failed = true;
    else this.pos += n;
  }
}
