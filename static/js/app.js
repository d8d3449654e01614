// Ctrl+Enter (Cmd+Enter on a Mac) in a request form submits it, through htmx when it is there.
document.addEventListener("keydown", (event) => {
  if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return;
  const form = event.target.closest && event.target.closest("form.request-form");
  if (!form) return;
  event.preventDefault();
  form.requestSubmit();
});
