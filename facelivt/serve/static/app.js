// facelivt serve: the page at /. Plain JavaScript over the /v1 HTTP API (no build step, nothing external).
// Paths are relative, so the page also works behind a proxy that serves the app under a prefix.
"use strict";

const KEY_STORE = "facelivt-api-key";
const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

// One request to the API; resolves to the JSON body or rejects with an ApiError.
async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  const key = $("api-key").value.trim();
  if (key) headers.set("x-api-key", key);
  let response;
  try {
    response = await fetch(path, { ...options, headers });
  } catch (err) {
    throw new ApiError("network", `the server cannot be reached (${err.message})`, 0);
  }
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch (err) {
    body = null;
  }
  if (!response.ok) {
    const error = body && body.error ? body.error : {};
    throw new ApiError(error.code || `http_${response.status}`, error.message || text || response.statusText, response.status);
  }
  return body;
}

function showError(err) {
  const box = $("error");
  box.textContent = err instanceof ApiError ? `${err.message} (${err.code})` : String(err);
  box.hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

function galleryPath(suffix = "") {
  return `v1/galleries/${encodeURIComponent($("gallery").value.trim())}${suffix}`;
}

// Runs an action of a form with its submit button disabled; an API error goes to the error banner.
function onSubmit(form, action) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    form.setAttribute("aria-busy", "true");
    clearError();
    try {
      await action(form);
    } catch (err) {
      showError(err);
    } finally {
      button.disabled = false;
      form.removeAttribute("aria-busy");
    }
  });
}

// A photo with a rectangle over each face, placed in percent of the image so it follows its size. A format
// the server reads but the browser cannot show (TIFF, PGM, ...) gets a note instead of the picture.
async function photoWithBoxes(file, faces, label) {
  const figure = document.createElement("figure");
  figure.className = "photo";
  const caption = document.createElement("figcaption");
  caption.textContent = file.name;
  const img = document.createElement("img");
  img.alt = label;
  img.src = URL.createObjectURL(file);
  try {
    await img.decode();
  } catch (err) {
    URL.revokeObjectURL(img.src);
    caption.textContent += ": this browser cannot show the format";
    caption.dataset.testid = "photo-not-shown";
    figure.append(caption);
    return figure;
  }
  const frame = document.createElement("div");
  frame.className = "frame";
  frame.append(img, ...faces.map((face, i) => faceBox(face, i, img.naturalWidth, img.naturalHeight)));
  figure.append(frame, caption);
  return figure;
}

function faceBox(face, i, width, height) {
  const [x1, y1, x2, y2] = face.box;
  const box = document.createElement("div");
  box.className = "face-box";
  box.dataset.testid = "face-box";
  box.title = `face ${i + 1}, detection score ${face.score.toFixed(3)}`;
  Object.assign(box.style, {
    left: `${(100 * x1) / width}%`,
    top: `${(100 * y1) / height}%`,
    width: `${(100 * (x2 - x1)) / width}%`,
    height: `${(100 * (y2 - y1)) / height}%`,
  });
  return box;
}

function showPhotos(containerId, figures) {
  const container = $(containerId);
  container.querySelectorAll("img").forEach((img) => URL.revokeObjectURL(img.src));
  container.replaceChildren(...figures);
}

const UNRELIABLE = "Unreliable verdict: the threshold is not calibrated for these weights.";

function thresholdText(result) {
  return `threshold ${result.threshold.toFixed(3)} (${result.threshold_source})`;
}

// The threshold line, and a warning under it where the server cannot vouch for the verdict.
function showThreshold(element, result, prefix = "") {
  element.replaceChildren(prefix + thresholdText(result));
  if (!result.reliable) {
    const warning = document.createElement("strong");
    warning.className = "unreliable";
    warning.dataset.testid = "unreliable";
    warning.textContent = UNRELIABLE;
    element.append(document.createElement("br"), warning);
  }
}

async function verify(form) {
  $("verify-result").hidden = true; // no earlier answer left beside a new question
  const image1 = $("verify-image1").files[0];
  const image2 = $("verify-image2").files[0];
  const data = new FormData();
  data.append("image1", image1);
  data.append("image2", image2);
  const result = await api("v1/verify", { method: "POST", body: data });
  showPhotos("verify-photos", [
    await photoWithBoxes(image1, [result.faces[0]], "first photo"),
    await photoWithBoxes(image2, [result.faces[1]], "second photo"),
  ]);
  const verdict = $("verify-verdict");
  verdict.textContent = result.same ? "Same person" : "Different people";
  verdict.dataset.same = String(result.same);
  $("verify-score").textContent = result.score.toFixed(3);
  $("verify-score").dataset.score = String(result.score);
  showThreshold($("verify-threshold"), result);
  $("verify-result").dataset.reliable = String(result.reliable);
  $("verify-result").hidden = false;
}

