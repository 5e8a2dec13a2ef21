// health() and metrics() against a local server standing in for the function URL. Each
// request's Authorization header is checked against the signature botocore's SigV4Auth
// computes for the same request, credentials and time.

import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, test } from "node:test";

import { SymphonyConfigError, SymphonyHttpError, createSymphonyClient } from "../dist/index.js";
import { runPython } from "./helpers/python.mjs";

const REGION = "eu-west-3";
const CREDENTIALS = {
  accessKeyId: "AKIDEXAMPLE",
  secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
  sessionToken: "session-token-example",
};
const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

const HEALTHY = {
  status: "healthy",
  checkedAt: "2026-11-30T05:40:00Z",
  checks: [{ name: "flags", healthy: true, detail: { table: "prod-flags", flags: [] } }],
};
const UNHEALTHY = {
  status: "unhealthy",
  checkedAt: "2026-11-30T05:40:00Z",
  checks: [
    { name: "queue:email", healthy: false, detail: { queue: "prod-email", visible: 12, inFlight: 4, delayed: 0, deadLetters: 1 } },
  ],
};
const METRICS = { minutes: 5, from: "2026-11-30T05:35:00Z", to: "2026-11-30T05:40:00Z", jobs: [] };

/** What the stand-in answers next, and every request it received. */
const answers = [];
const received = [];
let server;
let functionUrl;

before(async () => {
  server = createServer((request, response) => {
    received.push({ method: request.method, url: request.url, headers: { ...request.headers } });
    const [status, body, type = "application/json"] = answers.shift() ?? [500, "no answer queued", "text/plain"];
    response.writeHead(status, { "content-type": type });
    response.end(typeof body === "string" ? body : JSON.stringify(body));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  // A function URL ends with a slash; the client keeps it a base either way.
  functionUrl = `http://127.0.0.1:${server.address().port}/`;
});
after(() => new Promise((resolve) => server.close(resolve)));

function client(options = {}) {
  return createSymphonyClient({
    stack: "prod",
    region: REGION,
    credentials: CREDENTIALS,
    functionUrl,
    logger: null,
    ...options,
  });
}

const BOTOCORE_SIGNATURES = `
import json, sys
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

job = json.load(sys.stdin)
credentials = Credentials(job["accessKeyId"], job["secretAccessKey"], job["sessionToken"])
auth = SigV4Auth(credentials, "lambda", job["region"])
answers = []
for received in job["requests"]:
    # The headers as received, less the signature itself and the connection's own header.
    headers = {k: v for k, v in received["headers"].items() if k not in ("authorization", "connection")}
    request = AWSRequest(method=received["method"], url=job["base"] + received["url"], headers=headers)
    request.context["timestamp"] = headers["x-amz-date"]
    canonical = auth.canonical_request(request)
    signature = auth.signature(auth.string_to_sign(request, canonical), request)
    auth._inject_signature_to_request(request, signature)
    answers.append(request.headers["Authorization"])
print(json.dumps(answers))
`;

async function botocoreAuthorization(requests) {
  return runPython(BOTOCORE_SIGNATURES, {
    ...CREDENTIALS,
    region: REGION,
    base: functionUrl.slice(0, -1),
    requests,
  });
}

test("health() and metrics() are signed for lambda in the region, as botocore signs them", async () => {
  received.length = 0;
  answers.push([200, HEALTHY], [200, METRICS]);
  const symphony = client();
  await symphony.health();
  await symphony.metrics({ minutes: 5 });
  assert.deepEqual(
    received.map((request) => request.url),
    ["/api/symphony/health", "/api/symphony/metrics?minutes=5"],
  );
  for (const request of received) {
    assert.match(
      request.headers.authorization,
      /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-3\/lambda\/aws4_request, SignedHeaders=[a-z0-9;-]*host[a-z0-9;-]*, Signature=[0-9a-f]{64}$/,
    );
    assert.match(request.headers.authorization, /SignedHeaders=.*x-amz-date/);
    assert.match(request.headers.authorization, /SignedHeaders=.*x-amz-security-token/);
    assert.equal(request.headers["x-amz-security-token"], CREDENTIALS.sessionToken);
    // botocore takes the payload hash from this header: it must be the empty body's.
    assert.equal(request.headers["x-amz-content-sha256"], EMPTY_SHA256);
  }
  assert.deepEqual(
    await botocoreAuthorization(received),
    received.map((request) => request.headers.authorization),
  );
  symphony.destroy();
});

test("a function URL without its trailing slash is still the base", async () => {
  received.length = 0;
  answers.push([200, HEALTHY]);
  const symphony = client({ functionUrl: functionUrl.slice(0, -1) });
  await symphony.health();
  assert.equal(received[0].url, "/api/symphony/health");
  symphony.destroy();
});

test("health: 200 is ok, 503 is a result with ok false, not an error", async () => {
  answers.push([200, HEALTHY], [503, UNHEALTHY]);
  const symphony = client();
  assert.deepEqual(await symphony.health(), { ...HEALTHY, ok: true });
  const unhealthy = await symphony.health();
  assert.equal(unhealthy.ok, false);
  assert.equal(unhealthy.status, "unhealthy");
  assert.equal(unhealthy.checks[0].name, "queue:email");
  symphony.destroy();
});

test("metrics: the parsed report; 400 raises with symphony-api's reason", async () => {
  const symphony = client();
  answers.push([200, METRICS]);
  assert.deepEqual(await symphony.metrics({ minutes: 5 }), METRICS);
  answers.push([400, { error: "minutes must be a whole number from 1 to 1440, found 0" }]);
  await assert.rejects(symphony.metrics({ minutes: 0 }), (error) => {
    assert.ok(error instanceof SymphonyHttpError);
    assert.equal(error.status, 400);
    assert.equal(error.reason, "minutes must be a whole number from 1 to 1440, found 0");
    return true;
  });
  symphony.destroy();
});

test("403 (a request Lambda refused), 503 metrics and a 500 without JSON raise with status and reason", async () => {
  const symphony = client();
  answers.push([403, { Message: "Forbidden. For troubleshooting Function URL authorization issues, see: ..." }]);
  await assert.rejects(symphony.health(), { name: "SymphonyHttpError", status: 403, reason: /^Forbidden\./ });
  answers.push([503, { error: "metrics could not be read", cause: "AccessDeniedException" }]);
  await assert.rejects(symphony.metrics(), {
    status: 503,
    reason: "metrics could not be read: AccessDeniedException",
  });
  answers.push([502, "Bad Gateway", "text/plain"]);
  await assert.rejects(symphony.health(), { status: 502, reason: "Bad Gateway" });
  symphony.destroy();
});

test("without a function URL, health() says what to set", async () => {
  const symphony = client({ functionUrl: undefined });
  await assert.rejects(symphony.health(), (error) => {
    assert.ok(error instanceof SymphonyConfigError);
    assert.match(error.message, /functionUrl is not set/);
    return true;
  });
  assert.throws(() => client({ functionUrl: "not a url" }), SymphonyConfigError);
  assert.throws(() => client({ functionUrl: "ftp://example.com/" }), /must be an https URL/);
  symphony.destroy();
});
