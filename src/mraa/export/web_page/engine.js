// mraa in the browser: runs the graphs written by `mraa export --format web` with onnxruntime-web.
// The graph contract is documented once, in docs/web.md (and mraa/export/web.py): every per-frame
// computation is a graph; this module only moves frames and tensors between them.
const HERE = new URL('./', import.meta.url);
let ort = null; // onnxruntime-web: the WebGPU build (ort.min.mjs) or the smaller WASM-only one

async function runtime(backend, threads) {
  const bundle = backend === 'webgpu' ? 'ort/ort.min.mjs' : 'ort/ort.wasm.min.mjs';
  ort = await import(new URL(bundle, HERE).href);
  ort.env.wasm.wasmPaths = new URL('ort/', HERE).href; // the copied runtime files: no CDN, works offline
  // threads need cross-origin isolation; the default is onnxruntime-web's own: half the cores, at most 4
  const cores = navigator.hardwareConcurrency || 1;
  const most = self.crossOriginIsolated ? cores : 1;
  ort.env.wasm.numThreads = Math.min(threads || Math.min(4, Math.ceil(cores / 2)), most);
  return ort;
}

const PARAMS = ['shift', 'affine', 'covar'];

async function webgpuAvailable() {
  if (!navigator.gpu) return false;
  try {
    return (await navigator.gpu.requestAdapter()) !== null;
  } catch {
    return false;
  }
}

/** RGBA bytes (H*W*4) -> a (1, 3, H, W) float tensor in [0, 1]. */
export function toTensor(rgba, width, height) {
  const plane = width * height;
  const data = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    data[i] = rgba[4 * i] / 255;
    data[plane + i] = rgba[4 * i + 1] / 255;
    data[2 * plane + i] = rgba[4 * i + 2] / 255;
  }
  return new ort.Tensor('float32', data, [1, 3, height, width]);
}

/** A (1, 3, H, W) float tensor -> RGBA bytes (clipped to [0, 1], rounded, opaque). */
export function toRGBA(tensor) {
  const [, , height, width] = tensor.dims;
  const plane = width * height;
  const src = tensor.data;
  const out = new Uint8ClampedArray(4 * plane);
  for (let i = 0; i < plane; i++) {
    out[4 * i] = Math.round(Math.min(Math.max(src[i], 0), 1) * 255);
    out[4 * i + 1] = Math.round(Math.min(Math.max(src[plane + i], 0), 1) * 255);
    out[4 * i + 2] = Math.round(Math.min(Math.max(src[2 * plane + i], 0), 1) * 255);
    out[4 * i + 3] = 255;
  }
  return out;
}

export class Engine {
  /** Load the manifest and the graphs; backend 'webgpu', 'wasm' or 'auto' (WebGPU when offered);
   * ``threads``: WASM threads (default: half the cores, at most 4; 1 without cross-origin isolation). */
  static async load(backend = 'auto', threads = 0) {
    const manifest = await (await fetch(new URL('manifest.json', HERE))).json();
    const order = backend === 'auto' ? ((await webgpuAvailable()) ? ['webgpu', 'wasm'] : ['wasm']) : [backend];
    for (const name of order) {
      try {
        await runtime(name, threads);
        const sessions = {};
        for (const [graph, path] of Object.entries(manifest.graphs)) {
          sessions[graph] = await ort.InferenceSession.create(new URL(path, HERE).href, {
            executionProviders: [name],
            graphOptimizationLevel: 'all',
          });
        }
        return new Engine(manifest, sessions, name);
      } catch (err) {
        if (name === order[order.length - 1]) throw err;
        console.warn(`mraa: backend ${name} failed (${err}); trying the next one`);
      }
    }
  }

  constructor(manifest, sessions, backend) {
    this.manifest = manifest;
    this.sessions = sessions;
    this.backend = backend;
    [this.height, this.width] = manifest.size;
    this.threads = backend === 'wasm' ? ort.env.wasm.numThreads : null;
  }

  async run(graph, feeds) {
    const session = this.sessions[graph];
    const wanted = {};
    for (const name of session.inputNames) {
      if (!(name in feeds)) throw new Error(`${graph}: no input ${name}`);
      wanted[name] = feeds[name];
    }
    return session.run(wanted);
  }

  /** Everything that depends only on the source image (RGBA at the model's size). */
  async encodeSource(rgba) {
    const source = toTensor(rgba, this.width, this.height);
    const regions = await this.run('region_predictor', { image: source });
    const encoded = await this.run('source_encoder', { source });
    const background = await this.run('background', { source });
    const feeds = { source, bg_params: background.bg_params };
    for (const name of this.sessions.source_encoder.outputNames) feeds[name] = encoded[name];
    for (const key of PARAMS) feeds[`source_${key}`] = regions[key];
    return { feeds, regions };
  }

  /** The region params of one driving frame (RGBA at the model's size). */
  async regions(rgba) {
    const out = await this.run('region_predictor', { image: toTensor(rgba, this.width, this.height) });
    return { shift: out.shift, affine: out.affine, covar: out.covar };
  }

  /** The params to render in ``mode`` for driving params ``driving`` and the first frame's ``initial``. */
  async motion(state, driving, initial, mode) {
    const feeds = { source_shift: state.regions.shift, source_affine: state.regions.affine };
    Object.assign(feeds, { driving_shift: driving.shift, driving_affine: driving.affine });
    if (mode === 'standard') return driving;
    if (mode === 'relative') {
      Object.assign(feeds, { initial_shift: initial.shift, initial_affine: initial.affine });
      return this.run('relative', { ...feeds, driving_covar: driving.covar });
    }
    if (mode === 'avd') return this.run('avd_network', feeds);
    throw new Error(`unknown mode ${mode}; choose from ${this.manifest.modes.join(', ')}`);
  }

  /** One animated frame (RGBA) for a driving frame (RGBA); ``initial`` null on the first frame. */
  async animate(state, rgba, initial, mode) {
    const driving = await this.regions(rgba);
    const first = initial ?? driving;
    const params = await this.motion(state, driving, first, mode);
    const feeds = { ...state.feeds };
    for (const key of PARAMS) feeds[`driving_${key}`] = params[key];
    const { prediction } = await this.run('generator', feeds);
    return { rgba: toRGBA(prediction), initial: first };
  }
}
