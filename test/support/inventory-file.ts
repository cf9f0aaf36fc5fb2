import { writeFile } from "node:fs/promises";

const HEADER =
  "camera_id,name,object_class,camera_type,vendor,model,firmware,protocol,stream_url,codec,width,height,fps,bitrate_kbps,ir_range_m,mount_height_m,latitude,longitude,address,installed_at,status";

/**
 * Writes a valid UTF-8 CSV inventory of `count` cameras named `PREFIX-000001`…; `fps`
 * lets a test produce a second version in which every camera changed.
 */
export async function writeInventory(file: string, count: number, options: { prefix?: string; fps?: number } = {}): Promise<void> {
  const prefix = options.prefix ?? "cam";
  const fps = options.fps ?? 25;
  const lines = [HEADER];
  for (let i = 1; i <= count; i++) {
    const id = `${prefix}-${String(i).padStart(6, "0")}`;
    lines.push(
      `${id},Camera ${i},critical,outdoor_overview,Bosch,DINION IP 5000i,7.10.0095,onvif,rtsp://admin:secret@10.0.${i % 250}.${i % 200}:554/s,H.264,1920,1080,${fps},6144,30,4.5,51.1,71.4,"Street ${i}, 1",2024-01-0${(i % 9) + 1},online`,
    );
  }
  await writeFile(file, `${lines.join("\n")}\n`);
}
