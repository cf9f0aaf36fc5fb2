import { describe, expect, it } from "vitest";
import { VmtreeError } from "../errors.ts";
import type { CameraChange } from "../gen/vmtree/v1/inventory.ts";
import type { Checkpoint } from "../gen/vmtree/v1/link.ts";
import { sampleCamera as cam } from "../../test/support/camera-fixture.ts";
import { MAX_BATCH_CHANGES, validateBatch } from "./validate-change.ts";

const CHILD = "kz.ala";


function change(overrides: Partial<CameraChange> = {}): CameraChange {
  const camera_id = overrides.camera_id ?? "cam-001";
  return { origin: "kz.ala.metro-01", epoch: 1, seq: 1, camera_id, camera: cam(camera_id), ...overrides };
}

/** Validates `changes` (and announced new epochs) as one batch from CHILD. */
function check(changes: CameraChange[], new_epochs: Checkpoint[] = []): void {
  validateBatch({ changes, new_epochs }, CHILD);
}

function refusal(changes: CameraChange[], new_epochs: Checkpoint[] = [], childSite = CHILD): VmtreeError {
  try {
    validateBatch({ changes, new_epochs }, childSite);
  } catch (error) {
    if (error instanceof VmtreeError) return error;
    throw error;
  }
  throw new Error("the batch was accepted");
}

