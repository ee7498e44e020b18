// Starts Swagger UI with the settings the server put on #swagger-ui (no inline script: the page's CSP forbids it).
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  var options = JSON.parse(root.dataset.parameters || "{}");
  options.url = root.dataset.openapiUrl;
  options.oauth2RedirectUrl = window.location.origin + root.dataset.oauth2RedirectUrl;
  options.presets = [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset];
  window.ui = SwaggerUIBundle(options);
})();
