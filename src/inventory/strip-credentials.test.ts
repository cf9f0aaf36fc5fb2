import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseInventory } from "./parse-inventory.ts";
import { hasCredentials, stripCredentials } from "./strip-credentials.ts";

const SAMPLES = ["kz.ala.metro-01.csv", "kz.ast.akimat.json", "kz.shy.road-a2.csv"];

function sampleUrls(): string[] {
  return SAMPLES.flatMap((file) => {
    const result = parseInventory(file, readFileSync(new URL(`../../examples/inventory/${file}`, import.meta.url)));
    if (!result.ok) throw result.error;
    return result.value.map((camera) => camera.stream_url);
  });
}

describe("stripCredentials", () => {
  it.each([
    // The four shapes of the sample inventories.
    ["rtsp://service:S3rv;ce#2020@10.28.192.80:554/Streaming/Channels/101", "rtsp://10.28.192.80:554/Streaming/Channels/101"],
    ["rtsp://admin:Qwerty123@10.80.34.179:554/Streaming/Channels/101", "rtsp://10.80.34.179:554/Streaming/Channels/101"],
    ["rtsp://viewer:v1ewer!@10.37.172.136:554/Streaming/Channels/101", "rtsp://10.37.172.136:554/Streaming/Channels/101"],
    ["rtsp://10.155.226.249:554/stream1", "rtsp://10.155.226.249:554/stream1"],
  ])("stripCredentials - strips the sample shape %s", (url, expected) => {
    expect(stripCredentials(url)).toBe(expected);
  });

  it("stripCredentials - leaves no userinfo in any sample URL and changes only those with one", () => {
    const urls = sampleUrls();
    const stripped = urls.map(stripCredentials);
    expect(urls).toHaveLength(82);
    expect(stripped.filter((url) => url.includes("@"))).toEqual([]);
    expect(urls.filter((url, index) => url !== stripped[index])).toHaveLength(64);
    expect(stripped.every((url) => /^rtsp:\/\/10\.\d+\.\d+\.\d+:554\/(stream1|Streaming\/Channels\/101)$/.test(url))).toBe(true);
  });

  it.each([
    ["@ in the password", "rtsp://admin:p@ss@10.0.0.1:554/live", "rtsp://10.0.0.1:554/live"],
    ["/ in the password", "rtsp://admin:pa/ss@10.0.0.1:554/live", "rtsp://10.0.0.1:554/live"],
    ["? in the password", "rtsp://admin:pa?ss@10.0.0.1/live", "rtsp://10.0.0.1/live"],
    ["# at the end of the password", "rtsp://admin:pass#@10.0.0.1/live", "rtsp://10.0.0.1/live"],
    ["every special character at once", "rtsp://admin:a;b#c@d/e?f@10.0.0.1:554/live?channel=1", "rtsp://10.0.0.1:554/live?channel=1"],
    ["@ and / in the password before a query", "rtsp://u:x@y/z@cam.local?channel=2", "rtsp://cam.local?channel=2"],
    ["a user without a password", "rtsp://admin@10.0.0.1/live", "rtsp://10.0.0.1/live"],
    ["an empty userinfo", "rtsp://@10.0.0.1/live", "rtsp://10.0.0.1/live"],
    ["no path after the host", "rtsp://admin:S3rv;ce#2020@10.0.0.1:554", "rtsp://10.0.0.1:554"],
    ["an IPv6 host", "rtsp://admin:p@ss@[fe80::1]:554/live", "rtsp://[fe80::1]:554/live"],
    ["a host name and no port", "http://admin:secret@cam-12.site.kz/video.mjpg", "http://cam-12.site.kz/video.mjpg"],
    ["a malformed host", "rtsp://admin:secret@cam 12", "rtsp://cam 12"],
    ["an @ in the path after credentials", "rtsp://admin:secret@10.0.0.1/a@b", "rtsp://10.0.0.1/a@b"],
    ["no scheme", "admin:secret@10.0.0.1/live", "10.0.0.1/live"],
  ])("stripCredentials - removes userinfo with %s", (_, url, expected) => {
    expect(stripCredentials(url)).toBe(expected);
  });

  it.each([
    ["password", "rtsp://10.0.0.1/live?channel=1&password=secret", "rtsp://10.0.0.1/live?channel=1"],
    ["every credential name in any case", "rtsp://h/l?USER=a&Username=b&pass=c&PWD=d&auth=e&Token=f&x=1", "rtsp://h/l?x=1"],
    ["only credentials, so the ? goes too", "rtsp://h/l?user=admin&password=secret", "rtsp://h/l"],
    ["a percent-encoded name", "rtsp://h/l?pass%77ord=secret&x=1", "rtsp://h/l?x=1"],
    ["a bare token", "rtsp://h/l?token&x=1", "rtsp://h/l?x=1"],
    ["a value with @ and /", "rtsp://10.0.0.1/live?password=p@ss/x", "rtsp://10.0.0.1/live"],
    ["a value with #", "rtsp://h/l?pwd=a#b&x=1", "rtsp://h/l?x=1"],
    ["userinfo and a ? in the password", "rtsp://u:p?x@10.0.0.1/live?user=u&password=p", "rtsp://10.0.0.1/live"],
  ])("stripCredentials - removes query parameters: %s", (_, url, expected) => {
    expect(stripCredentials(url)).toBe(expected);
  });

  it.each([
    "rtsp://10.0.0.1:554/Streaming/Channels/101",
    "rtsp://10.0.0.1/live?channel=1&subtype=0",
    "rtsp://10.0.0.1/live?username_hint=1&passive=true",
    "rtsp://10.0.0.1/live?",
    "rtsp://cam/notify?mail=ops@example.org",
    "http://cam/users/@me",
    "rtsp://cam/live?a=%zz",
    "rtsp://[fe80::1]:554/live#frame",
    "not a url",
    "",
  ])("stripCredentials - returns %j unchanged", (url) => {
    expect(stripCredentials(url)).toBe(url);
  });

  it("stripCredentials - removes a credential-free path prefix holding @host/ rather than risk a password", () => {
    expect(stripCredentials("rtsp://admin:12/34@cam/live")).toBe("rtsp://cam/live");
    expect(stripCredentials("rtsp://cam/a@b/c")).toBe("rtsp://b/c");
  });

  it("stripCredentials - removes a password with / when no path follows the host", () => {
    expect(stripCredentials("rtsp://u:a/b@10.0.0.1")).toBe("rtsp://10.0.0.1");
    expect(stripCredentials("rtsp://admin:pa/ss@10.155.226.249")).toBe("rtsp://10.155.226.249");
    expect(stripCredentials("rtsp://admin:pa/ss@10.155.226.249:554")).toBe("rtsp://10.155.226.249:554");
  });
});