describe("validateBatch", () => {
  it("validateBatch - accepts changes of the child, its subtree, tombstones and several origins", () => {
    expect(() =>
      check([
          change({ origin: "kz.ala", seq: 1 }),
          change({ origin: "kz.ala.metro-01", seq: 5, camera_id: "a" }),
          change({ origin: "kz.ala.metro-01", seq: 6, camera_id: "b", camera: undefined }),
          change({ origin: "kz.ala.metro-01.x", seq: 1, epoch: 3 }),
          change({ origin: "kz.ala", seq: 2 }),
        ]),
    ).not.toThrow();
    expect(() => check([])).not.toThrow();
  });

  it.each([
    ["a sibling", "kz.ast"],
    ["the parent", "kz"],
    ["a prefix-sharing site", "kz.al"],
    ["a site whose id extends the child's", "kz.ala-2"],
    ["another tree", "ru.ala"],
  ])("validateBatch - refuses an origin outside the child's subtree (%s) with permission_denied", (_, origin) => {
    const error = refusal([change({ origin })]);
    expect(error.code).toBe("permission_denied");
    expect(error.rawMessage).toBe(`site kz.ala may not send data for ${origin}`);
  });

  it("validateBatch - refuses an outside origin even after valid changes", () => {
    expect(refusal([change({ seq: 1 }), change({ seq: 2 }), change({ origin: "kz.ast", seq: 3 })]).code).toBe("permission_denied");
  });

  it("validateBatch - refuses a malformed origin with invalid_argument", () => {
    const error = refusal([change({ origin: "kz.ALA" })]);
    expect(error.code).toBe("invalid_argument");
    expect(error.rawMessage).toBe(`invalid site id "kz.ALA": segment "ALA" must be 1 to 32 characters of a-z, 0-9 and '-', starting with a letter or digit`);
  });

  it.each([
    [0, '"0"'],
    [-1, '"-1"'],
    [1.5, '"1.5"'],
    [Number.NaN, '"NaN"'],
    [2 ** 53, '"9007199254740992"'],
  ])("validateBatch - refuses seq %s with invalid_argument", (seq, shown) => {
    const error = refusal([change({ seq })]);
    expect(error.code).toBe("invalid_argument");
    expect(error.rawMessage).toBe(`invalid seq: ${shown}`);
  });

  it.each([
    [0, '"0"'],
    [-3, '"-3"'],
    [2.5, '"2.5"'],
    [Number.POSITIVE_INFINITY, '"Infinity"'],
  ])("validateBatch - refuses epoch %s with invalid_argument", (epoch, shown) => {
    const error = refusal([change({ epoch })]);
    expect(error.code).toBe("invalid_argument");
    expect(error.rawMessage).toBe(`invalid epoch: ${shown}`);
  });

  it("validateBatch - refuses a repeated or decreasing seq of one origin", () => {
    const repeated = refusal([change({ seq: 2 }), change({ seq: 2, camera_id: "cam-002" })]);
    expect(repeated.code).toBe("invalid_argument");
    expect(repeated.rawMessage).toBe('invalid seq (not increasing): "2"');
    const decreasing = refusal([change({ seq: 5 }), change({ seq: 7 }), change({ seq: 6 })]);
    expect(decreasing.rawMessage).toBe('invalid seq (not increasing): "6"');
  });

  it("validateBatch - refuses two epochs of one origin in one batch", () => {
    const mixed = refusal([change({ epoch: 1, seq: 1 }), change({ epoch: 2, seq: 2 })]);
    expect(mixed.code).toBe("invalid_argument");
    expect(mixed.rawMessage).toBe('invalid epoch (one epoch per origin in a batch): "2"');
  });

  it("validateBatch - keeps sequences per origin", () => {
    expect(() =>
      check([change({ origin: "kz.ala", seq: 9 }), change({ origin: "kz.ala.metro-01", seq: 1 }), change({ origin: "kz.ala", seq: 10 })]),
    ).not.toThrow();
  });

  it.each([
    ["an empty id", ""],
    ["a leading '-'", "-cam"],
    ["a leading '.'", ".cam"],
    ["a space", "cam 1"],
    ["a slash", "cam/1"],
    ["a '|'", "cam|1"],
    ["65 characters", `c${"a".repeat(64)}`],
    ["unicode", "камера-1"],
  ])("validateBatch - refuses a camera_id with %s", (_, camera_id) => {
    const error = refusal([change({ camera_id, camera: undefined })]);
    expect(error.code).toBe("invalid_argument");
    expect(error.rawMessage).toBe(`invalid camera_id: ${JSON.stringify(camera_id)}`);
  });

  it("validateBatch - accepts a 64-character camera_id with '.', '_' and '-'", () => {
    const camera_id = `A.b_c-${"9".repeat(58)}`;
    expect(camera_id).toHaveLength(64);
    expect(() => check([change({ camera_id })])).not.toThrow();
  });

  it("validateBatch - refuses a camera whose own camera_id differs from the change's", () => {
    const error = refusal([change({ camera_id: "cam-001", camera: cam("cam-002") })]);
    expect(error.code).toBe("invalid_argument");
    expect(error.rawMessage).toBe('invalid camera.camera_id: "cam-002"');
  });

  it.each(["name", "stream_url", "address", "vendor"] as const)("validateBatch - refuses a %s over 512 characters", (field) => {
    const value = "x".repeat(513);
    const error = refusal([change({ camera: cam("cam-001", { [field]: value }) })]);
    expect(error.code).toBe("invalid_argument");
    expect(error.rawMessage).toBe(`invalid ${field}: "${"x".repeat(32)}…"`);
  });

  it("validateBatch - accepts strings of exactly 512 characters", () => {
    expect(() => check([change({ camera: cam("cam-001", { name: "я".repeat(512), address: "a".repeat(512) }) })])).not.toThrow();
  });

  it.each([
    ["fps", Number.NaN, '"NaN"'],
    ["latitude", Number.POSITIVE_INFINITY, '"Infinity"'],
    ["bitrate_kbps", Number.NEGATIVE_INFINITY, '"-Infinity"'],
  ] as const)("validateBatch - refuses a non-finite %s", (field, value, shown) => {
    const error = refusal([change({ camera: cam("cam-001", { [field]: value }) })]);
    expect(error.code).toBe("invalid_argument");
    expect(error.rawMessage).toBe(`invalid ${field}: ${shown}`);
  });

  it("validateBatch - accepts exactly MAX_BATCH_CHANGES changes and refuses one more", () => {
    expect(MAX_BATCH_CHANGES).toBe(1000);
    const changes = Array.from({ length: MAX_BATCH_CHANGES + 1 }, (_, i) => change({ seq: i + 1, camera_id: `cam-${i}` }));
    expect(() => check(changes.slice(0, MAX_BATCH_CHANGES))).not.toThrow();
    const error = refusal(changes);
    expect(error.code).toBe("invalid_argument");
    expect(error.rawMessage).toBe("a batch carries at most 1000 changes, got 1001");
  });

  it("validateBatch - checks the batch size before any change, so an oversize batch of outside origins is invalid_argument", () => {
    const changes = Array.from({ length: MAX_BATCH_CHANGES + 1 }, (_, i) => change({ origin: "kz.ast", seq: i + 1 }));
    expect(refusal(changes).code).toBe("invalid_argument");
  });
});
