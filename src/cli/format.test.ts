import { describe, expect, it } from "vitest";
import { printable } from "./format.ts";

describe("printable", () => {
  it.each([
    ["Metro\r\nEntrance\tA", "Metro Entrance A"],
    ["a\u001b[31mred", "a\\u001b[31mred"],
    ["bell\u0007 del\u007f c1\u009b", "bell\\u0007 del\\u007f c1\\u009b"],
    ["Алматы, пр. Абая 1", "Алматы, пр. Абая 1"],
    ["cam\u202egpj.exe", "cam\\u202egpj.exe"],
  ])("printable - shows %j as %j", (text, shown) => {
    expect(printable(text)).toBe(shown);
  });
});
