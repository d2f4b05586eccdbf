// Audeo's page: upload or run the example, poll the job's stages, then a player with a piano roll and an
// 88-key strip that follow playback. Plain browser JavaScript, served as it is (no build step, no CDN).
"use strict";

const DEFAULTS = {
  pollMs: 500,            // how often a running job's progress is asked for
  rollAheadS: 3,          // seconds of coming notes the roll shows above the keys
  lowMidi: 21,            // A0, the keyboard's first key
  keys: 88,
  blackWidth: 0.6,        // a black key's width, in white-key widths
  h264: 'video/mp4; codecs="avc1.42E01E, mp4a.40.2"',
};
const WHITE_CLASSES = [0, 2, 4, 5, 7, 9, 11];
const STAGE_NAMES = {
  detect: "finding the keyboard", video2roll: "reading the keys (Video2Roll)", synthesis: "synthesising the notes",
  mux: "putting the sound on the video", overlay: "drawing the pressed keys on the video",
  sheet: "writing the score", done: "done",
};
const COLOURS = { background: "#15171c", grid: "#2a2e37", now: "#e8e8e8", pred: "#f28e2b", ref: "#4e9bd6" };

const $ = (id) => document.getElementById(id);
const state = { config: null, job: null, notes: [], reference: null, shownTime: null };

// ---------------------------------------------------------------------------- messages and requests

function say(text, kind = "error") {
  const box = $("message");
  box.textContent = text;
  box.className = kind;
  box.hidden = !text;
}

async function request(url, options) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = typeof body.detail === "string" ? body.detail : "";
    throw new Error(body.error || detail || `${url}: HTTP ${response.status}`);
  }
  return body;
}

// ---------------------------------------------------------------------------- keyboard geometry

function isWhite(key) { return WHITE_CLASSES.includes((DEFAULTS.lowMidi + key) % 12); }

// [left, width] of every key as fractions of the keyboard's width (the roll's columns use the same)
function keyGeometry() {
  const whites = Array.from({ length: DEFAULTS.keys }, (_, k) => k).filter(isWhite).length;
  const unit = 1 / whites;
  let seen = 0;
  return Array.from({ length: DEFAULTS.keys }, (_, k) => {
    if (isWhite(k)) return [unit * seen++, unit];
    const w = unit * DEFAULTS.blackWidth;
    return [unit * seen - w / 2, w];
  });
}
const GEOMETRY = keyGeometry();

function buildKeys() {
  const strip = $("keys");
  strip.replaceChildren();
  GEOMETRY.forEach(([left, width], k) => {
    const key = document.createElement("div");
    key.className = isWhite(k) ? "key white" : "key black";
    key.dataset.key = k;
    key.dataset.midi = DEFAULTS.lowMidi + k;
    key.style.left = `${left * 100}%`;
    key.style.width = `${width * 100}%`;
    strip.appendChild(key);
  });
}

// ---------------------------------------------------------------------------- roll and keys at a time

function sounding(notes, t) {
  const keys = new Set();
  for (const [pitch, start, end] of notes || []) if (start <= t && t < end) keys.add(pitch - DEFAULTS.lowMidi);
  return keys;
}

function showKeys(t) {
  const pred = sounding(state.notes, t), ref = sounding(state.reference, t);
  for (const key of $("keys").children) {
    const k = Number(key.dataset.key);
    key.classList.toggle("pred", pred.has(k));
    key.classList.toggle("ref", ref.has(k));
  }
  $("keys").dataset.time = t.toFixed(3);
}

function drawNotes(ctx, notes, t, fill) {
  const { width: W, height: H } = ctx.canvas, scale = H / DEFAULTS.rollAheadS;
  for (const [pitch, start, end] of notes || []) {
    if (end < t || start > t + DEFAULTS.rollAheadS) continue;
    const [left, width] = GEOMETRY[pitch - DEFAULTS.lowMidi] || [0, 0];
    const top = H - (end - t) * scale, bottom = H - (start - t) * scale;
    const x = left * W + 1, w = Math.max(width * W - 2, 1), h = Math.max(bottom - top, 2);
    if (fill) { ctx.fillRect(x, top, w, h); } else { ctx.strokeRect(x + 0.5, top + 0.5, w - 1, h - 1); }
  }
}

function drawRoll(t) {
  const canvas = $("roll"), ctx = canvas.getContext("2d"), { width: W, height: H } = canvas;
  ctx.fillStyle = COLOURS.background;
  ctx.fillRect(0, 0, W, H);
  ctx.strokeStyle = COLOURS.grid;
  ctx.lineWidth = 1;
  for (let s = Math.ceil(t); s <= t + DEFAULTS.rollAheadS; s++) {      // a line every second, moving down
    const y = Math.round(H - (s - t) * H / DEFAULTS.rollAheadS) + 0.5;
    ctx.beginPath(); ctx.moveTo(0, y); ctx.lineTo(W, y); ctx.stroke();
  }
  GEOMETRY.forEach(([left], k) => {                                     // the octaves: a line at every C
    if ((DEFAULTS.lowMidi + k) % 12 !== 0) return;
    ctx.beginPath(); ctx.moveTo(Math.round(left * W) + 0.5, 0); ctx.lineTo(Math.round(left * W) + 0.5, H); ctx.stroke();
  });
  ctx.fillStyle = COLOURS.pred;
  drawNotes(ctx, state.notes, t, true);
  ctx.strokeStyle = COLOURS.ref;
  ctx.lineWidth = 2;
  drawNotes(ctx, state.reference, t, false);
  ctx.fillStyle = COLOURS.now;
  ctx.fillRect(0, H - 2, W, 2);
}

