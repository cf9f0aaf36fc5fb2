import type { Camera, CameraType } from "./camera.ts";

// R-A2.2: infrared range each camera type must reach, in metres.
const MIN_IR_RANGE_M: Readonly<Record<CameraType, number>> = {
  outdoor_overview: 30,
  outdoor_entry: 30,
  outdoor_vehicle_entry: 30,
  outdoor_traffic: 50,
  indoor_entry: 20,
  indoor_overview: 20,
  outdoor_ptz_overview: 150,
  indoor_ptz_overview: 30,
  outdoor_ptz_road: 150,
};

/**
 * Why `camera` falls short of the Appendix 2 minimums that an inventory can show: the
 * resolution, bitrate and frame rate of R-A2.1 and the IR range of its type (R-A2.2). Each
 * reason is short, e.g. `fps 12 < 25 (R-A2.1)`; an empty array means compliant. Minima an
 * inventory does not record (shutter, WDR, IP rating, pixel density...) are not checked.
 */
export function belowMinimums(camera: Camera): string[] {
  const reasons: string[] = [];
  // A sensor turned 90° for corridors (1080×1920) has the same resolution, so compare sides.
  if (Math.max(camera.width, camera.height) < 1920 || Math.min(camera.width, camera.height) < 1080) {
    reasons.push(`resolution ${camera.width}x${camera.height} < 1920x1080 (R-A2.1)`);
  }
  if (camera.bitrate_kbps < 5000) reasons.push(`bitrate ${camera.bitrate_kbps} kbit/s < 5000 kbit/s (R-A2.1)`);
  if (camera.fps < 25) reasons.push(`fps ${camera.fps} < 25 (R-A2.1)`);
  const minIr = MIN_IR_RANGE_M[camera.camera_type];
  if (camera.ir_range_m < minIr) {
    reasons.push(`IR range ${camera.ir_range_m} m < ${minIr} m for ${camera.camera_type} (R-A2.2)`);
  }
  return reasons;
}
