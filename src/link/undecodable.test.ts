import { status, type sendUnaryData, type ServerUnaryCall, type ServiceError } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { ParentServiceService } from "../gen/vmtree/v1/link.ts";
import { Undecodable, withTolerantDecoding } from "./undecodable.ts";

const UNDECODABLE = Buffer.from("3e3d", "hex");

describe("withTolerantDecoding", () => {
  const answered: unknown[] = [];
  const { definition, implementation } = withTolerantDecoding(ParentServiceService, {
    hello: (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
      answered.push(call.request);
      callback(null, {});
    },
    syncInventory: () => undefined,
  });

  it("withTolerantDecoding - a request that does not decode becomes an Undecodable; one that does decodes as before", () => {
    expect(definition.hello.requestDeserialize(UNDECODABLE)).toBeInstanceOf(Undecodable);
    expect(definition.hello.requestDeserialize(Buffer.from([0x08, 0x02]))).toEqual({ epoch: 2, pending: 0 });
    expect(definition.syncInventory.requestDeserialize(UNDECODABLE)).toBeInstanceOf(Undecodable);
  });

  it("withTolerantDecoding - a unary handler never sees an Undecodable: the call is refused with INVALID_ARGUMENT", () => {
    let refusal: Partial<ServiceError> | null = null;
    const call = { request: definition.hello.requestDeserialize(UNDECODABLE) } as ServerUnaryCall<unknown, unknown>;
    (implementation.hello as (c: typeof call, cb: sendUnaryData<unknown>) => void)(call, (error) => (refusal = error));
    expect(refusal).toMatchObject({ code: status.INVALID_ARGUMENT, details: "a Hello request does not decode: cant skip wire type 6" });
    expect(answered).toEqual([]);
  });
});
