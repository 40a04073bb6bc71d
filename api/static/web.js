"use strict";
// The page's behaviour: the API key, the drawing pad, uploads and jobs, the status strip.
// API paths are relative, so the page works wherever the API is mounted.

const $ = (id) => document.getElementById(id);
const KEY_STORAGE = "inferq.apiKey";
const STATUS_EVERY_MS = 2000;
const JOB_POLL_EVERY_MS = 400;
// The server refuses a request over its limits (by default 1024 images, 16 MiB), so a big folder
// goes as several jobs, each well inside them.
const JOB_MAX_FILES = 256;
const JOB_MAX_BYTES = 4 * 1024 * 1024;
const IMAGE_NAME = /\.(png|jpe?g|gif|bmp|webp)$/i;

class ApiError extends Error {
  constructor(message, status, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// --- The API key -----------------------------------------------------------------------------

// Every call refused while the form is up waits for the same answer.
let keyAsked = null;

function askForKey(message) {
  if (!keyAsked) {
    keyAsked = new Promise((resolve) => {
      const form = $("key-form");
      $("key-message").textContent = message;
      form.hidden = false;
      $("api-key").focus();
      form.onsubmit = (event) => {
        event.preventDefault();
        localStorage.setItem(KEY_STORAGE, $("api-key").value.trim());
        form.hidden = true;
        keyAsked = null;
        resolve();
      };
    });
  }
  return keyAsked;
}

// The JSON body of a call to the API; a refused key is asked for and the call made again.
async function api(path, options = {}) {
  for (;;) {
    const key = localStorage.getItem(KEY_STORAGE);
    let response;
    try {
      response = await fetch(path, { ...options, headers: key ? { Authorization: `Bearer ${key}` } : {} });
    } catch {
      throw new ApiError("The API does not answer: is it running?", 0, null);
    }
    if (response.status === 401) {
      await askForKey(key ? "That key was refused. Enter the right one." : "This server needs an API key.");
      continue;
    }
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      throw new ApiError(body?.error ?? `The API answered ${response.status} ${response.statusText}`,
                         response.status, body);
    }
    return body;
  }
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

// While work runs its controls are disabled, so it runs once at a time; a failure is shown, never swallowed.
async function guarded(controls, work) {
  showError("");
  controls.forEach((control) => { control.disabled = true; });
  try {
    await work();
  } catch (error) {
    showError(error.message);
  } finally {
    controls.forEach((control) => { control.disabled = false; });
  }
}

// --- The answer: the digit and a bar per class -----------------------------------------------

const percent = (p) => `${(p * 100).toFixed(1)}%`;

function showAnswer(result, source) {
  const label = result.labels[0];
  const probabilities = result.probabilities;
  $("label").textContent = label;
  $("answer-source").textContent = `${source} · model version ${result.model_version}`
    + (probabilities ? "" : " · this model gives no probabilities");
  document.querySelectorAll("#bars li").forEach((row, digit) => {
    const p = probabilities ? probabilities[digit] : 0;
    row.classList.toggle("chosen", digit === label);
    row.querySelector(".fill").style.width = `${(p * 100).toFixed(1)}%`;
    row.querySelector(".pct").textContent = probabilities ? percent(p) : "–";
  });
}

// --- Drawing ---------------------------------------------------------------------------------

const pad = $("pad");
const ink = pad.getContext("2d");
let drawn = false;
let last = null;

// White on an opaque black ground, as MNIST: the API reads such a PNG as it is.
function clearPad() {
  ink.fillStyle = "#000";
  ink.fillRect(0, 0, pad.width, pad.height);
  ink.strokeStyle = "#fff";
  ink.fillStyle = "#fff";
  // About an MNIST stroke once the API scales the digit's box to 20 of 28 pixels.
  ink.lineWidth = 18;
  ink.lineCap = "round";
  ink.lineJoin = "round";
  drawn = false;
}

// The canvas is drawn at 280x280 but shown at whatever size the layout gives it.
function padPoint(event) {
  const box = pad.getBoundingClientRect();
  return {
    x: (event.clientX - box.left) * pad.width / box.width,
    y: (event.clientY - box.top) * pad.height / box.height,
  };
}

pad.addEventListener("pointerdown", (event) => {
  pad.setPointerCapture(event.pointerId);
  last = padPoint(event);
  ink.beginPath();
  ink.arc(last.x, last.y, ink.lineWidth / 2, 0, 2 * Math.PI);
  ink.fill();
  drawn = true;
});

pad.addEventListener("pointermove", (event) => {
  if (!last) return;
  const point = padPoint(event);
  ink.beginPath();
  ink.moveTo(last.x, last.y);
  ink.lineTo(point.x, point.y);
  ink.stroke();
  last = point;
});

for (const type of ["pointerup", "pointercancel"]) pad.addEventListener(type, () => { last = null; });

$("clear").addEventListener("click", clearPad);

$("recognise").addEventListener("click", () => guarded([$("recognise")], async () => {
  if (!drawn) throw new Error("Draw a digit on the pad first.");
  const blob = await new Promise((resolve) => pad.toBlob(resolve, "image/png"));
  await recognise([{ file: blob, name: "drawing.png" }], "Your drawing");
}));

// --- Files and jobs --------------------------------------------------------------------------

// ``items`` are {file, name}: a name is the file's path within a dropped or chosen folder.
async function submitFiles(items) {
  // Folders come in no particular order; results read best sorted, 2.png before 10.png.
  const images = items.filter(({ file, name }) => file.type.startsWith("image/") || IMAGE_NAME.test(name))
    .sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }));
  const skipped = items.length - images.length;
  if (!images.length) throw new Error(`No image among the ${items.length} file(s): send PNG, JPEG, GIF, BMP or WebP.`);
  if (images.length === 1) {
    await recognise(images, images[0].name);
  } else {
    await runJobs(images);
  }
  if (skipped) showError(`${skipped} file(s) that are not images were left out.`);
}

