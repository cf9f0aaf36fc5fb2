import { describe, expect, it } from "vitest";
import type { FragmentRequestState } from "../gen/vmtree/v1/admin.ts";
import type { Fragment, FragmentRequest } from "../gen/vmtree/v1/fragment.ts";
import { addedText, fragmentJson, fragmentsText, requestStateJson, requestsText } from "./fragment-format.ts";

// examples/fragments/cam-ala-001_20261120T081500Z.mp4 as kz.ala.metro-01 registers it.
const fragment: Fragment = {
  id: "f-0fdab0253ee4d551b4694cb26d13c083", site: "kz.ala.metro-01", camera_id: "metro-01-cam-001",
  start_ms: Date.parse("2026-11-20T08:15:00Z"), end_ms: Date.parse("2026-11-20T08:15:04Z"), size: 2_576_671,
  sha256: "d533fcc62f34c1e43c243f7328871c1dbad55dd1747a8239723eb04dfe5db78d", incident: false,
  file_name: "cam-ala-001_20261120T081500Z.mp4", added_ms: Date.parse("2026-12-04T07:00:00.250Z"),
};
const request: FragmentRequest = {
  id: "kz/1", site: "kz.ala.metro-01", camera_id: "metro-01-cam-001", from_ms: Date.parse("2026-11-20T08:00:00Z"), to_ms: Date.parse("2026-11-20T09:00:00Z"),
  reason: "incident report 17/2026", requested_by: "user:ivanov", requester: "kz", requested_ms: Date.parse("2026-12-04T07:10:00Z"),
};

describe("fragment output", () => {
  it("fragmentJson - snake_case fields, times as ISO, the size as a number of bytes", () => {
    expect(fragmentJson(fragment)).toEqual({
      id: "f-0fdab0253ee4d551b4694cb26d13c083", site: "kz.ala.metro-01", camera_id: "metro-01-cam-001",
      start: "2026-11-20T08:15:00.000Z", end: "2026-11-20T08:15:04.000Z", size: 2_576_671,
      sha256: "d533fcc62f34c1e43c243f7328871c1dbad55dd1747a8239723eb04dfe5db78d", incident: false,
      file_name: "cam-ala-001_20261120T081500Z.mp4", added_at: "2026-12-04T07:00:00.250Z",
    });
  });

  it("addedText - the id, the size in bytes, the SHA-256, and already present when so", () => {
    expect(addedText({ fragment, already_present: false })).toBe(
      "fragment f-0fdab0253ee4d551b4694cb26d13c083 added\nsize    2576671 bytes (2.5 MiB)\nsha256  d533fcc62f34c1e43c243f7328871c1dbad55dd1747a8239723eb04dfe5db78d\n",
    );
    expect(addedText({ fragment, already_present: true }).split("\n")[0]).toBe("fragment f-0fdab0253ee4d551b4694cb26d13c083 already present");
    expect(addedText({ fragment: { ...fragment, incident: true }, already_present: false }).split("\n")[0]).toBe("fragment f-0fdab0253ee4d551b4694cb26d13c083 added (incident)");
  });

  it("fragmentsText - one row per fragment", () => {
    expect(fragmentsText([fragment, { ...fragment, camera_id: "cam\u001b[31m", incident: true }])).toBe(
      "ID                                  SITE             CAMERA            START                 END                   SIZE                     INCIDENT\n" +
      "f-0fdab0253ee4d551b4694cb26d13c083  kz.ala.metro-01  metro-01-cam-001  2026-11-20T08:15:00Z  2026-11-20T08:15:04Z  2576671 bytes (2.5 MiB)  no\n" +
      "f-0fdab0253ee4d551b4694cb26d13c083  kz.ala.metro-01  cam\\u001b[31m     2026-11-20T08:15:00Z  2026-11-20T08:15:04Z  2576671 bytes (2.5 MiB)  yes\n" +
      "2 fragment(s)\n",
    );
  });
});

describe("request output", () => {
  const delivered: FragmentRequestState = {
    request, state: "delivered", delivered: 1, failures: [],
    outcome: { request_id: "kz/1", state: "found", fragments: [fragment], message: "1 fragment(s) on their way", answered_ms: Date.parse("2026-12-04T07:10:01Z") },
  };
  const failed: FragmentRequestState = {
    ...delivered, request: { ...request, id: "kz/3" }, state: "failed", delivered: 0,
    failures: [{ request_id: "kz/3", fragment_id: fragment.id, message: "kz.ala.metro-01 cannot send it: damaged here", failed_ms: Date.parse("2026-12-04T07:11:00Z") }],
  };

  it("requestStateJson - the request, its state and the outcome with fragment ids", () => {
    expect(requestStateJson(delivered)).toEqual({
      id: "kz/1", site: "kz.ala.metro-01", camera_id: "metro-01-cam-001", from: "2026-11-20T08:00:00.000Z", to: "2026-11-20T09:00:00.000Z",
      reason: "incident report 17/2026", requested_by: "user:ivanov", requester: "kz", requested_at: "2026-12-04T07:10:00.000Z",
      state: "delivered", delivered: 1,
      outcome: { state: "found", fragments: ["f-0fdab0253ee4d551b4694cb26d13c083"], message: "1 fragment(s) on their way", answered_at: "2026-12-04T07:10:01.000Z" },
      failures: [],
    });
    expect(requestStateJson({ request, state: "pending", delivered: 0, outcome: undefined, failures: [] }).outcome).toBeNull();
    expect(requestStateJson(failed).failures).toEqual([{ fragment_id: fragment.id, message: "kz.ala.metro-01 cannot send it: damaged here", failed_at: "2026-12-04T07:11:00.000Z" }]);
  });

  it("requestsText - what was asked, by whom, why, and the answer", () => {
    expect(requestsText([delivered, { request: { ...request, id: "kz/2" }, state: "pending", delivered: 0, outcome: undefined, failures: [] }, failed])).toBe(
      "kz/1  delivered (1 of 1 delivered here)\n" +
      "  kz.ala.metro-01 camera metro-01-cam-001 from 2026-11-20T08:00:00Z to 2026-11-20T09:00:00Z\n" +
      "  requested by user:ivanov at 2026-12-04T07:10:00Z: incident report 17/2026\n" +
      "  answered 2026-12-04T07:10:01Z: 1 fragment(s) on their way\n" +
      "kz/2  pending\n" +
      "  kz.ala.metro-01 camera metro-01-cam-001 from 2026-11-20T08:00:00Z to 2026-11-20T09:00:00Z\n" +
      "  requested by user:ivanov at 2026-12-04T07:10:00Z: incident report 17/2026\n" +
      "kz/3  failed (0 of 1 delivered here)\n" +
      "  kz.ala.metro-01 camera metro-01-cam-001 from 2026-11-20T08:00:00Z to 2026-11-20T09:00:00Z\n" +
      "  requested by user:ivanov at 2026-12-04T07:10:00Z: incident report 17/2026\n" +
      "  answered 2026-12-04T07:10:01Z: 1 fragment(s) on their way\n" +
      `  could not be sent: ${fragment.id} at 2026-12-04T07:11:00Z: kz.ala.metro-01 cannot send it: damaged here\n` +
      "3 request(s)\n",
    );
  });
});
