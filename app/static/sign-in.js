// Says why the last sign-in failed (the server redirects back with ?failed=credentials|scope).
"use strict";

window.addEventListener("DOMContentLoaded", () => {
  const reasons = {
    credentials: "Unknown client or wrong secret.",
    scope: "This client lacks the `read` scope; use a dashboard client.",
  };
  const failed = new URLSearchParams(window.location.search).get("failed");
  const box = document.getElementById("failure");
  if (failed) {
    box.textContent = reasons[failed] || "Sign-in failed.";
    box.hidden = false;
  }
});
