// Frames in and out of the page: fitting images and video frames to the model's size, and writing the
// result as a WebM video (WebCodecs) or a zip of PNG frames. No model math here.

/** Draw ``image`` (any CanvasImageSource of ``w`` x ``h``) into a ``width`` x ``height`` RGBA array;
 * crop 'centre' cuts the middle to the model's aspect ratio first, 'none' stretches. */
export function fit(image, w, h, width, height, crop = 'centre') {
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  let [sx, sy, sw, sh] = [0, 0, w, h];
  if (crop === 'centre') {
    const aspect = width / height;
    if (w / h > aspect) {
      sw = Math.round(h * aspect);
      sx = Math.floor((w - sw) / 2);
    } else {
      sh = Math.round(w / aspect);
      sy = Math.floor((h - sh) / 2);
    }
  }
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(image, sx, sy, sw, sh, 0, 0, width, height);
  return ctx.getImageData(0, 0, width, height).data;
}

/** An image URL or Blob -> ImageBitmap, colours as stored (no colour management). */
export async function loadImage(source) {
  const blob = source instanceof Blob ? source : await (await fetch(source)).blob();
  return createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
}

/** Frames of a video file (Blob) at ``fps``, fitted to the model's size, at most ``limit`` of them. */
export async function videoFrames(blob, width, height, crop, fps = 25, limit = 300) {
  const video = document.createElement('video');
  video.muted = true;
  video.src = URL.createObjectURL(blob);
  await new Promise((resolve, reject) => {
    video.onloadeddata = resolve;
    video.onerror = () => reject(new Error('this browser cannot decode the driving video'));
  });
  const frames = [];
  const count = Math.min(limit, Math.max(1, Math.floor(video.duration * fps)));
  for (let i = 0; i < count; i++) {
    const seeked = new Promise((resolve) => (video.onseeked = resolve));
    video.currentTime = Math.min(i / fps, Math.max(0, video.duration - 1e-3));
    await seeked;
    frames.push(fit(video, video.videoWidth, video.videoHeight, width, height, crop));
  }
  URL.revokeObjectURL(video.src);
  return frames;
}

// ------------------------------------------------------------------ WebM (VP8 through WebCodecs)
function ebmlSize(n) {
  // 8-byte size field: 0x01 then 7 bytes
  const out = [0x01];
  for (let i = 6; i >= 0; i--) out.push(Math.floor(n / 2 ** (8 * i)) & 0xff);
  return out;
}

function uint(n, bytes) {
  const out = [];
  for (let i = bytes - 1; i >= 0; i--) out.push(Math.floor(n / 2 ** (8 * i)) & 0xff);
  return out;
}

function element(id, payload) {
  const body = payload instanceof Uint8Array ? Array.from(payload) : payload;
  return id.concat(ebmlSize(body.length), body);
}

function float64(x) {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  return Array.from(new Uint8Array(view.buffer));
}

export function webmAvailable() {
  return typeof VideoEncoder !== 'undefined';
}

