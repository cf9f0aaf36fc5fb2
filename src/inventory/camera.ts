/**
 * The nine camera types of R-A2.2. Each has its own minima (see `minimums.ts`), so an
 * inventory must say which one a camera is.
 */
export const CAMERA_TYPES = [
  "outdoor_overview",
  "outdoor_entry",
  "outdoor_vehicle_entry",
  "outdoor_traffic",
  "indoor_entry",
  "indoor_overview",
  "outdoor_ptz_overview",
  "indoor_ptz_overview",
  "outdoor_ptz_road",
] as const;
export type CameraType = (typeof CAMERA_TYPES)[number];

/** The codecs every connected system must handle, spelled as inventories write them. */
export const CODECS = ["MJPEG", "MPEG-4", "MPEG-4 ASP", "MxPEG", "H.264", "H.265"] as const;
export type Codec = (typeof CODECS)[number];

/** How the video-management system talks to the camera: ONVIF or PSIA, or plain RTSP. */
export const PROTOCOLS = ["onvif", "psia", "rtsp"] as const;
export type Protocol = (typeof PROTOCOLS)[number];

/** Whether the site saw the camera working when it exported the inventory. */
export const STATUSES = ["online", "offline"] as const;
export type Status = (typeof STATUSES)[number];

/**
 * The object classes of R-A2.4: crowded places, courtyards, critical (state, strategic and
 * hazardous industrial) objects, and road safety. The class decides which camera types the
 * object needs.
 */
export const OBJECT_CLASSES = ["crowded", "courtyard", "critical", "road"] as const;
export type ObjectClass = (typeof OBJECT_CLASSES)[number];

/**
 * One camera of a site's inventory. Field names are exactly those of the CSV header and the
 * JSON export, so a record maps to a camera without renaming. `stream_url` may carry
 * credentials at the owning site; strip them (`strip-credentials.ts`) before it leaves.
 */
export interface Camera {
  camera_id: string;
  name: string;
  object_class: ObjectClass;
  camera_type: CameraType;
  vendor: string;
  model: string;
  firmware: string;
  protocol: Protocol;
  stream_url: string;
  codec: Codec;
  width: number;
  height: number;
  fps: number;
  bitrate_kbps: number;
  ir_range_m: number;
  mount_height_m: number;
  latitude: number;
  longitude: number;
  address: string;
  /** Calendar date `YYYY-MM-DD`, no time zone: the day is what the site's paperwork records. */
  installed_at: string;
  status: Status;
}

/** Every field of `Camera`, in the column order of the CSV exports. */
export const CAMERA_FIELDS = [
  "camera_id",
  "name",
  "object_class",
  "camera_type",
  "vendor",
  "model",
  "firmware",
  "protocol",
  "stream_url",
  "codec",
  "width",
  "height",
  "fps",
  "bitrate_kbps",
  "ir_range_m",
  "mount_height_m",
  "latitude",
  "longitude",
  "address",
  "installed_at",
  "status",
] as const satisfies readonly (keyof Camera)[];
export type CameraField = (typeof CAMERA_FIELDS)[number];
