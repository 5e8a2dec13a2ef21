// symphony-api's two endpoints (docs/contracts.md "Health and metrics"), behind a
// function URL with AWS_IAM auth: every request is signed with SigV4 for the service
// `lambda` in the deployment's region.

import { createHash, createHmac, type Hash, type Hmac } from "node:crypto";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";

import { SignatureV4 } from "@smithy/signature-v4";

import { SymphonyConfigError, SymphonyError, SymphonyHttpError } from "./errors.js";
import type { Credentials } from "./config.js";

export const HEALTH_PATH = "/api/symphony/health";
export const METRICS_PATH = "/api/symphony/metrics";
const TIMEOUT_MS = 30_000;

// ---------------------------------------------------------------- answers

export interface HealthCheck {
  /** `flags`, `queue:<job>`, `held:<job>`, `schedule:<function>`. */
  name: string;
  healthy: boolean;
  detail: Record<string, unknown>;
}

export interface Health {
  /** True when symphony-api answered 200: every check is healthy. A 503 is `false`. */
  ok: boolean;
  status: "healthy" | "unhealthy";
  checkedAt: string;
  checks: HealthCheck[];
}

export interface Percentiles {
  count: number;
  mean: number | null;
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

export interface PathFigures {
  dispatched: number;
  processed: number;
  succeeded: number;
  failedTransient: number;
  failedIntrinsic: number;
  failedInfrastructure: number;
  failedUnknown: number;
  retried: number;
  deadLettered: number;
  failed: number;
  throughputPerMinute: number;
  /** failed ÷ (succeeded + failed); `null` when no attempt ended. */
  errorRate: number | null;
  latencyMs: Percentiles;
  handleMs: Percentiles;
}

export interface QueueDepths {
  queue: string;
  visible: number;
  inFlight: number;
  delayed: number;
  deadLetters: number;
}

export interface JobMetrics {
  job: string;
  flag: string;
  symphony: PathFigures;
  legacy: PathFigures;
  queue: QueueDepths;
}

export interface Metrics {
  minutes: number;
  from: string;
  to: string;
  jobs: JobMetrics[];
}

// ---------------------------------------------------------------- signing

/** What the signer hands a hash: text or bytes. */
type SourceData = string | ArrayBuffer | ArrayBufferView;

function bytes(data: Exclude<SourceData, string>): Uint8Array {
  return data instanceof ArrayBuffer
    ? new Uint8Array(data)
    : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** SHA-256 (and its HMAC) from node:crypto, in the shape the signer asks for. */
class NodeSha256 {
  readonly #secret: string | Uint8Array | undefined;
  #hash: Hash | Hmac;

  constructor(secret?: SourceData) {
    this.#secret = secret === undefined || typeof secret === "string" ? secret : bytes(secret);
    this.#hash = this.#fresh();
  }

  #fresh(): Hash | Hmac {
    return this.#secret === undefined ? createHash("sha256") : createHmac("sha256", this.#secret);
  }

  update(data: SourceData, encoding?: "utf8" | "ascii" | "latin1"): void {
    if (typeof data === "string") this.#hash.update(data, encoding ?? "utf8");
    else this.#hash.update(bytes(data));
  }

  digest(): Promise<Uint8Array> {
    return Promise.resolve(new Uint8Array(this.#hash.digest()));
  }

  reset(): void {
    this.#hash = this.#fresh();
  }
}

export interface ApiOptions {
  functionUrl: string | undefined;
  region: string;
  credentials: Credentials;
}

interface Answer {
  status: number;
  text: string;
  json: unknown;
}

export class SymphonyApi {
  readonly #base: URL | undefined;
  readonly #signer: SignatureV4;

  constructor(options: ApiOptions) {
    this.#base = options.functionUrl === undefined ? undefined : baseUrl(options.functionUrl);
    this.#signer = new SignatureV4({
      service: "lambda",
      region: options.region,
      credentials: options.credentials,
      sha256: NodeSha256,
    });
  }

  /** GET /api/symphony/health: 200 and 503 are answers (`ok` says which); others raise. */
  async health(): Promise<Health> {
    const url = this.#url(HEALTH_PATH);
    const answer = await this.#get(url);
    if ((answer.status === 200 || answer.status === 503) && isObject(answer.json)) {
      return { ...(answer.json as Omit<Health, "ok">), ok: answer.status === 200 };
    }
    throw httpError(url, answer);
  }

  /** GET /api/symphony/metrics?minutes=N (the function's default, 60, when not given). */
  async metrics(options: { minutes?: number | undefined } = {}): Promise<Metrics> {
    const url = this.#url(METRICS_PATH);
    if (options.minutes !== undefined) url.searchParams.set("minutes", String(options.minutes));
    const answer = await this.#get(url);
    if (answer.status === 200 && isObject(answer.json)) return answer.json as unknown as Metrics;
    throw httpError(url, answer);
  }

  #url(path: string): URL {
    if (!this.#base) {
      throw new SymphonyConfigError(
        "functionUrl is not set: give the stack's SymphonyApiUrl output to createSymphonyClient",
      );
    }
    return new URL(path.slice(1), this.#base);
  }

  async #get(url: URL): Promise<Answer> {
    const query: Record<string, string> = {};
    url.searchParams.forEach((value, name) => {
      query[name] = value;
    });
    const signed = await this.#signer.sign({
      method: "GET",
      protocol: url.protocol,
      hostname: url.hostname,
      ...(url.port ? { port: Number(url.port) } : {}),
      path: url.pathname,
      query,
      headers: { host: url.host, accept: "application/json" },
    });
    return send(url, signed.headers);
  }
}

/** The function URL as a base that relative paths extend (`.../` kept). */
function baseUrl(functionUrl: string): URL {
  let url: URL;
  try {
    url = new URL(functionUrl);
  } catch {
    throw new SymphonyConfigError(`functionUrl ${JSON.stringify(functionUrl)} is not a URL`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new SymphonyConfigError(`functionUrl must be an https URL, found ${url.protocol}`);
  }
  if (!url.pathname.endsWith("/")) url.pathname += "/";
  return url;
}

// node:http rather than fetch: the signed `host` header must go out exactly as signed.
function send(url: URL, headers: Record<string, string>): Promise<Answer> {
  const request = url.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const outgoing = request(url, { method: "GET", headers, timeout: TIMEOUT_MS }, (response: IncomingMessage) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("error", reject);
      response.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: response.statusCode ?? 0, text, json });
      });
    });
    outgoing.on("timeout", () => outgoing.destroy(new Error(`no answer within ${TIMEOUT_MS} ms`)));
    outgoing.on("error", (error) =>
      reject(new SymphonyError(`GET ${url.href} failed: ${error.message}`, { cause: error })),
    );
    outgoing.end();
  });
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The answer's reason: symphony-api's `error`, a function URL's `Message`, or the text. */
function httpError(url: URL, answer: Answer): SymphonyHttpError {
  let reason = answer.text.trim() || `HTTP ${answer.status}`;
  if (isObject(answer.json)) {
    for (const key of ["error", "Message", "message"]) {
      const value = answer.json[key];
      if (typeof value === "string" && value !== "") {
        reason = value;
        break;
      }
    }
    const cause = answer.json["cause"];
    if (typeof cause === "string" && cause !== "") reason += `: ${cause}`;
  }
  return new SymphonyHttpError(url.href, answer.status, reason, answer.json ?? answer.text);
}
