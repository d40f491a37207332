// Starts Swagger UI on this service's OpenAPI description. A file, not an inline script, so the page's
// CSP can stay `script-src 'self'`. No validator badge: it would call a third-party service.
"use strict";

window.addEventListener("DOMContentLoaded", () => {
  window.ui = window.SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    persistAuthorization: false,
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