function form(items) {
  const body = new FormData();
  for (const { file, name } of items) body.append("image", file, name);
  return body;
}

async function recognise(items, source) {
  let result;
  try {
    result = await api("recognize", { method: "POST", body: form(items) });
  } catch (error) {
    // The answer took longer than the server waits; the job goes on and can be followed.
    if (error.status !== 504 || !error.body?.job_id) throw error;
    const [job] = await followJobs([{ items, location: `jobs/${error.body.job_id}` }]);
    if (job.error) throw new ApiError(`Recognition failed: ${job.error}`, 500, null);
    result = job.results[0];
  }
  showAnswer(result, source);
}

function chunks(items) {
  const out = [];
  let current = [];
  let bytes = 0;
  for (const item of items) {
    if (current.length && (current.length === JOB_MAX_FILES || bytes + item.file.size > JOB_MAX_BYTES)) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(item);
    bytes += item.file.size;
  }
  out.push(current);
  return out;
}

async function runJobs(items) {
  const table = $("results");
  table.querySelectorAll("tbody").forEach((body) => body.remove());
  table.hidden = true;
  const parts = chunks(items);
  const jobs = [];
  for (const [index, part] of parts.entries()) {
    showProgress(`Sending job ${index + 1} of ${parts.length}…`, 0, items.length);
    const created = await api("jobs", { method: "POST", body: form(part) });
    jobs.push({ items: part, location: created.location });
  }
  const finished = await followJobs(jobs);
  for (const job of finished) table.append(resultRows(job));
  table.hidden = false;
  const failed = finished.filter((job) => job.error);
  if (failed.length) throw new Error(`${failed.length} of ${finished.length} job(s) failed: ${failed[0].error}`);
}

// The statuses a job ends in (inferq/jobs.py's FINAL).
const FINAL = ["done", "failed", "expired", "cancelled"];

// Polls every job until each has ended; each gets ``results`` or ``error``.
async function followJobs(jobs) {
  const total = jobs.reduce((sum, job) => sum + job.items.length, 0);
  const pending = new Set(jobs);
  while (pending.size) {
    for (const job of [...pending]) {
      const state = await api(job.location);
      job.status = state.status;
      if (FINAL.includes(state.status)) {
        job.results = state.result?.results ?? [];
        job.error = state.error;
        pending.delete(job);
      }
    }
    const done = jobs.filter((job) => !pending.has(job)).reduce((sum, job) => sum + job.items.length, 0);
    const label = jobs.length === 1
      ? `Job ${jobs[0].status}: ${total} images`
      : `${jobs.length - pending.size} of ${jobs.length} jobs finished: ${done} of ${total} images`;
    showProgress(label, done, total);
    if (pending.size) await delay(JOB_POLL_EVERY_MS);
  }
  return jobs;
}

