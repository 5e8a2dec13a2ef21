// The rollout flags, read as the Rust functions read them (shared/core/src/flags.rs,
// shared/aws/src/flags.rs; docs/contracts.md#flags): a consistent GetItem of the global
// item and the job's item; a missing item falls back to the caller's default, then off;
// a unit goes the symphony way iff both are on and its bucket is below the job's
// rolloutPercent. An unreadable table or an invalid item sends every unit legacy.

import { createHash } from "node:crypto";

import { GetItemCommand, type AttributeValue, type DynamoDBClient } from "@aws-sdk/client-dynamodb";

import { SymphonyAwsError, SymphonyValidationError } from "./errors.js";

export const GLOBAL_FLAG = "SYMPHONY_ENABLED";

/** Each job's flag item, by the job's name (its name in metrics and on the command line). */
export const JOB_FLAGS = {
  email: "SYMPHONY_EMAIL_QUEUE_ENABLED",
  campaign: "SYMPHONY_CAMPAIGN_PROCESSING_ENABLED",
  sms: "SYMPHONY_SMS_DRIP_ENABLED",
} as const;

export type Job = keyof typeof JOB_FLAGS;
export type FlagName = typeof GLOBAL_FLAG | (typeof JOB_FLAGS)[Job];
export type Route = "symphony" | "legacy";

/**
 * The stable rollout bucket of a unit, 0 to 99: the first four bytes of
 * SHA-256("<jobFlag>:<unitId>") as a big-endian unsigned integer, modulo 100
 * (docs/decisions/0002-rollout-bucket-hash.md).
 */
export function bucket(jobFlag: string, unitId: string): number {
  const digest = createHash("sha256").update(`${jobFlag}:${unitId}`, "utf8").digest();
  return digest.readUInt32BE(0) % 100;
}

/** One flag as it decides: where its value came from, as the tick report says it. */
export interface FlagState {
  name: FlagName;
  enabled: boolean;
  /** 0 to 100; 100 when the item has none. */
  rolloutPercent: number;
  /** `table`: the item; `default`: no item, the caller's default or off. */
  source: "table" | "default";
}

/** The flags of one job at one moment. */
export interface FlagEvaluation {
  global: FlagState;
  job: FlagState;
  /** Set when the table could not be read or an item is invalid: every unit goes legacy. */
  tableError?: string;
}

/** Where `unitId` goes under `flags`. */
export function routeFor(flags: FlagEvaluation, unitId: string): Route {
  if (flags.tableError !== undefined || !flags.global.enabled || !flags.job.enabled) return "legacy";
  return bucket(flags.job.name, unitId) < flags.job.rolloutPercent ? "symphony" : "legacy";
}

interface FlagRecord {
  enabled: boolean;
  rolloutPercent: number;
}

/** Reads one flag item; a wrong type or an out-of-range percentage is an error, never a guess. */
export function parseFlagItem(item: Record<string, AttributeValue>): FlagRecord {
  const enabled = item["enabled"];
  if (enabled === undefined) throw new Error("enabled is missing");
  if (enabled.BOOL === undefined) throw new Error("enabled must be a BOOL");
  const percent = item["rolloutPercent"];
  if (percent === undefined) return { enabled: enabled.BOOL, rolloutPercent: 100 };
  if (percent.N === undefined) throw new Error("rolloutPercent must be a number (N)");
  // As Rust's `u8` parse: digits only (a leading + allowed), then at most 100.
  const rolloutPercent = /^\+?[0-9]+$/.test(percent.N) ? Number(percent.N) : Number.NaN;
  if (!(rolloutPercent <= 100)) {
    throw new Error(`rolloutPercent must be a whole number from 0 to 100, found ${percent.N}`);
  }
  return { enabled: enabled.BOOL, rolloutPercent };
}

export interface FlagReaderOptions {
  dynamodb: DynamoDBClient;
  table: string;
  /** How long a read flag is reused, in milliseconds; 0 reads the table at every call. */
  cacheTtlMs: number;
  /**
   * Values for items missing from the table, as the functions' environment variables
   * of the same names would give them; absent means off.
   */
  defaults: Partial<Record<FlagName, boolean>>;
  now: () => number;
}

interface CachedFlag {
  expiresAt: number;
  /** Resolves to the item (`null`: no item), or rejects with why it could not be read. */
  record: Promise<FlagRecord | null>;
}

/** Reads flags with a short cache; concurrent callers share one read. */
export class FlagReader {
  readonly #options: FlagReaderOptions;
  readonly #cache = new Map<FlagName, CachedFlag>();

  constructor(options: FlagReaderOptions) {
    this.#options = options;
  }

  /** The flags of `job` now. Never throws: an unreadable table is a `tableError`. */
  async evaluate(job: Job): Promise<FlagEvaluation> {
    const jobFlag = flagOf(job);
    const [global, jobRecord] = await Promise.allSettled([this.#read(GLOBAL_FLAG), this.#read(jobFlag)]);
    const failure = [global, jobRecord].find((result) => result.status === "rejected");
    if (failure) {
      return {
        global: this.#state(GLOBAL_FLAG, null),
        job: this.#state(jobFlag, null),
        tableError: failure.reason instanceof Error ? failure.reason.message : String(failure.reason),
      };
    }
    return {
      global: this.#state(GLOBAL_FLAG, (global as PromiseFulfilledResult<FlagRecord | null>).value),
      job: this.#state(jobFlag, (jobRecord as PromiseFulfilledResult<FlagRecord | null>).value),
    };
  }

  /** Forgets every cached flag: the next call reads the table. */
  clear(): void {
    this.#cache.clear();
  }

  #state(name: FlagName, record: FlagRecord | null): FlagState {
    if (record) return { name, ...record, source: "table" };
    return { name, enabled: this.#options.defaults[name] ?? false, rolloutPercent: 100, source: "default" };
  }

  #read(name: FlagName): Promise<FlagRecord | null> {
    const { cacheTtlMs, now } = this.#options;
    const cached = this.#cache.get(name);
    if (cached && cached.expiresAt > now()) return cached.record;
    const record = this.#get(name);
    if (cacheTtlMs > 0) {
      this.#cache.set(name, { expiresAt: now() + cacheTtlMs, record });
      // A failed read is not kept: the next call tries the table again.
      record.catch(() => {
        if (this.#cache.get(name)?.record === record) this.#cache.delete(name);
      });
    }
    return record;
  }

  async #get(name: FlagName): Promise<FlagRecord | null> {
    const { dynamodb, table } = this.#options;
    let item: Record<string, AttributeValue> | undefined;
    try {
      const output = await dynamodb.send(
        // Consistent, as the functions read: a flip is seen at once (after the cache).
        new GetItemCommand({ TableName: table, Key: { name: { S: name } }, ConsistentRead: true }),
      );
      item = output.Item;
    } catch (error) {
      throw new SymphonyAwsError("DynamoDB.GetItem", table, error, `flag table ${table} could not be read`);
    }
    if (!item) return null;
    try {
      return parseFlagItem(item);
    } catch (error) {
      throw new Error(`flag ${name} in table ${table} is invalid: ${(error as Error).message}`);
    }
  }
}

/** The flag item of `job`, refusing a name that is not a job. */
export function flagOf(job: Job): (typeof JOB_FLAGS)[Job] {
  if (!Object.hasOwn(JOB_FLAGS, job)) {
    throw new SymphonyValidationError("job", [
      { field: "job", reason: `must be one of ${Object.keys(JOB_FLAGS).join(", ")}` },
    ]);
  }
  return JOB_FLAGS[job];
}
