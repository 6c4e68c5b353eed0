import { joinStaticStrings, joinStrings } from "../../../assembly/text/join";

describe("joinStrings", () => {
  it("joins like Array#join, for every length", () => {
    expect(joinStrings([], ",")).toBe("");
    expect(joinStrings(["a"], ",")).toBe("a");
    expect(joinStrings(["a", "", "b"], ",")).toBe("a,,b");
    expect(joinStrings(["x", "y", "z"], "")).toBe("xyz");
    expect(joinStrings(["größe", "名前"], "\u0001")).toBe("größe\u0001名前");
    const s: StaticArray<string> = ["source", "200", "-"];
    expect(joinStaticStrings(s, ";")).toBe("source;200;-");
  });

  it("makes one string of the exact length from many parts", () => {
    const parts = new Array<string>(20000);
    for (let i = 0; i < parts.length; i++) parts[i] = "ab";
    const joined = joinStrings(parts, ",");
    expect(joined.length).toBe(20000 * 2 + 19999);
    expect(joined.substring(0, 8)).toBe("ab,ab,ab");
  });
});
