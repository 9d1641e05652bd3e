// Starts Scalar on the gateway's own OpenAPI description, once the CDN script has loaded.
if (window.Scalar) window.Scalar.createApiReference("#app", { url: "/openapi.json", hideClientButton: false })
