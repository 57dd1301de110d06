// The page: inputs, buttons and the test hook window.mraa. The model runs in engine.js, frames move in
// media.js; nothing leaves this machine.
import { Engine } from './engine.js';
import { encodeWebM, encodeZip, fit, loadImage, videoFrames, webmAvailable } from './media.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const state = { engine: null, source: null, drivingBlob: null, frames: [], live: null, player: null };

function status(text) {
  $('status').textContent = text;
}

function draw(canvas, rgba, width, height) {
  canvas.width = width;
  canvas.height = height;
  canvas.getContext('2d').putImageData(new ImageData(rgba, width, height), 0, 0);
}

async function setSource(image) {
  const { engine } = state;
  state.sourceImage = image;
  const rgba = fit(image, image.width, image.height, engine.width, engine.height, $('crop').value);
  draw($('source-view'), rgba, engine.width, engine.height);
  state.source = await engine.encodeSource(rgba);
}

/** Animate ``source`` (URL or Blob) with driving frames (RGBA at the model's size); returns RGBA frames. */
async function animateRGBA(drivingRGBA, mode, onFrame) {
  const { engine } = state;
  const frames = [];
  let initial = null;
  const started = performance.now();
  for (const rgba of drivingRGBA) {
    const out = await engine.animate(state.source, rgba, initial, mode);
    initial = out.initial;
    frames.push(out.rgba);
    if (onFrame) onFrame(out.rgba, frames.length, performance.now() - started);
  }
  return frames;
}

/** The test hook: source and driving frame URLs -> {width, height, frames: [RGBA Uint8ClampedArray]}. */
async function animateFrames(sourceUrl, drivingFrameUrls, options = {}) {
  const { engine } = state;
  const crop = options.crop ?? 'centre';
  const mode = options.mode ?? engine.manifest.default_mode;
  const source = await loadImage(sourceUrl);
  const rgba = fit(source, source.width, source.height, engine.width, engine.height, crop);
  const saved = state.source;
  state.source = await engine.encodeSource(rgba);
  const driving = [];
  for (const url of drivingFrameUrls) {
    const image = await loadImage(url);
    driving.push(fit(image, image.width, image.height, engine.width, engine.height, crop));
  }
  const frames = await animateRGBA(driving, mode);
  state.source = saved ?? state.source;
  return { width: engine.width, height: engine.height, frames };
}

function showFps(frames, ms) {
  const fps = (1000 * frames) / ms;
  $('fps').textContent = `${fps.toFixed(1)} fps`;
  return fps;
}

async function animateClicked() {
  if (!state.source) return status('choose a photo first');
  if (!state.drivingBlob) return status('choose a driving video first');
  stopLive();
  const { engine } = state;
  status('reading the driving video...');
  const driving = await videoFrames(state.drivingBlob, engine.width, engine.height, $('crop').value);
  status(`animating ${driving.length} frames...`);
  state.driving = driving;
  state.frames = await animateRGBA(driving, $('mode').value, (rgba, n, ms) => {
    draw($('driving-view'), driving[n - 1], engine.width, engine.height);
    draw($('result-view'), rgba, engine.width, engine.height);
    showFps(n, ms);
    status(`animating: frame ${n} of ${driving.length}`);
  });
  status(`done: ${state.frames.length} frames`);
  $('play').disabled = $('download').disabled = false;
}

function playClicked() {
  const { engine, frames } = state;
  clearInterval(state.player);
  let i = 0;
  state.player = setInterval(() => {
    draw($('driving-view'), state.driving[i], engine.width, engine.height);
    draw($('result-view'), frames[i], engine.width, engine.height);
    i = (i + 1) % frames.length;
  }, 40);
}

async function downloadClicked() {
  const { engine, frames } = state;
  const webm = webmAvailable();
  status(webm ? 'encoding WebM...' : 'writing PNG frames...');
  const blob = webm
    ? await encodeWebM(frames, engine.width, engine.height)
    : await encodeZip(frames, engine.width, engine.height);
  const link = document.createElement('a');
  link.href = URL.createObjectURL(blob);
  link.download = webm ? 'mraa.webm' : 'mraa-frames.zip';
  link.click();
  status(`saved ${link.download}`);
}

/** Follow the webcam: every frame is animated as it arrives; the first one (or the one after "reset
 * reference") is the relative mode's reference. */
async function startLive() {
  const { engine } = state;
  if (!state.source) return status('choose a photo first');
  const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
  const video = $('webcam');
  video.srcObject = stream;
  await video.play();
  const live = { stream, initial: null, frames: 0, references: 0, running: true, started: performance.now() };
  state.live = live;
  window.mraa.live = live;
  $('reset').disabled = false;
  status('live: follow the webcam');
  while (live.running) {
    if (video.readyState >= 2 && state.source) {
      const rgba = fit(video, video.videoWidth, video.videoHeight, engine.width, engine.height, $('crop').value);
      draw($('driving-view'), rgba, engine.width, engine.height);
      if (live.initial === null) live.references += 1; // this frame becomes the reference
      const out = await engine.animate(state.source, rgba, live.initial, $('mode').value);
      live.initial = out.initial;
      live.frames += 1;
      draw($('result-view'), out.rgba, engine.width, engine.height);
      live.fps = showFps(live.frames, performance.now() - live.started);
    }
    await new Promise((resolve) => requestAnimationFrame(resolve));
  }
}

function stopLive() {
  if (!state.live) return;
  state.live.running = false;
  state.live.stream.getTracks().forEach((t) => t.stop());
  state.live = null;
  $('reset').disabled = true;
}

async function init() {
  const backend = params.get('backend') ?? 'auto';
  status('loading the model...');
  const engine = await Engine.load(backend, Number(params.get('threads') ?? 0));
  state.engine = engine;
  const threads = engine.threads ? `, ${engine.threads} thread${engine.threads > 1 ? 's' : ''}` : '';
  $('backend').textContent = `${engine.backend === 'webgpu' ? 'WebGPU' : 'WASM'}${threads}`;
  $('mode').value = engine.manifest.default_mode;
  const sample = engine.manifest.samples;
  if (sample) {
    await setSource(await loadImage(new URL(sample.source, location.href)));
    state.drivingBlob = await (await fetch(new URL(sample.driving, location.href))).blob();
    $('driving-name').textContent = 'sample';
  }
  $('photo').onchange = async (e) => e.target.files[0] && setSource(await loadImage(e.target.files[0]));
  $('crop').onchange = () => state.sourceImage && setSource(state.sourceImage);
  $('video').onchange = (e) => {
    state.drivingBlob = e.target.files[0] ?? state.drivingBlob;
    $('driving-name').textContent = e.target.files[0]?.name ?? '';
  };
  $('animate').onclick = () => animateClicked().catch((err) => status(`error: ${err.message}`));
  $('play').onclick = playClicked;
  $('download').onclick = () => downloadClicked().catch((err) => status(`error: ${err.message}`));
  $('live').onclick = () =>
    state.live ? stopLive() : startLive().catch((err) => status(`error: ${err.message}`));
  $('reset').onclick = () => state.live && (state.live.initial = null);
  status(`ready: ${engine.width}x${engine.height} model`);
}

window.mraa = { animateFrames, encodeWebM, encodeZip, state, live: null };
window.mraa.ready = init().then(
  () => state.engine.backend,
  (err) => {
    status(`error: ${err.message ?? err}`);
    throw err;
  },
);
