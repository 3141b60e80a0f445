// The draw-a-digit page: draw on the canvas, and the model (plain TensorFlow.js,
// loaded from the server) gives the ten class probabilities while you draw. The
// drawing is prepared by preprocess.js, a bundle of lib/preprocess.ts: the same
// code `deno task predict` runs on image files (web/build.sh makes it).
import { preprocessDigit } from "./preprocess.js";

/** TensorFlow.js, from /tfjs/tf.es2017.min.js (with the WebGPU backend added by its own bundle). */
const tf = globalThis.tf;
/** The backends to try, best first. */
const BACKENDS = ["webgpu", "webgl", "cpu"];
/** Least time between two predictions while the pointer moves, ms. */
const THROTTLE_MS = 100;
/**
 * Brush width on the 280 px canvas. A digit drawn across most of the square is
 * scaled to MNIST's 20 px box, so 22 px becomes about 2 px: MNIST's stroke width.
 */
const BRUSH = 22;

const pad = document.getElementById("pad");
const context = pad.getContext("2d", { willReadFrequently: true });
const clearButton = document.getElementById("clear");
const prediction = document.getElementById("prediction");
const confidence = document.getElementById("confidence");
const announce = document.getElementById("announce");
const backendLine = document.getElementById("backend");
const errorLine = document.getElementById("error");
const bars = makeBars(document.getElementById("bars"));

/** The model, once loaded on a working backend. */
let model = null;
/** Counts changes of the drawing; a prediction is shown with the version it saw. */
let version = 0;
/** The version of the last Clear: older predictions are not shown. */
let clearedVersion = 0;
/** The pointer drawing now, and where it was. */
let stroke = null;
let busy = false;
let lastRun = -Infinity;
let timer = 0;

/** One list item per digit: the digit, a bar and a percentage. */
function makeBars(list) {
  return Array.from({ length: 10 }, (_, digit) => {
    const item = document.createElement("li");
    const label = document.createElement("span");
    label.className = "digit";
    label.textContent = String(digit);
    const track = document.createElement("span");
    track.className = "track";
    track.setAttribute("aria-hidden", "true");
    const fill = document.createElement("span");
    fill.className = "fill";
    track.append(fill);
    const percent = document.createElement("span");
    percent.className = "percent";
    percent.textContent = "0.0%";
    item.append(label, track, percent);
    list.append(item);
    return { item, fill, percent };
  });
}

function showProbabilities(probabilities) {
  const best = probabilities.indexOf(Math.max(...probabilities));
  bars.forEach(({ item, fill, percent }, digit) => {
    const p = probabilities[digit];
    fill.style.width = `${(100 * p).toFixed(1)}%`;
    percent.textContent = `${(100 * p).toFixed(1)}%`;
    item.classList.toggle("top", digit === best && p > 0);
  });
  return best;
}

function showError(message) {
  errorLine.textContent = message;
  errorLine.hidden = false;
}

/** Black paper: the model wants a light digit on black, as MNIST is. */
function clearPad() {
  context.fillStyle = "#000";
  context.fillRect(0, 0, pad.width, pad.height);
  version += 1;
  clearedVersion = version;
  pad.dataset.version = String(version);
  prediction.textContent = "–";
  prediction.dataset.version = String(version);
  delete prediction.dataset.digit;
  confidence.textContent = model ? "Draw a digit" : "";
  showProbabilities(new Array(10).fill(0));
}

/** Where a pointer event is, in canvas pixels. */
function canvasPoint(event) {
  const rect = pad.getBoundingClientRect();
  return {
    x: (event.clientX - rect.left - pad.clientLeft) * pad.width / pad.clientWidth,
    y: (event.clientY - rect.top - pad.clientTop) * pad.height / pad.clientHeight,
  };
}

function drawTo(point) {
  context.strokeStyle = "#fff";
  context.lineWidth = BRUSH;
  context.lineCap = "round";
  context.lineJoin = "round";
  context.beginPath();
  context.moveTo(stroke.x, stroke.y);
  context.lineTo(point.x, point.y);
  context.stroke();
  stroke = point;
  version += 1;
  pad.dataset.version = String(version);
}

pad.addEventListener("pointerdown", (event) => {
  if (event.button !== 0) return;
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  stroke = canvasPoint(event);
  context.fillStyle = "#fff";
  context.beginPath();
  context.arc(stroke.x, stroke.y, BRUSH / 2, 0, 2 * Math.PI);
  context.fill();
  version += 1;
  pad.dataset.version = String(version);
  requestPrediction(false);
});

