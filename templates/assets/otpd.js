// Progressive enhancement only: the pages work without this file. Adds a "Show" button to each
// password field so people can check what they typed (NIST SP 800-63B-4 asks for this option).
(function () {
  "use strict";
  document.querySelectorAll(".secret input[type=password]").forEach(function (input) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "toggle";
    button.textContent = "Show";
    button.setAttribute("aria-pressed", "false");
    button.setAttribute("aria-controls", input.id);
    button.setAttribute("aria-label", "Show password");
    button.addEventListener("click", function () {
      var shown = input.type === "text";
      input.type = shown ? "password" : "text";
      button.textContent = shown ? "Show" : "Hide";
      button.setAttribute("aria-pressed", shown ? "false" : "true");
      button.setAttribute("aria-label", shown ? "Show password" : "Hide password");
      input.focus();
    });
    input.parentNode.classList.add("has-toggle");
    input.parentNode.appendChild(button);
  });
  // Send each form once: a double click must not post the link twice.
  document.querySelectorAll("form").forEach(function (form) {
    form.addEventListener("submit", function () {
      form.querySelectorAll("button[type=submit]").forEach(function (b) {
        window.setTimeout(function () { b.disabled = true; }, 0);
      });
    });
  });
})();
