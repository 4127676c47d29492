// Renders the gateway's OpenAPI, served beside this page. validatorUrl null: the page must not call out to the
// public validator (no request leaves the gateway's origin).
window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  tryItOutEnabled: false,
  displayOperationId: true,
});