function showProgress(label, done, total) {
  $("job").hidden = false;
  $("job-status").textContent = label;
  $("job-progress").max = total;
  $("job-progress").value = done;
}

function resultRows(job) {
  const body = document.createElement("tbody");
  job.items.forEach(({ name }, index) => {
    const result = job.results[index];
    const row = body.insertRow();
    row.insertCell().textContent = name;
    if (!result) {
      const cell = row.insertCell();
      cell.colSpan = 2;
      cell.className = "failed";
      cell.textContent = job.error ?? "no answer";
      return;
    }
    const label = result.labels[0];
    row.insertCell().textContent = label;
    row.insertCell().textContent = result.probabilities ? percent(result.probabilities[label]) : "–";
  });
  return body;
}

const picked = (input) => [...input.files].map((file) => ({ file, name: file.webkitRelativePath || file.name }));

const pickers = [$("files"), $("folder")];

for (const input of pickers) {
  input.addEventListener("change", () => guarded(pickers, async () => {
    const items = picked(input);
    // Cleared so that picking the same files again is a change too.
    input.value = "";
    if (items.length) await submitFiles(items);
  }));
}

// A dropped folder is walked for its files, named by their path within it.
async function walk(entry, found) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    found.push({ file, name: entry.fullPath.replace(/^\//, "") });
    return;
  }
  const reader = entry.createReader();
  for (;;) {
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) return;
    for (const child of batch) await walk(child, found);
  }
}

const drop = $("drop");
drop.addEventListener("dragover", (event) => {
  event.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  // The entries must be taken now: the drop's data is gone once this handler returns.
  const entries = [...event.dataTransfer.items].map((item) => item.webkitGetAsEntry?.()).filter(Boolean);
  const files = [...event.dataTransfer.files];
  if (pickers[0].disabled) {
    showError("Wait for the images being sent to be answered.");
    return;
  }
  guarded(pickers, async () => {
    let items;
    if (entries.length) {
      items = [];
      for (const entry of entries) await walk(entry, items);
    } else {
      items = files.map((file) => ({ file, name: file.name }));
    }
    if (items.length) await submitFiles(items);
  });
});
// A file dropped beside the zone would otherwise replace the page.
for (const type of ["dragover", "drop"]) window.addEventListener(type, (event) => event.preventDefault());

// --- The status strip ------------------------------------------------------------------------

function showStatus(status) {
  $("status-error").hidden = true;
  const ready = $("status-ready");
  ready.textContent = status.ready ? "ready" : "not ready";
  ready.className = status.ready ? "ok" : "down";
  $("status-workers").textContent = status.workers;
  $("status-model").textContent = status.model_versions.join(", ") || "none";
  $("status-queued").textContent = status.queued_images.toLocaleString();
  showBatches(status.recent_batch_sizes);
}

function showBatches(byWorker) {
  const cell = $("status-batches");
  const all = Object.values(byWorker).flat();
  if (!all.length) {
    cell.textContent = "none yet";
    return;
  }
  const highest = Math.max(...all);
  const working = Object.entries(byWorker).filter(([, sizes]) => sizes.length);
  cell.replaceChildren(...working.map(([worker, sizes]) => {
    const spark = document.createElement("span");
    spark.className = "spark";
    spark.setAttribute("role", "img");
    spark.setAttribute("aria-label", `${worker}: ${sizes.join(", ")} images`);
    spark.title = spark.getAttribute("aria-label");
    for (const size of sizes) {
      const bar = document.createElement("span");
      bar.style.height = `${Math.max(8, (size / highest) * 100)}%`;
      spark.append(bar);
    }
    return spark;
  }));
  const most = document.createElement("span");
  most.className = "most";
  most.textContent = `largest ${highest}`;
  cell.append(most);
}

async function pollStatus() {
  try {
    showStatus(await api("status"));
  } catch (error) {
    $("status-ready").textContent = "unknown";
    $("status-ready").className = "down";
    $("status-error").textContent = error.message;
    $("status-error").hidden = false;
  }
  setTimeout(pollStatus, STATUS_EVERY_MS);
}

clearPad();
pollStatus();
