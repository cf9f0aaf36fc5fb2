import { describe, expect, it } from "vitest";
import { VmtreeError } from "../errors.ts";
import { checkDialAddress, checkListenAddress } from "./address.ts";

describe("checkListenAddress", () => {
  it.each([
    ["127.0.0.1:0", "127.0.0.1", 0],
    ["0.0.0.0:7443", "0.0.0.0", 7443],
    ["[::1]:7443", "[::1]", 7443],
    ["nvms.example.kz:65535", "nvms.example.kz", 65535],
    ["localhost:7443", "localhost", 7443],
  ])("checkListenAddress - reads %s", (address, host, port) => {
    expect(checkListenAddress(address)).toEqual({ host, port });
  });

  it.each(["999.1.1.1:0", "127.0.0.1:65536", "127.0.0.1", "[zz::1]:7443", "-bad.kz:7443", "a..b:7443", "host/x:7443", "127.0.0.1 :7443"])(
    "checkListenAddress - refuses %s, naming the flag",
    (address) => {
      const error = (() => {
        try {
          checkListenAddress(address, "listen");
          return undefined;
        } catch (e) {
          return e;
        }
      })();
      expect(error).toBeInstanceOf(VmtreeError);
      expect((error as VmtreeError).message).toBe(`[invalid_argument] expected --listen like 127.0.0.1:7443, got \`${address}\``);
    },
  );
});

describe("checkDialAddress", () => {
  it("checkDialAddress - refuses port 0, naming the flag", () => {
    expect(() => checkDialAddress("127.0.0.1:0", "advertise")).toThrow("[invalid_argument] --advertise needs a real port, got `127.0.0.1:0`");
  });
});
