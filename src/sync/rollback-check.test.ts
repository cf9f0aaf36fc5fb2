import { describe, expect, it } from "vitest";
import { rollbackProblem, type RollbackInput } from "./rollback-check.ts";

const base: RollbackInput = {
  site: "kz.a.s",
  epoch: 1,
  parentSite: "kz.a",
  checkpoints: [],
  auditHeads: [],
  own: { inventorySeq: 0, auditSeq: 0 },
};
const REMEDY =
  "the data directory was restored from an older backup or rolled back; its new changes would be lost. " +
  "Enrol the site again with a new invitation (vmtree invite on kz.a, then vmtree join into an empty data directory) to start a new epoch";

describe("rollbackProblem", () => {
  it("passes when the parent holds nothing of the site, or no more than the store produced", () => {
    expect(rollbackProblem(base)).toBeUndefined();
    expect(rollbackProblem({
      ...base,
      checkpoints: [{ origin: "kz.a.s", epoch: 1, seq: 40 }],
      auditHeads: [{ origin: "kz.a.s", epoch: 1, seq: 7, hash: "h7" }],
      own: { inventorySeq: 40, auditSeq: 9 },
    })).toBeUndefined();
  });

  it("refuses when the parent holds inventory changes of the site above the store's own sequence", () => {
    expect(rollbackProblem({ ...base, checkpoints: [{ origin: "kz.a.s", epoch: 1, seq: 40 }] })).toBe(
      `kz.a holds changes of kz.a.s up to 40 but this store only reaches 0: ${REMEDY}`,
    );
  });

  it("refuses when the parent's audit head of the site is ahead of the store", () => {
    expect(rollbackProblem({
      ...base,
      auditHeads: [{ origin: "kz.a.s", epoch: 1, seq: 12, hash: "h12" }],
      own: { inventorySeq: 0, auditSeq: 5 },
    })).toBe(`kz.a holds audit entries of kz.a.s up to 12 but this store only reaches 5: ${REMEDY}`);
  });

  it("leaves a chain that forked at a sequence the store also reached to the parent's chain check", () => {
    expect(rollbackProblem({
      ...base,
      auditHeads: [{ origin: "kz.a.s", epoch: 1, seq: 12, hash: "parent" }],
      own: { inventorySeq: 0, auditSeq: 20 },
    })).toBeUndefined();
  });

  it("ignores other origins and other epochs of the site (a new epoch restarts its sequences)", () => {
    expect(rollbackProblem({
      ...base,
      epoch: 2,
      checkpoints: [{ origin: "kz.a.s", epoch: 1, seq: 40 }, { origin: "kz.a.t", epoch: 1, seq: 99 }],
      auditHeads: [{ origin: "kz.a.s", epoch: 1, seq: 30, hash: "x" }, { origin: "kz.a.s.x", epoch: 2, seq: 30, hash: "y" }],
    })).toBeUndefined();
  });
});