async function enroll(form) {
  const name = $("enroll-name").value;
  const data = new FormData();
  data.append("name", name);
  for (const file of $("enroll-images").files) data.append("images", file);
  const result = await api(galleryPath("/identities"), { method: "POST", body: data });
  $("enroll-result").textContent =
    `Enrolled ${result.added} photo(s) of ${result.identity} into gallery ${result.gallery} ` +
    `(${result.embeddings} embedding(s) in all).`;
  await refreshIdentities();
}

function matchRow(match) {
  const row = document.createElement("tr");
  row.dataset.testid = "match";
  row.dataset.name = match.name;
  row.dataset.score = String(match.score);
  row.dataset.accepted = String(match.accepted);
  const cells = [match.name, match.score.toFixed(3), match.accepted ? "accepted" : "below threshold"];
  for (const text of cells) {
    const cell = document.createElement("td");
    cell.textContent = text;
    row.append(cell);
  }
  row.classList.toggle("accepted", match.accepted);
  return row;
}

async function identify(form) {
  $("identify-result").hidden = true;
  const image = $("identify-image").files[0];
  const data = new FormData();
  data.append("image", image);
  data.append("k", $("identify-k").value || "5");
  const result = await api(galleryPath("/identify"), { method: "POST", body: data });
  showPhotos("identify-photos", [await photoWithBoxes(image, [result.face], "photo to identify")]);
  $("identify-matches").replaceChildren(...result.matches.map(matchRow));
  showThreshold($("identify-threshold"), result);
  $("identify-caption").textContent = result.matches.length
    ? `Best matches in gallery ${$("gallery").value.trim()}`
    : `Gallery ${$("gallery").value.trim()} holds no identities.`;
  $("identify-result").hidden = false;
}

function identityItem(identity) {
  const item = document.createElement("li");
  item.dataset.testid = "identity";
  item.dataset.name = identity.name;
  const label = document.createElement("span");
  label.textContent = `${identity.name} (${identity.embeddings} embedding(s))`;
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = "Delete";
  button.dataset.testid = "identity-delete";
  button.setAttribute("aria-label", `Delete ${identity.name}`);
  button.addEventListener("click", () => deleteIdentity(identity));
  item.append(label, button);
  return item;
}

async function deleteIdentity(identity) {
  const gallery = $("gallery").value.trim();
  if (!window.confirm(`Delete ${identity.name} and its ${identity.embeddings} embedding(s) from gallery ${gallery}?`)) return;
  clearError();
  try {
    await api(galleryPath(`/identities/${encodeURIComponent(identity.name)}`), { method: "DELETE" });
    await refreshIdentities();
  } catch (err) {
    showError(err);
  }
}

// Lists the gallery's identities; a gallery that does not exist yet lists none (asked first, so no 404).
async function refreshIdentities() {
  const gallery = $("gallery").value.trim();
  const shown = $("identities");
  shown.setAttribute("aria-busy", "true");
  try {
    const list = (await api("v1/galleries")).galleries;
    $("gallery-names").replaceChildren(...list.map((g) => new Option(g.name)));
    let identities = [];
    if (list.some((g) => g.name === gallery)) identities = (await api(galleryPath("/identities"))).identities;
    shown.replaceChildren(...identities.map(identityItem));
    $("identities-note").textContent = identities.length
      ? `${identities.length} identities in gallery ${gallery}.`
      : `Gallery ${gallery} holds no identities yet.`;
  } finally {
    shown.removeAttribute("aria-busy");
  }
}

async function showHealth() {
  const health = $("health");
  try {
    const h = await api("v1/health");
    health.textContent = `${h.status}: model ${h.model.name} (${h.model.backend}), ${h.gallery.kind} galleries`;
  } catch (err) {
    health.textContent = `server not ready: ${err.message}`;
  }
}

function start() {
  const key = $("api-key");
  key.value = sessionStorage.getItem(KEY_STORE) || "";
  const refresh = () => {
    clearError();
    refreshIdentities().catch(showError);
  };
  key.addEventListener("change", () => {
    sessionStorage.setItem(KEY_STORE, key.value.trim());
    refresh();
  });
  onSubmit($("verify-form"), verify);
  onSubmit($("enroll-form"), enroll);
  onSubmit($("identify-form"), identify);
  $("gallery").addEventListener("change", refresh);
  $("identities-refresh").addEventListener("click", refresh);
  showHealth();
  refreshIdentities().catch(showError);
}

document.addEventListener("DOMContentLoaded", start);
