// bananaweb's only script: a keyboard shortcut, focus after htmx swaps, and status announcements.
// Everything works without it; it only makes things quicker and clearer.

// Ctrl+Enter (Cmd+Enter on a Mac) in a request form submits it, through htmx when it is there.
document.addEventListener("keydown", (event) => {
  if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return;
  const form = event.target.closest && event.target.closest("form.request-form");
  if (!form) return;
  event.preventDefault();
  form.requestSubmit();
});

// A card in flight is replaced when the page's poll brings it back changed (out of band), and a
// replaced element's own live region is not announced reliably; so one region that stays on
// the page says when a card's status changes.
const seenStatus = new Map();

function noteCards(root, announce) {
  const cards = root.matches(".card[data-status]") ? [root] : root.querySelectorAll(".card[data-status]");
  const region = document.getElementById("live-status");
  for (const card of cards) {
    const before = seenStatus.get(card.id);
    seenStatus.set(card.id, card.dataset.status);
    // Only a single card swapped in speaks: a new request, or one whose status moved on.
    if (announce && region && root === card && before !== card.dataset.status) {
      region.textContent = card.dataset.announce;
    }
  }
}

document.addEventListener("DOMContentLoaded", () => noteCards(document.body, false));

// "Edit this image" links land on the edit form: put the cursor in its prompt (after the
// browser has scrolled to the form, which would otherwise take the focus back).
window.addEventListener("load", () => {
  if (location.hash === "#edit-form") document.getElementById("edit-prompt")?.focus();
});

document.addEventListener("htmx:load", (event) => {
  if (event.target instanceof Element && event.target !== document.body) noteCards(event.target, true);
});

// After a request form comes back, focus goes to its first error, or stays in the form
// (the button that sent it was replaced, which would otherwise drop focus to the page).
document.addEventListener("htmx:afterSettle", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.classList.contains("request-form") || !form.isConnected) return;
  const invalid = form.querySelector("[aria-invalid='true']");
  if (invalid) invalid.focus();
  else if (!form.contains(document.activeElement)) form.querySelector("textarea")?.focus();
});
