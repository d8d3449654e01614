// The composer's pictures: files chosen with the picker, dropped onto a request form or
// pasted into it gather in the form's file input (a DataTransfer), each shown as a thumbnail
// with a remove button before sending. Without this script the plain file picker works.
// Events are listened to on the document, so a form htmx swaps back in needs no new listeners.

const held = new WeakMap(); // file input -> the Files it holds (the picker replaces its list)
const shown = new WeakMap(); // file input -> the object URLs of its previews
let pasted = 0;

const zoneOf = (element) => element?.closest?.("form.request-form")?.querySelector("[data-pictures]");
const inputOf = (zone) => zone.querySelector("input[type=file]");
const isImage = (file) => file.type.startsWith("image/");

function say(zone, text) {
  const status = zone.querySelector("[data-pictures-status]");
  const count = zone.querySelectorAll(".preview").length;
  if (status) status.textContent = `${text} ${count} ${count === 1 ? "image" : "images"} to send.`;
}

function forget(input) {
  for (const url of shown.get(input) || []) URL.revokeObjectURL(url);
  shown.set(input, []);
}

function previewOf(file, index, url) {
  const item = document.createElement("li");
  item.className = "preview";
  item.dataset.file = String(index);
  const image = document.createElement("img");
  image.className = "preview__image";
  image.src = url;
  image.alt = "";
  const name = document.createElement("span");
  name.className = "preview__name";
  name.textContent = file.name;
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "preview__remove link-button";
  const which = document.createElement("span");
  which.className = "visually-hidden";
  which.textContent = ` ${file.name}`;
  remove.append("Remove", which);
  item.append(image, name, remove);
  return item;
}

// The input holds `files`; the previews show them (before our own images chosen as references:
// the pictures are sent first).
function hold(zone, files) {
  const input = inputOf(zone);
  const transfer = new DataTransfer();
  for (const file of files) transfer.items.add(file);
  input.files = transfer.files;
  held.set(input, [...files]);

  const list = zone.querySelector(".previews");
  forget(input);
  for (const item of list.querySelectorAll("li[data-file]")) item.remove();
  const urls = files.map((file) => URL.createObjectURL(file));
  shown.set(input, urls);
  list.prepend(...files.map((file, index) => previewOf(file, index, urls[index])));
  list.hidden = list.children.length === 0;
}

function add(zone, files) {
  const input = inputOf(zone);
  const images = [...files].filter(isImage);
  if (input.disabled || images.length === 0) return false;
  zone.closest("details")?.setAttribute("open", "");
  hold(zone, [...(held.get(input) || []), ...images]);
  say(zone, `${images.map((file) => file.name).join(", ")} added.`);
  return true;
}

// The picker replaces its list with each choice: keep the earlier pictures too.
document.addEventListener("change", (event) => {
  const input = event.target;
  if (!(input instanceof HTMLInputElement) || input.type !== "file") return;
  const zone = input.closest("[data-pictures]");
  if (!zone) return;
  const chosen = [...input.files];
  hold(zone, [...(held.get(input) || []), ...chosen]);
  if (chosen.length) say(zone, `${chosen.map((file) => file.name).join(", ")} added.`);
});

document.addEventListener("click", (event) => {
  const button = event.target.closest?.(".preview__remove");
  const zone = button?.closest("[data-pictures]");
  if (!zone) return;
  const item = button.closest(".preview");
  const name = item.querySelector(".preview__name").textContent;
  const before = [...zone.querySelectorAll(".preview__remove")].indexOf(button);
  if (item.dataset.file !== undefined) {
    const input = inputOf(zone);
    hold(zone, (held.get(input) || []).filter((_, index) => index !== Number(item.dataset.file)));
  } else {
    item.remove(); // one of our own images: its hidden input goes with it
  }
  const list = zone.querySelector(".previews");
  list.hidden = list.children.length === 0;
  // Focus stays in the list (the next remove button), or goes back to the picker.
  const buttons = zone.querySelectorAll(".preview__remove");
  (buttons[Math.min(before, buttons.length - 1)] || inputOf(zone)).focus();
  say(zone, `${name} removed.`);
});

// Drop anywhere on a request form.
document.addEventListener("dragover", (event) => {
  const zone = zoneOf(event.target);
  if (!zone || inputOf(zone).disabled || !event.dataTransfer.types.includes("Files")) return;
  event.preventDefault();
  event.dataTransfer.dropEffect = "copy";
  zone.classList.add("pictures--dragging");
});

document.addEventListener("dragleave", (event) => {
  const form = event.target.closest?.("form.request-form");
  if (form && !form.contains(event.relatedTarget)) {
    form.querySelector("[data-pictures]")?.classList.remove("pictures--dragging");
  }
});

document.addEventListener("drop", (event) => {
  const zone = zoneOf(event.target);
  if (!zone || !event.dataTransfer.types.includes("Files")) return;
  event.preventDefault();
  zone.classList.remove("pictures--dragging");
  add(zone, event.dataTransfer.files);
});

// Paste a picture (a screenshot, an image copied in another app) while in a request form;
// pasted text goes where it always goes.
document.addEventListener("paste", (event) => {
  const zone = zoneOf(event.target);
  const files = [...(event.clipboardData?.files || [])].filter(isImage);
  if (!zone || files.length === 0) return;
  // Clipboard pictures are all called "image.png": give each a name of its own.
  const named = files.map((file) => {
    pasted += 1;
    const extension = file.type.split("/")[1] || "png";
    return new File([file], `pasted-picture-${pasted}.${extension}`, { type: file.type });
  });
  if (add(zone, named)) event.preventDefault();
});

// What needs the script (the remove buttons of our own images, the drop hint) shows once it
// runs, also in a form htmx swaps back in; a form that goes away frees its previews.
function enhance(root) {
  for (const element of root.querySelectorAll("[data-js-only][hidden]")) element.hidden = false;
}

document.addEventListener("DOMContentLoaded", () => enhance(document));
document.addEventListener("htmx:load", (event) => enhance(event.target));
document.addEventListener("htmx:beforeSwap", (event) => {
  for (const input of event.detail.target?.querySelectorAll?.("[data-pictures] input[type=file]") || []) forget(input);
});

// "Use as reference" and "Use as template" links land on the Generate form: the cursor goes
// to its prompt (app.js does the same for the Edit form).
window.addEventListener("load", () => {
  if (location.hash === "#generate-form") document.getElementById("generate-prompt")?.focus();
});
