// The history's helpers: the tab's title counts the requests in flight ("(2) Images"); an
// opt-in notification says when one finishes while the tab is in the background; a card in
// flight counts its seconds; the search form follows the address bar (the back button,
// "Clear"); a search's count is announced. Everything works without it. In a block of its own: the page's other
// scripts share the global scope.
(() => {
  const IN_FLIGHT = new Set(["queued", "submitting", "in_progress"]);
  const NOTIFY_KEY = "bananaweb:notify";
  const baseTitle = document.title.replace(/^\(\d+\) /, "");
  const lastStatus = new Map(); // card id -> the status it last showed

  const cardsIn = (root) =>
    root.matches?.(".card[data-status]") ? [root] : [...(root.querySelectorAll?.(".card[data-status]") || [])];

  // --- The tab's title ---------------------------------------------------------------

  function countInFlight() {
    const inFlight = cardsIn(document.body).filter((card) => IN_FLIGHT.has(card.dataset.status)).length;
    document.title = inFlight ? `(${inFlight}) ${baseTitle}` : baseTitle;
  }

  // --- Notifications, when asked for -------------------------------------------------

  const canNotify = () => "Notification" in window;

  function wanted() {
    try {
      return localStorage.getItem(NOTIFY_KEY) === "1";
    } catch {
      return false;
    }
  }

  function want(yes) {
    try {
      localStorage.setItem(NOTIFY_KEY, yes ? "1" : "0");
    } catch {
      // Storage refused (a private window): notifications stay off.
    }
  }

  const notifying = () => canNotify() && Notification.permission === "granted" && wanted();

  function showButton() {
    const button = document.getElementById("notify-button");
    if (!button || !canNotify()) return;
    button.setAttribute("aria-pressed", String(notifying()));
    // Once refused, only the browser's own settings can ask again.
    button.hidden = Notification.permission === "denied";
  }

  document.addEventListener("click", async (event) => {
    if (!event.target.closest?.("#notify-button")) return;
    if (notifying()) {
      want(false);
    } else {
      const permission =
        Notification.permission === "granted" ? "granted" : await Notification.requestPermission();
      want(permission === "granted");
    }
    showButton();
  });

  function noteFinished(root) {
    for (const card of cardsIn(root)) {
      const before = lastStatus.get(card.id);
      const now = card.dataset.status;
      lastStatus.set(card.id, now);
      if (!before || !IN_FLIGHT.has(before) || IN_FLIGHT.has(now)) continue;
      if (document.visibilityState !== "hidden" || !notifying()) continue;
      const title = now === "completed" ? "Your image is ready" : "A request ended without an image";
      const notification = new Notification(title, { body: card.dataset.announce || "", tag: card.id });
      notification.addEventListener("click", () => {
        window.focus();
        document.getElementById(card.id)?.scrollIntoView({ block: "center" });
        notification.close();
      });
    }
  }

  // --- How long a card in flight has taken ----------------------------------------------
  // The page's poll brings a card back only when its status changes, so its "12 s so far"
  // counts on here, from the seconds the server rendered (no clock of ours to trust).

  const rendered = new WeakMap(); // .card__time -> [seconds as rendered, when first seen]

  function duration(total) {
    // As the server's `duration` filter: "4 s", "2 min 05 s", "1 h 03 min".
    const seconds = Math.max(Math.floor(total), 0);
    if (seconds < 60) return `${seconds} s`;
    const minutes = Math.floor(seconds / 60);
    const pad = (n) => String(n).padStart(2, "0");
    if (minutes < 60) return `${minutes} min ${pad(seconds % 60)} s`;
    return `${Math.floor(minutes / 60)} h ${pad(minutes % 60)} min`;
  }

  function tick() {
    for (const time of document.querySelectorAll(".card__time[data-elapsed]")) {
      if (!rendered.has(time)) rendered.set(time, [Number(time.dataset.elapsed) || 0, performance.now()]);
      const [seconds, seen] = rendered.get(time);
      time.textContent = `${duration(seconds + (performance.now() - seen) / 1000)} so far`;
    }
  }

  setInterval(tick, 1000);

  // --- The search form follows the address bar -----------------------------------------

  function followAddress() {
    const form = document.getElementById("history-filters");
    if (!form) return;
    const params = new URLSearchParams(location.search);
    for (const field of form.elements) {
      if (!field.name) continue;
      const value = params.get(field.name) || "";
      if (field.type === "radio") {
        const group = form.elements[field.name];
        field.checked = value ? field.value === value : field === group[0];
      } else if (field.type === "checkbox") {
        field.checked = field.value === value;
      } else if (field.tagName === "SELECT") {
        field.value = [...field.options].some((option) => option.value === value) ? value : "";
      } else if (field.type !== "submit") {
        field.value = value;
      }
    }
  }

  function announce(history) {
    const region = document.getElementById("live-status");
    if (region && history.dataset.summary) region.textContent = `${history.dataset.summary}.`;
  }

  // --- Wiring ----------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    noteFinished(document.body);
    countInFlight();
    showButton();
  });

  document.addEventListener("htmx:load", (event) => {
    if (event.target instanceof Element && event.target !== document.body) noteFinished(event.target);
    countInFlight();
  });

  document.addEventListener("htmx:afterSettle", (event) => {
    countInFlight();
    if (!(event.target instanceof Element) || event.target.id !== "history") return;
    const from = event.detail?.requestConfig?.elt || event.detail?.elt;
    // While someone types, the form is ahead of the address bar: leave it be.
    if (!from?.closest?.("#history-filters")) followAddress();
    announce(event.target);
  });

  // The back button brings an earlier history back (hx-history-elt): its form and count too.
  document.addEventListener("htmx:historyRestore", () => {
    followAddress();
    noteFinished(document.body);
    countInFlight();
    showButton();
  });
})();
