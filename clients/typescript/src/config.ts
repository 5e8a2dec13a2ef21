// What the client needs to know of a deployment, and the names template.yaml gives its
// resources (`<stack>-flags`, `<stack>-emails`, `<stack>-email`...).

import type { DynamoDBClient, DynamoDBClientConfig } from "@aws-sdk/client-dynamodb";
import type { SQSClient } from "@aws-sdk/client-sqs";

import { SymphonyConfigError } from "./errors.js";
import type { FlagName, Job } from "./flags.js";
import { SQS_MAX_MESSAGE_BYTES } from "./queues.js";
import { characterProblem } from "./validation.js";

/** Static credentials, or a function that provides them (as the AWS SDK takes them). */
export type Credentials = NonNullable<DynamoDBClientConfig["credentials"]>;

export interface SymphonyClientOptions {
  /** The CloudFormation stack name: every table and queue is named `<stack>-...`. */
  stack?: string | undefined;
  /** The deployment's region; `AWS_REGION` (or `AWS_DEFAULT_REGION`) when not given. */
  region?: string | undefined;
  /** Another AWS endpoint for DynamoDB and SQS (a local moto server, say). */
  endpoint?: string | undefined;
  /** The AWS SDK's default provider chain (environment, profile, role) when not given. */
  credentials?: Credentials | undefined;
  /** The stack's `SymphonyApiUrl` output; needed by `health()` and `metrics()` only. */
  functionUrl?: string | undefined;
  /** Table names, when they are not `<stack>-flags` and `<stack>-emails`. */
  tables?: { flags?: string; emails?: string } | undefined;
  /** Queue URLs; a queue not given is found by GetQueueUrl from `<stack>-<job>`. */
  queueUrls?: Partial<Record<Job, string>> | undefined;
  /**
   * The queues' MaximumMessageSize (the template's `QueueMaximumMessageBytes`); read
   * from each queue with GetQueueAttributes when not given.
   */
  maxMessageBytes?: number | undefined;
  /** How long a flag read is reused, in milliseconds (default 5000); 0 reads at every call. */
  flagCacheTtlMs?: number | undefined;
  /**
   * Values for flag items missing from the table, as the functions' environment variables
   * of the same names give them. Absent means off, as for the functions.
   */
  flagDefaults?: Partial<Record<FlagName, boolean>> | undefined;
  /** Recorded in each envelope's `meta.source` (default `webapp`). */
  source?: string | undefined;
  /** Warnings (an unreadable flag table); `console` by default, `null` for none. */
  logger?: { warn(message: string): void } | null | undefined;
  /**
   * How long one request of the DynamoDB and SQS clients this package makes may wait for
   * its answer, or go without a byte of it, in milliseconds (default 5000): a request
   * past it fails as a timeout (and is retried as the SDK retries). Not applied to
   * clients given as `dynamodb` / `sqs`, which keep their own settings.
   */
  requestTimeoutMs?: number | undefined;
  /** How long those clients may take to connect, in milliseconds (default 3000). */
  connectionTimeoutMs?: number | undefined;
  /**
   * Clients to use instead of new ones (their region, endpoint, retries and timeouts are
   * theirs: give them timeouts, or a dispatch may wait as long as their requests do).
   */
  dynamodb?: DynamoDBClient | undefined;
  sqs?: SQSClient | undefined;
}

/** The names template.yaml gives a stack's resources. */
export function resourceNames(stack: string): {
  tables: { flags: string; emails: string };
  queues: Record<Job, string>;
} {
  return {
    tables: { flags: `${stack}-flags`, emails: `${stack}-emails` },
    queues: { email: `${stack}-email`, campaign: `${stack}-campaign`, sms: `${stack}-sms` },
  };
}

export const DEFAULT_FLAG_CACHE_TTL_MS = 5_000;
export const DEFAULT_REQUEST_TIMEOUT_MS = 5_000;
export const DEFAULT_CONNECTION_TIMEOUT_MS = 3_000;
export const DEFAULT_SOURCE = "webapp";