pad.addEventListener("pointermove", (event) => {
  if (!stroke) return;
  const events = event.getCoalescedEvents?.() ?? [];
  for (const e of events.length ? events : [event]) drawTo(canvasPoint(e));
  requestPrediction(false);
});

for (const type of ["pointerup", "pointercancel"]) {
  pad.addEventListener(type, () => {
    if (!stroke) return;
    stroke = null;
    requestPrediction(true);
  });
}

clearButton.addEventListener("click", clearPad);

/** Predict now, or when the throttle allows; never two at a time. */
function requestPrediction(now) {
  if (!model || busy) return; // a running prediction re-checks the version when it ends
  const wait = now ? 0 : lastRun + THROTTLE_MS - performance.now();
  if (wait > 0) {
    timer ||= setTimeout(() => {
      timer = 0;
      requestPrediction(true);
    }, wait);
    return;
  }
  clearTimeout(timer);
  timer = 0;
  void predictDrawing();
}

async function predictDrawing() {
  busy = true;
  lastRun = performance.now();
  const seen = version;
  try {
    const image = context.getImageData(0, 0, pad.width, pad.height);
    let input;
    try {
      input = preprocessDigit(image);
    } catch (error) {
      if (!(error instanceof RangeError && /blank image/.test(error.message))) throw error;
    }
    if (seen > clearedVersion) {
      if (input) {
        const probabilities = await classify(model, input);
        if (seen > clearedVersion) {
          const digit = showProbabilities(probabilities);
          prediction.textContent = String(digit);
          prediction.dataset.digit = String(digit);
          confidence.textContent = `${(100 * probabilities[digit]).toFixed(1)}% sure`;
          if (!stroke) announce.textContent = `Looks like a ${digit}`;
        }
      }
      if (seen > clearedVersion) prediction.dataset.version = String(seen);
    }
  } catch (error) {
    showError(`Cannot predict: ${error.message}`);
  } finally {
    busy = false;
  }
  if (version !== seen && version !== clearedVersion) requestPrediction(!stroke);
}

/** The ten probabilities a TensorFlow.js model gives one 28×28 input. */
async function classify(net, input) {
  const output = tf.tidy(() => net.predict(tf.tensor4d(input, [1, 28, 28, 1])));
  try {
    return Array.from(await output.data());
  } finally {
    output.dispose();
  }
}

/**
 * Use the first backend that starts, loads the model and gives ten finite
 * probabilities summing to 1 for a test stroke; say which, and why others were
 * passed over.
 */
async function start() {
  const passed = [];
  for (const name of BACKENDS) {
    if (!tf.findBackendFactory(name)) {
      passed.push(`${name}: not available in this browser`);
      continue;
    }
    try {
      if (name === "webgpu" && !(await navigator.gpu?.requestAdapter())) {
        throw new Error("no WebGPU adapter");
      }
      if (!(await tf.setBackend(name))) throw new Error("it did not start");
      await tf.ready();
      if (tf.getBackend() !== name) throw new Error(`got ${tf.getBackend()}`);
      const loaded = await tf.loadLayersModel("/model/model.json");
      const test = new Float32Array(28 * 28);
      for (let y = 6; y < 22; y++) test[y * 28 + 14] = 1; // a "1"
      const p = await classify(loaded, test).catch((error) => {
        loaded.dispose();
        throw error;
      });
      const sum = p.reduce((a, b) => a + b, 0);
      if (p.length !== 10 || !p.every(Number.isFinite) || Math.abs(sum - 1) > 1e-3) {
        loaded.dispose();
        throw new Error(`a test input gave ${p.length} probabilities summing to ${sum}`);
      }
      model = loaded;
      const detail = passed.length ? ` (passed over ${passed.join("; ")})` : "";
      backendLine.textContent = `TensorFlow.js backend: ${name}${detail}`;
      backendLine.dataset.backend = name;
      document.body.dataset.ready = "true";
      clearPad();
      return;
    } catch (error) {
      passed.push(`${name}: ${error.message}`);
    }
  }
  backendLine.textContent = `TensorFlow.js backend: none (${passed.join("; ")})`;
  showError("Cannot start: no TensorFlow.js backend could run the model");
}

clearPad();
if (tf) {
  start().catch((error) => showError(`Cannot start: ${error.message}`));
} else {
  showError("Cannot start: TensorFlow.js did not load");
}
