// Starts ReDoc on the document named by #redoc (no inline script: the page's CSP forbids it).
(function () {
  "use strict";
  var root = document.getElementById("redoc");
  Redoc.init(root.dataset.openapiUrl, {}, root, function () {
    document.body.dataset.ready = "true";
  });
})();