/** RGBA frames -> a WebM (VP8) Blob at ``fps``, encoded by the browser's WebCodecs. */
export async function encodeWebM(frames, width, height, fps = 25) {
  const chunks = [];
  const encoder = new VideoEncoder({
    output: (chunk) => {
      const data = new Uint8Array(chunk.byteLength);
      chunk.copyTo(data);
      chunks.push({ data, key: chunk.type === 'key', time: chunk.timestamp });
    },
    error: (err) => {
      throw err;
    },
  });
  encoder.configure({ codec: 'vp8', width, height, bitrate: 2_000_000, framerate: fps });
  frames.forEach((rgba, i) => {
    const frame = new VideoFrame(rgba, {
      format: 'RGBA', codedWidth: width, codedHeight: height, timestamp: Math.round((i * 1e6) / fps),
    });
    encoder.encode(frame, { keyFrame: i % 50 === 0 });
    frame.close();
  });
  await encoder.flush();
  encoder.close();
  const text = (s) => Array.from(new TextEncoder().encode(s));
  const header = element([0x1a, 0x45, 0xdf, 0xa3], [
    ...element([0x42, 0x86], [1]), ...element([0x42, 0xf7], [1]), ...element([0x42, 0xf2], [4]),
    ...element([0x42, 0xf3], [8]), ...element([0x42, 0x82], text('webm')),
    ...element([0x42, 0x87], [2]), ...element([0x42, 0x85], [2]),
  ]);
  const info = element([0x15, 0x49, 0xa9, 0x66], [
    ...element([0x2a, 0xd7, 0xb1], uint(1e6, 4)), // TimecodeScale: 1 ms
    ...element([0x44, 0x89], float64((frames.length * 1000) / fps)),
    ...element([0x4d, 0x80], text('mraa')), ...element([0x57, 0x41], text('mraa')),
  ]);
  const tracks = element([0x16, 0x54, 0xae, 0x6b], element([0xae], [
    ...element([0xd7], [1]), ...element([0x73, 0xc5], [1]), ...element([0x83], [1]),
    ...element([0x86], text('V_VP8')),
    ...element([0xe0], [...element([0xb0], uint(width, 2)), ...element([0xba], uint(height, 2))]),
  ]));
  let clusters = [];
  for (let start = 0; start < chunks.length; start += 50) {
    const base = Math.round(chunks[start].time / 1000);
    let blocks = element([0xe7], uint(base, 4));
    for (const c of chunks.slice(start, start + 50)) {
      const rel = Math.round(c.time / 1000) - base;
      const block = [0x81, (rel >> 8) & 0xff, rel & 0xff, c.key ? 0x80 : 0x00].concat(Array.from(c.data));
      blocks = blocks.concat(element([0xa3], block));
    }
    clusters = clusters.concat(element([0x1f, 0x43, 0xb6, 0x75], blocks));
  }
  const segment = element([0x18, 0x53, 0x80, 0x67], info.concat(tracks, clusters));
  return new Blob([new Uint8Array(header.concat(segment))], { type: 'video/webm' });
}

// ------------------------------------------------------------------ zip of PNG frames (stored)
const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** RGBA frames -> a zip (stored, no compression) of frame_00000.png, ... */
export async function encodeZip(frames, width, height) {
  const files = [];
  for (let i = 0; i < frames.length; i++) {
    const canvas = new OffscreenCanvas(width, height);
    canvas.getContext('2d').putImageData(new ImageData(frames[i], width, height), 0, 0);
    const png = new Uint8Array(await (await canvas.convertToBlob({ type: 'image/png' })).arrayBuffer());
    files.push({ name: new TextEncoder().encode(`frame_${String(i).padStart(5, '0')}.png`), data: png });
  }
  const parts = [];
  const central = [];
  let offset = 0;
  const le = (n, bytes) => Array.from({ length: bytes }, (_, k) => (n >>> (8 * k)) & 0xff);
  for (const f of files) {
    const crc = crc32(f.data);
    const common = [...le(20, 2), ...le(0, 2), ...le(0, 2), ...le(0, 2), ...le(0x21, 2), ...le(crc, 4),
      ...le(f.data.length, 4), ...le(f.data.length, 4), ...le(f.name.length, 2), ...le(0, 2)];
    const local = new Uint8Array([...le(0x04034b50, 4), ...common, ...f.name]);
    parts.push(local, f.data);
    central.push(new Uint8Array([...le(0x02014b50, 4), ...le(20, 2), ...common, ...le(0, 2), ...le(0, 2),
      ...le(0, 2), ...le(0, 4), ...le(offset, 4), ...f.name]));
    offset += local.length + f.data.length;
  }
  const size = central.reduce((n, c) => n + c.length, 0);
  const end = new Uint8Array([...le(0x06054b50, 4), ...le(0, 4), ...le(files.length, 2),
    ...le(files.length, 2), ...le(size, 4), ...le(offset, 4), ...le(0, 2)]);
  return new Blob([...parts, ...central, end], { type: 'application/zip' });
}