export interface ResolvedConfig {
  region: string;
  endpoint: string | undefined;
  credentials: Credentials | undefined;
  functionUrl: string | undefined;
  tables: { flags: string; emails: string };
  queueNames: Partial<Record<Job, string>>;
  queueUrls: Partial<Record<Job, string>>;
  maxMessageBytes: number | undefined;
  flagCacheTtlMs: number;
  flagDefaults: Partial<Record<FlagName, boolean>>;
  source: string;
  logger: { warn(message: string): void } | null;
  requestTimeoutMs: number;
  connectionTimeoutMs: number;
}

const JOBS: readonly Job[] = ["email", "campaign", "sms"];

/** Checks the options; every problem is a `SymphonyConfigError` that says what to set. */
export function resolveConfig(options: SymphonyClientOptions): ResolvedConfig {
  const region = options.region ?? process.env["AWS_REGION"] ?? process.env["AWS_DEFAULT_REGION"];
  if (!region) throw new SymphonyConfigError("region is not set: pass region, or set AWS_REGION");

  const { stack } = options;
  if (stack !== undefined && !/^[A-Za-z][A-Za-z0-9-]{0,127}$/.test(stack)) {
    throw new SymphonyConfigError(`stack ${JSON.stringify(stack)} is not a CloudFormation stack name`);
  }
  const named = stack === undefined ? undefined : resourceNames(stack);
  const flags = options.tables?.flags ?? named?.tables.flags;
  const emails = options.tables?.emails ?? named?.tables.emails;
  const queueUrls = { ...options.queueUrls };
  const missing = [
    ...(flags ? [] : ["tables.flags"]),
    ...(emails ? [] : ["tables.emails"]),
    ...JOBS.filter((job) => !queueUrls[job] && !named).map((job) => `queueUrls.${job}`),
  ];
  if (missing.length > 0) {
    throw new SymphonyConfigError(`stack is not set, nor ${missing.join(", ")}: pass the stack name`);
  }

  const { maxMessageBytes } = options;
  if (
    maxMessageBytes !== undefined &&
    !(Number.isInteger(maxMessageBytes) && maxMessageBytes >= 1024 && maxMessageBytes <= SQS_MAX_MESSAGE_BYTES)
  ) {
    throw new SymphonyConfigError(`maxMessageBytes must be a whole number from 1024 to ${SQS_MAX_MESSAGE_BYTES}`);
  }
  const flagCacheTtlMs = options.flagCacheTtlMs ?? DEFAULT_FLAG_CACHE_TTL_MS;
  if (!(Number.isFinite(flagCacheTtlMs) && flagCacheTtlMs >= 0)) {
    throw new SymphonyConfigError("flagCacheTtlMs must be a number of milliseconds, 0 or more");
  }
  const requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const connectionTimeoutMs = options.connectionTimeoutMs ?? DEFAULT_CONNECTION_TIMEOUT_MS;
  for (const [name, value] of [
    ["requestTimeoutMs", requestTimeoutMs],
    ["connectionTimeoutMs", connectionTimeoutMs],
  ] as const) {
    if (!(Number.isInteger(value) && value > 0)) {
      throw new SymphonyConfigError(`${name} must be a whole number of milliseconds, more than 0`);
    }
  }
  const source = options.source ?? DEFAULT_SOURCE;
  if (source.trim() === "") throw new SymphonyConfigError("source must not be empty");
  const sourceProblem = characterProblem(source);
  if (sourceProblem !== undefined) throw new SymphonyConfigError(`source ${sourceProblem}`);

  return {
    region,
    endpoint: options.endpoint,
    credentials: options.credentials,
    functionUrl: options.functionUrl,
    tables: { flags: flags!, emails: emails! },
    queueNames: named?.queues ?? {},
    queueUrls,
    maxMessageBytes,
    flagCacheTtlMs,
    flagDefaults: { ...options.flagDefaults },
    source,
    logger: options.logger === undefined ? console : options.logger,
    requestTimeoutMs,
    connectionTimeoutMs,
  };
}
