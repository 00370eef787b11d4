// orsanet serve: a photo (file input or drag and drop) or the live camera -> POST /v1/predict -> boxes,
// labels, probability bars and the priors drawn over the picture. Talks to this server only.
"use strict";

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const percent = (p) => `${(100 * p).toFixed(1)}%`;

// ---- the API ----------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(message, status, retryAfter) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

/** POST a picture (Blob) to /v1/predict with query options; the JSON answer, or an ApiError. */
async function predict(blob, name, options = {}) {
  const form = new FormData();
  form.append("file", blob, name);
  const response = await fetch(`/v1/predict?${new URLSearchParams(options)}`, { method: "POST", body: form });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const message = body && body.error ? `${body.error.code}: ${body.error.message}` : `HTTP ${response.status}`;
    throw new ApiError(message, response.status, Number(response.headers.get("Retry-After")) || 1);
  }
  return body;
}

function showStatus(text, isError = false) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

async function showModel() {
  try {
    const info = await (await fetch("/v1/model")).json();
    $("model").textContent = `${info.labels.length} expressions · ${info.config.image_backbone} `
      + `${info.input_contract.input_size}px ${info.input_contract.color} · orsanet ${info.orsanet_version}`;
  } catch (error) {
    $("model").textContent = "model info unavailable";
  }
}

// ---- drawing ----------------------------------------------------------------------------------

/** Load the parsing overlays (PNG data URLs) of the faces, so that they can be drawn at once. */
async function loadOverlays(faces) {
  await Promise.all(faces.map(async (face) => {
    if (!face.parsing) return;
    const picture = new Image();
    picture.src = face.parsing;
    await picture.decode().catch(() => null);
    face.parsingImage = picture;
  }));
}

/** Blue (0) to red (1), for the Grad-CAM cells. */
const heatColour = (v, alpha) => `hsla(${Math.round(240 * (1 - v))}, 100%, 50%, ${alpha})`;

/**
 * Draw the faces over `ctx`: `scale` maps image pixels of the answer to canvas pixels;
 * `show`: {landmarks, parsing, heatmap}.
 */
function drawFaces(ctx, faces, scale, show) {
  const line = Math.max(2, ctx.canvas.width / 300);
  const fontSize = Math.max(13, Math.round(ctx.canvas.width / 40));
  for (const face of faces) {
    const [sx0, sy0, sx1, sy1] = face.square.map((v) => v * scale);
    if (show.parsing && face.parsingImage) {
      ctx.globalAlpha = 0.5;
      ctx.drawImage(face.parsingImage, sx0, sy0, sx1 - sx0, sy1 - sy0);
      ctx.globalAlpha = 1;
    }
    if (show.heatmap && face.heatmap) {
      const rows = face.heatmap.length;
      const cell = (sx1 - sx0) / rows;
      face.heatmap.forEach((row, i) => row.forEach((v, j) => {
        ctx.fillStyle = heatColour(v, 0.15 + 0.35 * v);
        ctx.fillRect(sx0 + j * cell, sy0 + i * cell, cell, cell);
      }));
    }
    if (show.landmarks && face.landmarks) {
      ctx.fillStyle = "#ffd400";
      const dot = Math.max(1, line / 2);
      for (const [x, y] of face.landmarks) ctx.fillRect(x * scale - dot / 2, y * scale - dot / 2, dot, dot);
    }
    const [x0, y0, x1, y1] = face.box.map((v) => v * scale);
    ctx.lineWidth = line;
    ctx.strokeStyle = "#35d05a";
    ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
    const label = `${face.expression} ${percent(face.confidence)}`;
    ctx.font = `600 ${fontSize}px system-ui, sans-serif`;
    const width = ctx.measureText(label).width + 8;
    const top = y0 - fontSize - 6 >= 0 ? y0 - fontSize - 6 : y1;
    ctx.fillStyle = "rgba(0, 0, 0, 0.75)";
    ctx.fillRect(x0, top, width, fontSize + 6);
    ctx.fillStyle = "#35d05a";
    ctx.textBaseline = "top";
    ctx.fillText(label, x0 + 4, top + 3);
  }
}

/** One list item per face: its expression and a bar per label. */
function listFaces(list, faces, labels, caption = "") {
  list.replaceChildren();
  if (!faces.length) {
    const item = document.createElement("li");
    item.className = "face none";
    item.textContent = `${caption}no face found`;
    list.append(item);
    return;
  }
  for (const face of faces) {
    const item = document.createElement("li");
    item.className = "face";
    const title = document.createElement("h3");
    title.textContent = `${caption}face ${face.face}: ${face.expression} ${percent(face.confidence)}`;
    item.append(title);
    for (const name of labels) {
      const p = face.probabilities[name] ?? 0;
      const bar = document.createElement("div");
      bar.className = name === face.expression ? "bar top" : "bar";
      bar.innerHTML = '<span class="name"></span><span class="track"><span class="fill"></span></span>'
        + '<span class="value"></span>';
      bar.querySelector(".name").textContent = name;
      bar.querySelector(".fill").style.width = percent(p);
      bar.querySelector(".value").textContent = percent(p);
      item.append(bar);
    }
    const note = document.createElement("p");
    note.className = "note";
    note.textContent = face.prior_valid ? `priors measured · detection ${percent(face.detection_score)}`
      : "priors not measured: classified from the pixels alone";
    item.append(note);
    list.append(item);
  }
}

// ---- photo mode -------------------------------------------------------------------------------

const photo = { bitmap: null, answer: null };

function photoOptions() {
  return { landmarks: $("show-landmarks").checked, parsing: $("show-parsing").checked,
    heatmap: $("show-heatmap").checked };
}