describe("stripCredentials - credential parameters", () => {
  it.each([
    ["rtsp://127.0.0.1/x?passwd=Cc2", "rtsp://127.0.0.1/x"],
    ["rtsp://127.0.0.1/x?secret=Dd1", "rtsp://127.0.0.1/x"],
    ["rtsp://127.0.0.1/x?api_key=Ee0&channel=1", "rtsp://127.0.0.1/x?channel=1"],
    ["rtsp://127.0.0.1/x?channel=1&X-Auth-Token=t&subtype=0", "rtsp://127.0.0.1/x?channel=1&subtype=0"],
    ["rtsp://127.0.0.1/x?Client_Secret=s&access_key=k&sig=z&login=u", "rtsp://127.0.0.1/x"],
    ["rtsp://127.0.0.1/x;password=Ff9", "rtsp://127.0.0.1/x"],
    ["rtsp://127.0.0.1/live;user=admin;password=Ff9/ch1?channel=2", "rtsp://127.0.0.1/live/ch1?channel=2"],
    ["rtsp://127.0.0.1/live;transport=tcp;pwd=1", "rtsp://127.0.0.1/live;transport=tcp"],
    ["rtsp://127.0.0.1/x?pass%77ord=1", "rtsp://127.0.0.1/x"],
    ["rtsp://127.0.0.1/stream1#password=hunter2", "rtsp://127.0.0.1/stream1#password="],
    ["rtsp://127.0.0.1/user=admin_password=hunter2_channel=1_stream=0.sdp", "rtsp://127.0.0.1/user=_password=_channel=1_stream=0.sdp"],
    ["http://127.0.0.1/videostream.cgi?loginuse=admin&loginpas=hunter2&res=0", "http://127.0.0.1/videostream.cgi?res=0"],
    ["rtsp://127.0.0.1/x?pw=hunter2", "rtsp://127.0.0.1/x"],
    ["rtsp://127.0.0.1/x?psw=hunter2&cred=c", "rtsp://127.0.0.1/x"],
    ["rtsp://127.0.0.1/x?a=1;password=hunter2", "rtsp://127.0.0.1/x?a=1;password="],
    ["rtsp://127.0.0.1/live/password/hunter2/ch1", "rtsp://127.0.0.1/live/password//ch1"],
  ])("stripCredentials - removes the credential parameters of %s", (url, expected) => {
    expect(stripCredentials(url)).toBe(expected);
  });

  it.each([
    "rtsp://127.0.0.1/live?channel=1&subtype=0&profile=main",
    "rtsp://127.0.0.1/live;transport=tcp;unicast",
    "rtsp://127.0.0.1/Streaming/Channels/101?transportmode=unicast&keyframe=1",
  ])("stripCredentials - keeps %s as it is", (url) => {
    expect(stripCredentials(url)).toBe(url);
  });
});

describe("hasCredentials", () => {
  it("hasCredentials - is true for userinfo and credential parameters", () => {
    expect(hasCredentials("rtsp://service:S3rv;ce#2020@10.28.192.80:554/Streaming/Channels/101")).toBe(true);
    expect(hasCredentials("rtsp://10.0.0.1/live?Token=abc")).toBe(true);
  });

  it("hasCredentials - is false for URLs without credentials", () => {
    expect(hasCredentials("rtsp://10.155.226.249:554/stream1")).toBe(false);
    expect(hasCredentials("rtsp://10.0.0.1/live?channel=1")).toBe(false);
  });
});
