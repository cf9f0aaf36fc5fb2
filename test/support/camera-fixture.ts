import type { Camera } from "../../src/gen/vmtree/v1/inventory.ts";

/** A valid camera (metro-01-cam-001 of the samples) under another id; any field can be overridden. */
export function sampleCamera(id: string, overrides: Partial<Camera> = {}): Camera {
  return {
    camera_id: id,
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
    ...overrides,
  };
}