function drawPhoto() {
  const canvas = $("photo-canvas");
  const { bitmap, answer } = photo;
  if (!bitmap || !answer) return;
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(bitmap, 0, 0);
  drawFaces(ctx, answer.faces, bitmap.width / answer.image.width, photoOptions());
  canvas.dataset.faces = String(answer.faces.length);
}

async function classifyFile(file) {
  if (!file) return;
  showStatus(`classifying ${file.name}…`);
  $("photo-faces").replaceChildren();
  const started = performance.now();
  try {
    const answer = await predict(file, file.name, { explain: true, landmarks: true });
    const seconds = ((performance.now() - started) / 1000).toFixed(2);
    if (answer.frames) {  // a video: one line of faces per sampled frame
      $("photo-canvas").width = 0;
      const list = $("photo-faces");
      const items = answer.frames.map((frame) => {
        const part = document.createElement("ol");
        listFaces(part, frame.faces, answer.labels, `frame ${frame.frame} · `);
        return [...part.children];
      });
      list.replaceChildren(...items.flat());
      showStatus(`${file.name}: ${answer.frames.length} frames classified in ${seconds} s`);
      return;
    }
    await loadOverlays(answer.faces);
    photo.bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
    photo.answer = answer;
    drawPhoto();
    listFaces($("photo-faces"), answer.faces, answer.labels);
    showStatus(`${file.name}: ${answer.faces.length} face(s) in ${seconds} s`);
  } catch (error) {
    showStatus(error.message, true);
  }
}

function setUpPhoto() {
  const drop = $("drop");
  $("file").addEventListener("change", (event) => classifyFile(event.target.files[0]));
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    classifyFile(event.dataTransfer.files[0]);
  });
  for (const id of ["show-landmarks", "show-parsing", "show-heatmap"]) $(id).addEventListener("change", drawPhoto);
}

// ---- live camera ------------------------------------------------------------------------------

const GRAB_WIDTH = 640;  // camera frames are sent at most this wide
let live = null;         // the running session: {stream, running, answered, started}

function showStats(session, latency) {
  const stats = $("camera-stats");
  const seconds = (performance.now() - session.started) / 1000;
  stats.dataset.answered = String(session.answered);
  stats.textContent = `${session.answered} frames · ${(session.answered / seconds).toFixed(1)} fps`
    + (latency ? ` · ${Math.round(latency)} ms per frame` : "");
}

/** Grab a frame, send it, draw its answer; the next frame is sent only once the answer is back. */
async function liveLoop(session) {
  const video = $("camera-video");
  const overlay = $("camera-overlay");
  const grab = document.createElement("canvas");
  while (session.running) {
    if (!video.videoWidth) {
      await sleep(50);
      continue;
    }
    const scale = Math.min(1, GRAB_WIDTH / video.videoWidth);
    grab.width = Math.round(video.videoWidth * scale);
    grab.height = Math.round(video.videoHeight * scale);
    grab.getContext("2d").drawImage(video, 0, 0, grab.width, grab.height);
    const blob = await new Promise((resolve) => grab.toBlob(resolve, "image/jpeg", 0.85));
    if (!session.running) break;  // stopped while the frame was being encoded: it is not sent
    const started = performance.now();
    try {
      const parsing = $("camera-parsing").checked;
      const answer = await predict(blob, "camera.jpg", { landmarks: true, explain: parsing });
      if (!session.running) break;
      if (parsing) await loadOverlays(answer.faces);
      overlay.width = grab.width;
      overlay.height = grab.height;
      const ctx = overlay.getContext("2d");
      ctx.clearRect(0, 0, overlay.width, overlay.height);
      drawFaces(ctx, answer.faces, grab.width / answer.image.width, { landmarks: true, parsing, heatmap: false });
      listFaces($("camera-faces"), answer.faces, answer.labels);
      session.answered += 1;
      showStats(session, performance.now() - started);
      showStatus("");
    } catch (error) {
      showStatus(error.message, true);
      await sleep(error instanceof ApiError && error.status === 503 ? 1000 * error.retryAfter : 1000);
    }
  }
}

async function startCamera() {
  if (live) return;
  $("camera-start").disabled = true;
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: false,
      video: { width: { ideal: 640 }, height: { ideal: 480 } } });
    const video = $("camera-video");
    video.srcObject = stream;
    await video.play();
    live = { stream, running: true, answered: 0, started: performance.now() };
    $("camera-stop").disabled = false;
    showStats(live);
    liveLoop(live);
  } catch (error) {
    $("camera-start").disabled = false;
    showStatus(`the camera cannot start: ${error.message}`, true);
  }
}

function stopCamera() {
  if (!live) return;
  live.running = false;
  live.stream.getTracks().forEach((track) => track.stop());
  live = null;
  const video = $("camera-video");
  video.pause();
  video.srcObject = null;
  const overlay = $("camera-overlay");
  overlay.getContext("2d").clearRect(0, 0, overlay.width, overlay.height);
  $("camera-stats").textContent = "stopped";
  $("camera-start").disabled = false;
  $("camera-stop").disabled = true;
}

// ---- tabs -------------------------------------------------------------------------------------

function selectMode(mode) {
  for (const tab of document.querySelectorAll(".tabs button")) {
    tab.setAttribute("aria-selected", String(tab.dataset.mode === mode));
  }
  $("photo-mode").hidden = mode !== "photo";
  $("camera-mode").hidden = mode !== "camera";
  if (mode !== "camera") stopCamera();
}

for (const tab of document.querySelectorAll(".tabs button")) {
  tab.addEventListener("click", () => selectMode(tab.dataset.mode));
}
$("camera-start").addEventListener("click", startCamera);
$("camera-stop").addEventListener("click", stopCamera);
setUpPhoto();
showModel();