function show(t) {
  if (t === state.shownTime) return;
  state.shownTime = t;
  drawRoll(t);
  showKeys(t);
}

function follow() {
  const player = $("player");
  if (!$("result").hidden) show(player.currentTime);
  requestAnimationFrame(follow);
}

// ---------------------------------------------------------------------------- progress

function buildStages(stages) {
  $("stages").replaceChildren(...stages.map((stage) => {
    const row = document.createElement("div");
    row.className = "stage";
    row.dataset.stage = stage;
    row.innerHTML = `<span class="name"></span><span class="bar"><span class="fill"></span></span><span class="count"></span>`;
    row.querySelector(".name").textContent = STAGE_NAMES[stage] || stage;
    return row;
  }));
}

function showProgress(job) {
  const stages = state.config.stages, reported = stages.filter((s) => job.stages[s]);
  const latest = reported.length ? stages.indexOf(reported[reported.length - 1]) : -1;
  $("job-title").textContent = `Working on ${job.name}`;
  stages.forEach((stage, i) => {
    const [done, total] = job.stages[stage] || [0, 0];
    const finished = job.state === "done" || i < latest || (total > 0 && done >= total);
    const fraction = finished ? 1 : total > 0 ? done / total : 0;
    const row = $("stages").querySelector(`[data-stage="${stage}"]`);
    row.querySelector(".fill").style.width = `${(fraction * 100).toFixed(1)}%`;
    row.querySelector(".count").textContent = total > 0 ? `${done} / ${total}` : finished ? "✓" : "";
    row.classList.toggle("active", i === latest && !finished);
  });
  $("progress").hidden = false;
}

async function poll(id) {
  let job;
  try {
    job = await request(`/api/jobs/${id}`);
  } catch (e) {
    say(e.message);
    return setTimeout(() => poll(id), DEFAULTS.pollMs * 4);
  }
  showProgress(job);
  if (job.state === "running") return setTimeout(() => poll(id), DEFAULTS.pollMs);
  if (job.state === "failed") {
    $("progress").hidden = true;
    return say(job.error);
  }
  await showResult(job);
}

async function started(response) {
  try {
    const job = await response;
    say("");
    $("result").hidden = true;
    document.body.dataset.ready = "";
    state.job = job.id;
    showProgress(job);
    poll(job.id);
  } catch (e) {
    say(e.message);
  }
}

// ---------------------------------------------------------------------------- results

function showMetrics(metrics) {
  const box = $("metrics");
  box.replaceChildren();
  if (!metrics) return;
  const rows = [["note onset F1", metrics.note_onset_f1], ["frame F1", metrics.frame_pooled_f1],
                ["onset+offset F1", metrics.note_onset_offset_f1]];
  box.innerHTML = "<h3>Against the reference</h3>";
  const list = document.createElement("dl");
  for (const [name, value] of rows) {
    if (typeof value !== "number") continue;
    list.insertAdjacentHTML("beforeend", `<dt>${name}</dt><dd>${value.toFixed(3)}</dd>`);
  }
  box.appendChild(list);
}

function showDownloads(files) {
  $("downloads").replaceChildren(...files.map((f) => {
    const item = document.createElement("li"), link = document.createElement("a");
    link.href = f.url;
    link.download = f.name;
    link.textContent = f.name;
    item.append(link, ` ${(f.bytes / 1024).toFixed(f.bytes < 10240 ? 1 : 0)} kB`);
    return item;
  }));
}

async function showResult(job) {
  const notes = await request(job.notes);
  state.notes = notes.notes;
  state.reference = notes.reference;
  state.shownTime = null;
  say("");                                        // a refusal met while this job ran is over now
  $("progress").hidden = true;
  $("result-title").textContent = job.name;
  document.body.classList.toggle("has-reference", Boolean(notes.reference));
  showMetrics(job.metrics);
  showDownloads(job.files);
  const player = $("player");
  if (!player.canPlayType(DEFAULTS.h264)) say("this browser cannot play H.264/AAC video: download the mp4 below", "info");
  player.addEventListener("loadedmetadata", () => { document.body.dataset.ready = "1"; }, { once: true });
  player.src = job.player;
  $("result").hidden = false;
  document.body.dataset.job = job.id;
}

// ---------------------------------------------------------------------------- start

function upload(event) {
  event.preventDefault();
  const video = $("video").files[0], reference = $("reference").files[0];
  if (!video) return say("choose a video file to upload");
  const bytes = video.size + (reference ? reference.size : 0), limit = state.config.max_upload_bytes;
  if (bytes > limit) {
    return say(`${video.name}: over the upload limit of ${(limit / 1048576).toFixed(0)} MB (video and MIDI together)`);
  }
  started(request("/api/jobs", { method: "POST", body: new FormData($("upload")) }));
}

async function init() {
  state.config = await request("/api/config");
  buildStages(state.config.stages);
  buildKeys();
  $("limit").textContent = `Videos (${state.config.video_suffixes.join(" ")}) up to ` +
    `${(state.config.max_upload_bytes / 1048576).toFixed(0)} MB; one job at a time.`;
  $("demo").hidden = !state.config.demo;
  $("upload").addEventListener("submit", upload);
  $("demo").addEventListener("click", () => started(request("/api/demo", { method: "POST" })));
  for (const event of ["seeked", "timeupdate"]) $("player").addEventListener(event, () => show($("player").currentTime));
  requestAnimationFrame(follow);
  const current = await request("/api/jobs/current");
  if (current && current.state !== "failed") {
    state.job = current.id;
    current.state === "running" ? poll(current.id) : showResult(current);
  }
}

init().catch((e) => say(e.message));
