import { readFileSync } from "node:fs";
import { describe, expect, expectTypeOf, it } from "vitest";
import type { VmtreeError } from "../errors.ts";
import { CAMERA_FIELDS, type Camera, type CameraField } from "./camera.ts";
import { parseInventory } from "./parse-inventory.ts";

const ALL_FIELDS =
  "camera_id, name, object_class, camera_type, vendor, model, firmware, protocol, stream_url, codec, width, height, " +
  "fps, bitrate_kbps, ir_range_m, mount_height_m, latitude, longitude, address, installed_at, status";

const METRO_CAM_001: Camera = {
  camera_id: "metro-01-cam-001",
  name: "Кіреберіс 1",
  object_class: "crowded",
  camera_type: "outdoor_overview",
  vendor: "Bosch",
  model: "DINION IP 5000i",
  firmware: "7.10.0095",
  protocol: "onvif",
  stream_url: "rtsp://10.155.226.249:554/stream1",
  codec: "H.264",
  width: 1920,
  height: 1080,
  fps: 25,
  bitrate_kbps: 5120,
  ir_range_m: 30,
  mount_height_m: 11.1,
  latitude: 43.242536,
  longitude: 76.896353,
  address: "Абай даңғылы, 99",
  installed_at: "2019-08-17",
  status: "online",
};

function sampleBytes(file: string): Uint8Array {
  return readFileSync(new URL(`../../examples/inventory/${file}`, import.meta.url));
}

function sampleText(file: string): string {
  return new TextDecoder().decode(sampleBytes(file));
}

function toBytes(input: string | Uint8Array): Uint8Array {
  return typeof input === "string" ? new TextEncoder().encode(input) : input;
}

function cameras(file: string, input: string | Uint8Array): Camera[] {
  const result = parseInventory(file, toBytes(input));
  if (!result.ok) throw result.error;
  return result.value;
}

function failure(file: string, input: string | Uint8Array): VmtreeError {
  const result = parseInventory(file, toBytes(input));
  if (result.ok) throw new Error(`${file} parsed to ${result.value.length} cameras`);
  return result.error;
}

type CsvValues = Partial<Record<CameraField, string>>;

function csvRow(values: CsvValues = {}, delimiter = ",", fields: readonly CameraField[] = CAMERA_FIELDS): string {
  return fields.map((field) => {
    const value = values[field] ?? String(METRO_CAM_001[field]);
    return /["\r\n]/.test(value) || value.includes(delimiter) ? `"${value.replaceAll('"', '""')}"` : value;
  }).join(delimiter);
}

/** A comma-separated file with the standard header: line 1 is the header, line 2 the first row. */
function csv(...rows: string[]): string {
  return [CAMERA_FIELDS.join(","), ...rows].join("\n") + "\n";
}

/**
 * A JSON export laid out like the sample: camera N (from 0) opens on line 5 + 23N and its
 * field K (in CAMERA_FIELDS order) is on line 6 + 23N + K.
 */
function json(list: readonly object[]): string {
  return JSON.stringify({ site: "kz.test", exported_at: "2026-11-30T10:00:00+05:00", cameras: list }, null, 2);
}

describe("parseInventory samples", () => {
  it("CAMERA_FIELDS - matches the header of the sample CSV and every field of Camera", () => {
    expect(sampleText("kz.ala.metro-01.csv").split("\n")[0]).toBe(CAMERA_FIELDS.join(","));
    expectTypeOf<CameraField>().toEqualTypeOf<keyof Camera>();
  });

  it("parseInventory - reads the 40 cameras of the comma-separated sample", () => {
    const metro = cameras("kz.ala.metro-01.csv", sampleBytes("kz.ala.metro-01.csv"));
    expect(metro).toHaveLength(40);
    expect(metro[0]).toEqual(METRO_CAM_001);
    expect(Object.keys(metro[0] ?? {})).toEqual([...CAMERA_FIELDS]);
    expect(metro[1]?.stream_url).toBe("rtsp://service:S3rv;ce#2020@10.28.192.80:554/Streaming/Channels/101");
    expect(metro[39]).toMatchObject({ camera_id: "metro-01-cam-040", address: "Абай даңғылы, 82", status: "online" });
    expect(metro.filter((camera) => camera.status === "offline").map((camera) => camera.camera_id)).toEqual([
      "metro-01-cam-007",
      "metro-01-cam-035",
    ]);
  });

  it("parseInventory - reads the 24 cameras of the JSON sample", () => {
    const akimat = cameras("kz.ast.akimat.json", sampleBytes("kz.ast.akimat.json"));
    expect(akimat).toHaveLength(24);
    expect(akimat[3]).toEqual({
      camera_id: "akimat-cam-004",
      name: "Lobby 4",
      object_class: "critical",
      camera_type: "indoor_entry",
      vendor: "Hanwha",
      model: "XNO-8082R",
      firmware: "2.21.01",
      protocol: "onvif",
      stream_url: "rtsp://admin:Qwerty123@10.99.188.202:554/Streaming/Channels/101",
      codec: "H.264",
      width: 1280,
      height: 720,
      fps: 25,
      bitrate_kbps: 8192,
      ir_range_m: 15,
      mount_height_m: 3.3,
      latitude: 51.119789,
      longitude: 71.425932,
      address: "Бейбітшілік көшесі, 185",
      installed_at: "2021-08-03",
      status: "online",
    });
  });

  it("parseInventory - reads the 18 cameras of the BOM, CRLF, semicolon, decimal-comma sample", () => {
    const road = cameras("kz.shy.road-a2.csv", sampleBytes("kz.shy.road-a2.csv"));
    expect(road).toHaveLength(18);
    expect(road[0]).toMatchObject({
      camera_id: "road-a2-cam-001",
      name: "Трасса A-2 км 1",
      mount_height_m: 4.4,
      latitude: 42.349527,
      longitude: 69.587125,
      address: "трасса A-2, 27",
      status: "online",
    });
    expect(road[1]).toMatchObject({
      stream_url: "rtsp://service:S3rv;ce#2020@10.204.105.5:554/Streaming/Channels/101",
      mount_height_m: 10.1,
      width: 1280,
    });
    expect(road[17]).toMatchObject({ camera_id: "road-a2-cam-018", mount_height_m: 9.1, installed_at: "2022-08-16" });
  });

  it("parseInventory - reads the same cameras from JSON, a bare array and a semicolon CSV", () => {
    const metro = cameras("kz.ala.metro-01.csv", sampleBytes("kz.ala.metro-01.csv"));
    const decimalComma = (value: unknown) => (typeof value === "number" ? String(value).replace(".", ",") : String(value));
    const semicolon = metro.map((camera) =>
      csvRow(Object.fromEntries(CAMERA_FIELDS.map((field) => [field, decimalComma(camera[field])])), ";"),
    );
    expect(cameras("m.json", json(metro))).toEqual(metro);
    expect(cameras("m.json", JSON.stringify(metro))).toEqual(metro);
    expect(cameras("m.csv", `\uFEFF${[CAMERA_FIELDS.join(";"), ...semicolon].join("\r\n")}`)).toEqual(metro);
  });
});

describe("parseInventory formats", () => {
  it("parseInventory - accepts columns in any order", () => {
    const fields = [...CAMERA_FIELDS].reverse();
    expect(cameras("r.csv", `${fields.join(",")}\n${csvRow({}, ",", fields)}`)).toEqual([METRO_CAM_001]);
  });

  it("parseInventory - reads quoted fields with doubled quotes, delimiters and line breaks", () => {
    const [camera] = cameras("q.csv", csv(csvRow({ name: 'Hall "A",\r\nnorth', address: "x;y" })));
    expect(camera).toMatchObject({ name: 'Hall "A",\r\nnorth', address: "x;y" });
  });

  it("parseInventory - skips blank lines and accepts a missing final line break", () => {
    const text = `\n${CAMERA_FIELDS.join(",")}\n\n${csvRow()}\r\n\r\n${csvRow({ camera_id: "cam-2" })}`;
    expect(cameras("b.csv", text).map((camera) => camera.camera_id)).toEqual(["metro-01-cam-001", "cam-2"]);
  });

  it("parseInventory - accepts a decimal point in a semicolon CSV", () => {
    const text = `${CAMERA_FIELDS.join(";")}\n${csvRow({ mount_height_m: "4.4" }, ";")}`;
    expect(cameras("p.csv", text)[0]?.mount_height_m).toBe(4.4);
  });

  it("parseInventory - accepts JSON after a BOM and blank lines", () => {
    expect(cameras("b.json", `\uFEFF\n  ${JSON.stringify([METRO_CAM_001])}`)).toEqual([METRO_CAM_001]);
  });

  it("parseInventory - accepts a leap day, 512-character text and zero IR range", () => {
    const name = "ж".repeat(512);
    const [camera] = cameras("ok.csv", csv(csvRow({ installed_at: "2020-02-29", name, ir_range_m: "0" })));
    expect(camera).toMatchObject({ installed_at: "2020-02-29", name, ir_range_m: 0 });
  });
});

describe("parseInventory errors", () => {
  it.each([
    ["no bytes", ""],
    ["a BOM only", "\uFEFF"],
    ["blank lines only", "\r\n  \n"],
  ])("parseInventory - rejects an empty file: %s", (_, text) => {
    expect(failure("e.csv", text).message).toBe(
      '[invalid_input] e.csv: empty file; expected a CSV header or a JSON object with "cameras"',
    );
  });

  it.each([
    ["e.csv", csv()],
    ["e.json", json([])],
    ["e.json", "[]"],
  ])("parseInventory - rejects %s without cameras", (file, text) => {
    expect(failure(file, text).message).toBe(`[invalid_input] ${file}: no cameras; expected at least one camera`);
  });

  it("parseInventory - rejects a header without a column", () => {
    const text = csv(csvRow()).replace(",fps,", ",");
    expect(failure("h.csv", text).message).toBe(
      `[invalid_input] h.csv line 1: missing column(s) fps; expected the columns ${ALL_FIELDS}`,
    );
  });

  it("parseInventory - rejects unknown columns", () => {
    const text = `${CAMERA_FIELDS.join(",")},notes,\n${csvRow()},x,y\n`;
    expect(failure("h.csv", text).message).toBe(
      `[invalid_input] h.csv line 1: unknown column(s) "notes", ""; expected the columns ${ALL_FIELDS}`,
    );
  });

  it("parseInventory - rejects a renamed column as both missing and unknown", () => {
    const text = csv(csvRow()).replace(",fps,", ",FPS,");
    expect(failure("h.csv", text).message).toBe(
      `[invalid_input] h.csv line 1: missing column(s) fps; unknown column(s) "FPS"; expected the columns ${ALL_FIELDS}`,
    );
  });

  it("parseInventory - rejects a duplicate column", () => {
    const text = `${CAMERA_FIELDS.join(",")},fps\n${csvRow()},25\n`;
    expect(failure("h.csv", text).message).toBe('[invalid_input] h.csv line 1: duplicate column "fps"');
  });

  it("parseInventory - rejects a row with too many fields", () => {
    const text = csv(csvRow(), csvRow({ camera_id: "cam-2" }).replace('"Абай даңғылы, 99"', "Абай даңғылы, 99"));
    expect(failure("n.csv", text).message).toBe(
      '[invalid_input] n.csv line 3: expected 21 fields as in the header, got 22; put values that contain "," in double quotes',
    );
  });

  it("parseInventory - rejects a row with too few fields", () => {
    const text = csv(csvRow().replace(",online", ""));
    expect(failure("n.csv", text).message).toBe("[invalid_input] n.csv line 2: expected 21 fields as in the header, got 20");
  });

  it("parseInventory - names the physical line of a record after a multi-line field", () => {
    const text = csv(csvRow({ name: "two\nlines" }), csvRow({ camera_id: "cam-2", fps: "" }));
    expect(failure("m.csv", text).message).toBe('[invalid_input] m.csv line 4, field fps: expected a value, got ""');
  });

  it.each<[string, CsvValues, string]>([
    ["an empty string", { vendor: "" }, 'field vendor: expected a value, got ""'],
    ["a blank string", { address: "   " }, 'field address: expected a value, got "   "'],
    ["an empty number", { width: "" }, 'field width: expected a value, got ""'],
    ["text that is not a number", { fps: "2x5" }, 'field fps: expected a number, got "2x5"'],
    ["an exponent", { bitrate_kbps: "5e3" }, 'field bitrate_kbps: expected a number, got "5e3"'],
    ["a decimal comma in a comma CSV", { mount_height_m: "4,4" }, 'field mount_height_m: expected a number, got "4,4"'],
    ["zero fps", { fps: "0" }, 'field fps: expected a positive integer, got "0"'],
    ["a fractional width", { width: "1920.5" }, 'field width: expected a positive integer, got "1920.5"'],
    ["a negative bitrate", { bitrate_kbps: "-5120" }, 'field bitrate_kbps: expected a positive integer, got "-5120"'],
    ["a huge height", { height: "9".repeat(20) }, `field height: expected a positive integer, got "${"9".repeat(20)}"`],
    ["a negative IR range", { ir_range_m: "-1" }, 'field ir_range_m: expected a number of at least 0, got "-1"'],
    ["a negative mount height", { mount_height_m: "-0.5" }, 'field mount_height_m: expected a number of at least 0, got "-0.5"'],
    ["a latitude above 90", { latitude: "90.5" }, 'field latitude: expected a number from -90 to 90, got "90.5"'],
    ["a longitude below -180", { longitude: "-180.1" }, 'field longitude: expected a number from -180 to 180, got "-180.1"'],
    [
      "an infinite number",
      { ir_range_m: "9".repeat(400) },
      `field ir_range_m: expected a finite number, got "${"9".repeat(60)}…"`,
    ],
    [
      "an unknown camera_type",
      { camera_type: "dome" },
      "field camera_type: expected one of outdoor_overview, outdoor_entry, outdoor_vehicle_entry, outdoor_traffic, " +
        'indoor_entry, indoor_overview, outdoor_ptz_overview, indoor_ptz_overview, outdoor_ptz_road, got "dome"',
    ],
    ["an unknown codec", { codec: "h264" }, 'field codec: expected one of MJPEG, MPEG-4, MPEG-4 ASP, MxPEG, H.264, H.265, got "h264"'],
    ["an unknown protocol", { protocol: "ONVIF" }, 'field protocol: expected one of onvif, psia, rtsp, got "ONVIF"'],
    ["an unknown status", { status: "broken" }, 'field status: expected one of online, offline, got "broken"'],
    [
      "an unknown object_class",
      { object_class: "school" },
      'field object_class: expected one of crowded, courtyard, critical, road, got "school"',
    ],
    [
      "a camera_id with a space",
      { camera_id: "cam 1" },
      "field camera_id: expected 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit, got \"cam 1\"",
    ],
    [
      "a camera_id starting with a dash",
      { camera_id: "-cam" },
      "field camera_id: expected 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit, got \"-cam\"",
    ],
    [
      "a camera_id of 65 characters",
      { camera_id: "c".repeat(65) },
      `field camera_id: expected 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit, got "${"c".repeat(60)}…"`,
    ],
    ["February 29 of a common year", { installed_at: "2021-02-29" }, 'field installed_at: expected a calendar date YYYY-MM-DD, got "2021-02-29"'],
    ["April 31", { installed_at: "2021-04-31" }, 'field installed_at: expected a calendar date YYYY-MM-DD, got "2021-04-31"'],
    ["month 13", { installed_at: "2021-13-01" }, 'field installed_at: expected a calendar date YYYY-MM-DD, got "2021-13-01"'],
    ["an unpadded date", { installed_at: "2021-1-5" }, 'field installed_at: expected a calendar date YYYY-MM-DD, got "2021-1-5"'],
    ["a date with a time", { installed_at: "2021-01-05T10:00" }, 'field installed_at: expected a calendar date YYYY-MM-DD, got "2021-01-05T10:00"'],
    ["text over 512 characters", { name: "ж".repeat(513) }, "field name: expected at most 512 characters, got 513"],
    ["a stream_url without a scheme", { stream_url: "10.0.0.1/live" }, 'field stream_url: expected a URL like rtsp://host/path, got "10.0.0.1/live"'],
    [
      "a bad stream_url, shown without its password",
      { stream_url: "rtsp://admin:S3cret@10.0.0.1/live stream" },
      'field stream_url: expected a URL like rtsp://host/path, got "rtsp://10.0.0.1/live stream"',
    ],
    ["a terminal escape sequence", { name: "a\u001b[31mred" }, 'field name: expected text without control characters, got "a\\u001b[31mred"'],
    ["a NUL byte", { vendor: "Hik\u0000vision" }, 'field vendor: expected text without control characters, got "Hik\\u0000vision"'],
    ["a C1 control", { address: "a\u009bb" }, 'field address: expected text without control characters, got "a\u009bb"'],
    ["a right-to-left override", { name: "cam\u202egpj.exe" }, 'field name: expected text without control characters, got "cam\u202egpj.exe"'],
  ])("parseInventory - rejects %s", (_, values, message) => {
    const text = csv(csvRow({ camera_id: "cam-0" }), csvRow(values));
    expect(failure("v.csv", text).message).toBe(`[invalid_input] v.csv line 3, ${message}`);
  });

  it("parseInventory - names file, line, field and value for a bad number in the semicolon sample", () => {
    const lines = sampleText("kz.shy.road-a2.csv").split("\r\n");
    lines[4] = lines[4]?.replace(";1920;1080;25;", ";1920;1080;2x5;") ?? "";
    expect(failure("kz.shy.road-a2.csv", lines.join("\r\n")).message).toBe(
      '[invalid_input] kz.shy.road-a2.csv line 5, field fps: expected a number, got "2x5"',
    );
  });

  it("parseInventory - rejects a duplicate camera_id and names both lines", () => {
    const text = csv(csvRow(), csvRow({ camera_id: "cam-2" }), csvRow());
    expect(failure("d.csv", text).message).toBe(
      '[invalid_input] d.csv line 4, field camera_id: expected a unique camera_id, got "metro-01-cam-001" which line 2 already uses',
    );
  });

  it("parseInventory - returns no cameras when only the last row is wrong", () => {
    const result = parseInventory("l.csv", toBytes(csv(csvRow(), csvRow({ camera_id: "cam-2", status: "gone" }))));
    expect(result).toEqual({ ok: false, error: expect.objectContaining({ code: "invalid_input" }) });
  });
});

describe("parseInventory CSV syntax errors", () => {
  it.each([
    ["an unterminated quote", `${csvRow()}\n"cam-2,x`, 'line 3: a quoted field has no closing quote'],
    [
      "a quote inside an unquoted field",
      csvRow({ name: "Hall" }).replace("Hall", 'Ha"ll'),
      "line 2: unexpected quote; put the whole field in quotes and double the quotes inside it",
    ],
    [
      "text after a closing quote",
      csvRow({ name: "Hall" }).replace("Hall", '"Ha"ll'),
      'line 2: unexpected "l" after a closing quote; expected "," or a line end',
    ],
    [
      "a carriage return without a line feed",
      csvRow({ name: "Hall" }).replace("Hall", "Ha\rll"),
      "line 2: carriage return without a line feed; lines must end with CRLF or LF",
    ],
  ])("parseInventory - rejects %s", (_, rows, message) => {
    expect(failure("s.csv", csv(rows)).message).toBe(`[invalid_input] s.csv ${message}`);
  });
});

describe("parseInventory UTF-8 errors", () => {
  const bytes = (...parts: (string | number[])[]): Uint8Array =>
    Uint8Array.from(parts.flatMap((part) => (typeof part === "string" ? [...new TextEncoder().encode(part)] : part)));

  it.each([
    ["a windows-1251 byte", bytes("ab\r\ncd\n", [0xcf, 0xf0]), 3, 7, "CF"],
    ["an overlong form after a BOM", bytes([0xef, 0xbb, 0xbf], "ab", [0xc0, 0xaf]), 1, 5, "C0"],
    ["an encoded surrogate", bytes("x\n", [0xed, 0xa0, 0x80]), 2, 2, "ED"],
    ["a truncated sequence at the end", bytes("ab", [0xe2, 0x82]), 1, 2, "E2"],
    ["a stray byte after a real U+FFFD", bytes("\uFFFD", [0xff]), 1, 3, "FF"],
  ])("parseInventory - rejects %s", (_, input, line, offset, hex) => {
    expect(failure("u.csv", input).message).toBe(
      `[invalid_input] u.csv line ${line}: not UTF-8: invalid byte sequence at offset ${offset} (0x${hex}); save the file as UTF-8`,
    );
  });

  it("parseInventory - names the byte offset of a windows-1251 name in the semicolon sample", () => {
    const sample = sampleBytes("kz.shy.road-a2.csv");
    const name = new TextEncoder().encode("Т");
    const input = Uint8Array.from([...sample.subarray(0, 211), 0xd2, ...sample.subarray(211 + name.length)]);
    expect(failure("kz.shy.road-a2.csv", input).message).toBe(
      "[invalid_input] kz.shy.road-a2.csv line 2: not UTF-8: invalid byte sequence at offset 211 (0xD2); save the file as UTF-8",
    );
  });
});

describe("parseInventory JSON errors", () => {
  const second = (values: Record<string, unknown>) => json([{ ...METRO_CAM_001, camera_id: "cam-0" }, { ...METRO_CAM_001, ...values }]);

  it("parseInventory - names the line of the field key in JSON", () => {
    expect(failure("j.json", second({ fps: "25" })).message).toBe(
      '[invalid_input] j.json line 41, field fps: expected a number, got "25"',
    );
  });

  it.each<[string, Record<string, unknown>, string]>([
    ["null", { width: null }, "line 39, field width: expected a number, got null"],
    ["a number for a string", { vendor: 7 }, "line 33, field vendor: expected a string, got 7"],
    ["an object for a string", { name: { ru: "x" } }, "line 30, field name: expected a string, got an object"],
    ["a blank string", { name: "  " }, 'line 30, field name: expected a value, got "  "'],
    ["an unknown codec", { codec: "VP9" }, 'line 38, field codec: expected one of MJPEG, MPEG-4, MPEG-4 ASP, MxPEG, H.264, H.265, got "VP9"'],
    ["a fraction of a frame", { fps: 12.5 }, "line 41, field fps: expected a positive integer, got 12.5"],
  ])("parseInventory - rejects %s in a JSON camera", (_, values, message) => {
    expect(failure("j.json", second(values)).message).toBe(`[invalid_input] j.json ${message}`);
  });

  it("parseInventory - rejects an infinite JSON number", () => {
    const text = second({}).replace('"fps": 25', '"fps": 1e999');
    expect(failure("j.json", text).message).toBe("[invalid_input] j.json line 18, field fps: expected a finite number, got Infinity");
  });

  it("parseInventory - rejects a duplicate camera_id in JSON and names both lines", () => {
    expect(failure("j.json", second({ camera_id: "cam-0" })).message).toBe(
      '[invalid_input] j.json line 29, field camera_id: expected a unique camera_id, got "cam-0" which line 6 already uses',
    );
  });

  it("parseInventory - rejects an unknown field at the line of its key", () => {
    expect(failure("j.json", second({ notes: "x" })).message).toBe(
      `[invalid_input] j.json line 50: unknown field(s) "notes"; expected the fields ${ALL_FIELDS}`,
    );
  });

  it("parseInventory - rejects a missing field at the line of its camera", () => {
    const { fps: _, ...withoutFps } = METRO_CAM_001;
    expect(failure("j.json", json([METRO_CAM_001, withoutFps])).message).toBe(
      `[invalid_input] j.json line 28: missing field(s) fps; expected the fields ${ALL_FIELDS}`,
    );
  });

  it("parseInventory - keeps a __proto__ key as data and rejects it as unknown", () => {
    expect(failure("j.json", '[{"__proto__": {}}]').message).toBe(
      `[invalid_input] j.json line 1: missing field(s) ${ALL_FIELDS}; unknown field(s) "__proto__"; ` +
        `expected the fields ${ALL_FIELDS}`,
    );
  });

  it.each([
    ["a camera that is not an object", "[\n  5\n]", "line 2: expected a camera object, got 5"],
    ["an unknown top-level field", '{\n  "site": "kz",\n  "cams": []\n}', 'line 3: unknown top-level field "cams"; expected only site, exported_at, cameras'],
    ["a missing camera list", '{\n  "site": "kz"\n}', 'line 1: missing field "cameras"'],
    ["a camera list that is not an array", '{\n  "cameras": {}\n}', 'line 2: expected "cameras" to be an array of camera objects, got an object'],
  ])("parseInventory - rejects %s", (_, text, message) => {
    expect(failure("j.json", text).message).toBe(`[invalid_input] j.json ${message}`);
  });

  it.each([
    ["a missing comma", '{\n  "site": "kz"\n  "cameras": []\n}', 'line 3: invalid JSON: expected "," or "}", got "\\""'],
    ["a trailing comma", '[\n  {},\n]', 'line 3: invalid JSON: expected a value, got "]"'],
    ["a key without quotes", "{\n  cameras: []\n}", 'line 2: invalid JSON: expected a key in double quotes, got "c"'],
    ["a missing colon", '{\n  "cameras" []\n}', 'line 2: invalid JSON: expected ":", got "["'],
    [
      "an unterminated string",
      '{\n  "site": "kz\n}',
      "line 2: invalid JSON: a string has no closing quote, a bad escape or a raw control character",
    ],
    ["a duplicate key", '{\n  "cameras": [],\n  "cameras": []\n}', 'line 3: invalid JSON: duplicate key "cameras"'],
    ["text after the value", "[]\n]", 'line 2: invalid JSON: unexpected "]" after the end of the JSON value'],
    ["a truncated file", '{\n  "cameras": [', "line 2: invalid JSON: expected a value, got the end of the file"],
    ["a bad literal", "[\n  nul\n]", 'line 2: invalid JSON: expected a value, got "n"'],
    ["nesting deeper than 64 levels", `${"[".repeat(65)}${"]".repeat(65)}`, "line 1: invalid JSON: nested deeper than 64 levels"],
  ])("parseInventory - rejects JSON with %s", (_, text, message) => {
    expect(failure("j.json", text).message).toBe(`[invalid_input] j.json ${message}`);
  });
  it("parseInventory - refuses a JSON export that names another site", () => {
    const result = parseInventory("kz.ast.akimat.json", sampleBytes("kz.ast.akimat.json"), { site: "kz.ala.metro-01" });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error.message).toBe(
      '[invalid_input] kz.ast.akimat.json line 2, field site: expected kz.ala.metro-01 (the site importing it), got "kz.ast.akimat": this is another site\'s inventory',
    );
    expect(parseInventory("kz.ast.akimat.json", sampleBytes("kz.ast.akimat.json"), { site: "kz.ast.akimat" }).ok).toBe(true);
  });
});
