// The client a web app uses: dispatch (emails, campaign runs, SMS drip steps), flags,
// health and metrics. See README.md and docs/decisions/0016 for why emails are written as they are.

import { randomUUID } from "node:crypto";

import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { SQSClient } from "@aws-sdk/client-sqs";
import { defaultProvider } from "@aws-sdk/credential-provider-node";

import { SymphonyApi, type Health, type Metrics } from "./api.js";
import { resolveConfig, type ResolvedConfig, type SymphonyClientOptions } from "./config.js";
import { envelope, outgoing, type OutgoingMessage } from "./envelope.js";
import {
  DYNAMODB_MAX_ITEM_BYTES,
  LIFECYCLE_HEADROOM_BYTES,
  createRow,
  emailItem,
  itemSize,
  releaseClaim,
  type Item,
} from "./email-rows.js";
import {
  SymphonyAwsError,
  SymphonyConflictError,
  SymphonyDispatchError,
  SymphonyValidationError,
  leftText,
} from "./errors.js";
import { FlagReader, flagOf, routeFor, type FlagEvaluation, type Job, type Route } from "./flags.js";
import type { EmailMessage, MessageType, PayloadByType, SmsDripMessage } from "./generated/contract.js";
import { Queues, type ResolvedQueue, type SendResult } from "./queues.js";
import {
  validateCampaignProcessingMessage,
  validateEmailMessage,
  validateSmsDripMessage,
} from "./validation.js";

/** Row writes in flight at once in a batch. */
const WRITES_IN_FLIGHT = 16;

/** What became of one email. */
export interface EmailDispatch {
  emailId: string;
  /**
   * - `symphony`: its row was written claimed and its envelope is on the email queue;
   * - `legacy`: its row was written `queued`; the scheduled function sends it inline;
   * - `duplicate`: a row with this id and this content existed; nothing was written or
   *   sent (whoever owns that row sends it, once).
   */
  route: Route | "duplicate";
  /** The SQS message id on the symphony route, otherwise `null`. */
  messageId: string | null;
}

/**
 * Where an email that was not dispatched waits:
 * - `none`: nothing was written (refused input, or the id holds another email);
 * - `queued`: its row is queued; the scheduled function sends it at its next tick;
 * - `claimed`: its row stays claimed; the tick takes it over when the claim lease runs out;
 * - `unknown`: the row write failed and may have been applied; dispatching the same
 *   email again is safe.
 */
export type EmailLeft = "none" | "queued" | "claimed" | "unknown";

export interface FailedEmail {
  /** Its position in the batch. */
  index: number;
  /** Its id, or `""` when it had none. */
  emailId: string;
  reason: string;
  emailLeft: EmailLeft;
}

export interface EmailBatchDispatch {
  /** On the email queue (the symphony route). */
  dispatched: Array<{ emailId: string; messageId: string }>;
  /** Written `queued` for the scheduled function (the legacy route). */
  legacy: string[];
  /** Already there with the same content: nothing written or sent. */
  duplicates: string[];
  /** Not dispatched, each with the reason and where it waits. */
  failed: FailedEmail[];
}

/** What became of one campaign run or SMS drip step. */
export interface UnitDispatch {
  /** The campaign's or the enrollment's id. */
  unitId: string;
  /**
   * `symphony`: the message is on the job's queue. `legacy`: the job's flags send this
   * unit the legacy way, so nothing was sent: the scheduled function takes it from its table.
   */
  route: Route;
  messageId: string | null;
}

/** An email ready to be written and sent. */
interface PreparedEmail {
  index: number;
  message: EmailMessage;
  route: Route;
  /** Set on the symphony route: the row is created claimed under it. */
  claimToken: string | undefined;
  item: Item;
  wire: OutgoingMessage;
}

type WriteOutcome =
  | { kind: "created" }
  | { kind: "duplicate" }
  | { kind: "failed"; error: SymphonyConflictError | SymphonyAwsError };

export class SymphonyClient {
  readonly #config: ResolvedConfig;
  readonly #dynamodb: DynamoDBClient;
  readonly #sqs: SQSClient;
  readonly #ownsClients: { dynamodb: boolean; sqs: boolean };
  readonly #flags: FlagReader;
  readonly #queues: Queues;
  readonly #api: SymphonyApi;

  constructor(options: SymphonyClientOptions = {}) {
    const config = resolveConfig(options);
    this.#config = config;
    const aws = {
      region: config.region,
      ...(config.endpoint ? { endpoint: config.endpoint } : {}),
      ...(config.credentials ? { credentials: config.credentials } : {}),
    };
    this.#dynamodb = options.dynamodb ?? new DynamoDBClient(aws);
    // With another endpoint, requests go there, not to the host in each queue's URL.
    this.#sqs = options.sqs ?? new SQSClient({ ...aws, ...(config.endpoint ? { useQueueUrlAsEndpoint: false } : {}) });
    this.#ownsClients = { dynamodb: !options.dynamodb, sqs: !options.sqs };
    this.#flags = new FlagReader({
      dynamodb: this.#dynamodb,
      table: config.tables.flags,
      cacheTtlMs: config.flagCacheTtlMs,
      defaults: config.flagDefaults,
      now: Date.now,
    });
    this.#queues = new Queues({
      sqs: this.#sqs,
      names: config.queueNames,
      urls: config.queueUrls,
      maxMessageBytes: config.maxMessageBytes,
    });
    this.#api = new SymphonyApi({
      functionUrl: config.functionUrl,
      region: config.region,
      credentials: config.credentials ?? defaultProvider(),
    });
  }

  // ------------------------------------------------------------ flags

  /** The flags of `job` as the scheduled function would read them now (cached briefly). */
  async evaluateFlags(job: Job): Promise<FlagEvaluation> {
    flagOf(job);
    const flags = await this.#flags.evaluate(job);
    if (flags.tableError !== undefined) {
      this.#config.logger?.warn(`FLAG TABLE UNREADABLE: ${flags.tableError}; every ${job} unit goes legacy`);
    }
    return flags;
  }

  /**
   * Whether `unitId` of `job` goes the symphony way. Without a unit: whether the job's
   * flags send any unit that way (both on, rollout above 0). An unreadable flag table
   * answers `false`, as it sends every unit legacy.
   */
  async shouldUseSymphonyFor(job: Job, unitId?: string): Promise<boolean> {
    const flags = await this.evaluateFlags(job);
    if (unitId !== undefined) return routeFor(flags, unitId) === "symphony";
    return (
      flags.tableError === undefined && flags.global.enabled && flags.job.enabled && flags.job.rolloutPercent > 0
    );
  }

  /** `shouldUseSymphonyFor("email", emailId)`. */
  shouldUseSymphonyForEmailQueue(emailId?: string): Promise<boolean> {
    return this.shouldUseSymphonyFor("email", emailId);
  }

  /** Forgets cached flags: the next read goes to the table. */
  clearFlagCache(): void {
    this.#flags.clear();
  }

  // ------------------------------------------------------------ emails

  /**
   * Validates the email, writes its row (never over an existing one), and on the
   * symphony route puts its envelope on the email queue.
   *
   * @throws SymphonyValidationError before anything is written, naming the field.
   * @throws SymphonyConflictError when the id holds another email.
   * @throws SymphonyDispatchError when the row was written but the queue refused the
   *   envelope (`emailLeft` says where the email waits).
   * @throws SymphonyAwsError when an AWS call failed otherwise.
   */
  async dispatchEmailMessage(payload: EmailMessage): Promise<EmailDispatch> {
    const message = validateEmailMessage(payload);
    const queue = await this.#queues.resolve("email");
    const flags = await this.evaluateFlags("email");
    const email = this.#prepareEmail(0, message, queue, flags, new Date());
    const written = await this.#writeRow(email);
    if (written.kind === "failed") throw written.error;
    if (written.kind === "duplicate") return { emailId: message.emailId, route: "duplicate", messageId: null };
    if (email.route === "legacy") return { emailId: message.emailId, route: "legacy", messageId: null };
    const [sent] = await this.#queues.send(queue, [email.wire]);
    if (sent?.ok) return { emailId: message.emailId, route: "symphony", messageId: sent.messageId };
    const left = await this.#giveBack(email);
    const failure =
      sent?.error ?? new SymphonyAwsError("SQS.SendMessageBatch", queue.url, new Error(sent?.reason ?? "no answer"));
    throw new SymphonyDispatchError(message.emailId, left, failure);
  }

  /**
   * Dispatches many emails: each validated, routed by the flags (read once for the
   * batch) and its rollout bucket, written, and the symphony ones put on the queue ten a
   * request. Never throws for one email: each that was not dispatched is in `failed`.
   *
   * @throws SymphonyAwsError only when the email queue cannot be found (nothing written).
   */
  async dispatchEmailQueueBatch(emails: readonly EmailMessage[]): Promise<EmailBatchDispatch> {
    if (!Array.isArray(emails)) {
      throw new SymphonyValidationError("batch", [{ field: "emails", reason: "must be an array" }]);
    }
    const outcome: EmailBatchDispatch = { dispatched: [], legacy: [], duplicates: [], failed: [] };
    const fail = (index: number, emailId: string, reason: string, emailLeft: EmailLeft): void => {
      outcome.failed.push({ index, emailId, reason, emailLeft });
    };

    const valid: Array<{ index: number; message: EmailMessage }> = [];
    emails.forEach((input, index) => {
      try {
        valid.push({ index, message: validateEmailMessage(input) });
      } catch (error) {
        if (!(error instanceof SymphonyValidationError)) throw error;
        fail(index, idOf(input), error.message, "none");
      }
    });
    if (valid.length > 0) {
      const queue = await this.#queues.resolve("email");
      const flags = await this.evaluateFlags("email");
      const now = new Date();
      const prepared: PreparedEmail[] = [];
      for (const { index, message } of valid) {
        try {
          prepared.push(this.#prepareEmail(index, message, queue, flags, now));
        } catch (error) {
          if (!(error instanceof SymphonyValidationError)) throw error;
          fail(index, message.emailId, error.message, "none");
        }
      }

      const writes = await mapLimit(prepared, WRITES_IN_FLIGHT, (email) => this.#writeRow(email));
      const toSend: PreparedEmail[] = [];
      prepared.forEach((email, position) => {
        const written = writes[position]!;
        const { emailId } = email.message;
        if (written.kind === "failed") {
          const left = written.error instanceof SymphonyConflictError ? "none" : "unknown";
          fail(email.index, emailId, written.error.message, left);
        } else if (written.kind === "duplicate") {
          outcome.duplicates.push(emailId);
        } else if (email.route === "legacy") {
          outcome.legacy.push(emailId);
        } else {
          toSend.push(email);
        }
      });

      const sent = await this.#queues.send(
        queue,
        toSend.map((email) => email.wire),
      );
      const unsent: Array<{ email: PreparedEmail; reason: string }> = [];
      toSend.forEach((email, position) => {
        const result: SendResult = sent[position] ?? { ok: false, reason: "not sent", error: undefined };
        if (result.ok) outcome.dispatched.push({ emailId: email.message.emailId, messageId: result.messageId });
        else unsent.push({ email, reason: result.reason });
      });
      await mapLimit(unsent, WRITES_IN_FLIGHT, async ({ email, reason }) => {
        const left = await this.#giveBack(email);
        const { emailId } = email.message;
        fail(email.index, emailId, `${reason}; ${leftText(emailId, left)}`, left);
      });
    }
    outcome.failed.sort((a, b) => a.index - b.index);
    return outcome;
  }

  /**
   * Routes, builds and size-checks one email. The row starts as the tick's claim would
   * leave it on the symphony route, `queued` otherwise (docs/decisions/0016).
   */
  #prepareEmail(
    index: number,
    message: EmailMessage,
    queue: ResolvedQueue,
    flags: FlagEvaluation,
    now: Date,
  ): PreparedEmail {
    const route = routeFor(flags, message.emailId);
    const nowSeconds = Math.floor(now.getTime() / 1000);
    const claimToken = route === "symphony" ? randomUUID() : undefined;
    const item = emailItem(
      message,
      claimToken === undefined ? { status: "queued" } : { status: "claimed", claimToken },
      nowSeconds,
    );
    const wire = outgoing(
      envelope("EmailMessage", message.emailId, message, {
        correlationId: message.emailId,
        createdAt: now,
        source: this.#config.source,
        dueAt: new Date(nowSeconds * 1000),
      }),
    );
    // Checked on every route: a legacy email may be dispatched by a later tick.
    checkSize("EmailMessage", message, wire, queue);
    const rowBytes = itemSize(item);
    const rowLimit = DYNAMODB_MAX_ITEM_BYTES - LIFECYCLE_HEADROOM_BYTES;
    if (rowBytes > rowLimit) {
      throw new SymphonyValidationError("EmailMessage", [
        {
          field: largestField(message),
          reason: `makes the email row ${rowBytes} bytes, over the ${rowLimit} a DynamoDB item can take with room for its lifecycle`,
        },
      ]);
    }
    return { index, message, route, claimToken, item, wire };
  }

  async #writeRow(email: PreparedEmail): Promise<WriteOutcome> {
    try {
      const created = await createRow(this.#dynamodb, this.#config.tables.emails, email.item);
      if (created.created) return { kind: "created" };
      if (created.differingFields.length === 0) return { kind: "duplicate" };
      return { kind: "failed", error: new SymphonyConflictError(email.message.emailId, created.differingFields) };
    } catch (error) {
      if (error instanceof SymphonyAwsError) return { kind: "failed", error };
      throw error;
    }
  }

  /** After a failed send: gives the claim back so the next tick takes the email. */
  async #giveBack(email: PreparedEmail): Promise<"queued" | "claimed"> {
    try {
      const released = await releaseClaim(
        this.#dynamodb,
        this.#config.tables.emails,
        email.message.emailId,
        email.claimToken!,
      );
      return released ? "queued" : "claimed";
    } catch {
      // The lease covers it: the tick takes the claim over once it has run out.
      return "claimed";
    }
  }

  // ------------------------------------------------------------ campaigns and SMS

  /**
   * Asks for one run of a campaign now (a `CampaignProcessingMessage` on the campaign
   * queue), when the campaign flags send this campaign the symphony way. On the legacy
   * route nothing is sent: the scheduled function runs every active campaign.
   */
  async dispatchCampaignProcessing(
    campaignId: string,
    userId: string,
    options: { action?: "process" | undefined } = {},
  ): Promise<UnitDispatch> {
    const message = validateCampaignProcessingMessage({ campaignId, userId, action: options.action ?? "process" });
    return this.#dispatchUnit("campaign", "CampaignProcessingMessage", message.campaignId, message.campaignId, message);
  }

  /**
   * Asks for one step of an SMS drip now (an `SmsDripMessage` on the SMS queue), when
   * the SMS flags send this enrollment the symphony way. The enrollment's row is the web
   * app's; the worker claims it if it is `active`. On the legacy route nothing is sent:
   * the scheduled function sends due enrollments.
   */
  async dispatchSmsDrip(payload: SmsDripMessage): Promise<UnitDispatch> {
    const message = validateSmsDripMessage(payload);
    // One envelope id per step: a second step is another message, not a duplicate.
    const envelopeId = `${message.enrollmentId}#${message.step}`;
    return this.#dispatchUnit("sms", "SmsDripMessage", envelopeId, message.enrollmentId, message);
  }

  async #dispatchUnit<T extends MessageType>(
    job: Job,
    type: T,
    envelopeId: string,
    unitId: string,
    payload: PayloadByType[T],
  ): Promise<UnitDispatch> {
    const queue = await this.#queues.resolve(job);
    const message = outgoing(
      envelope(type, envelopeId, payload, { correlationId: unitId, createdAt: new Date(), source: this.#config.source }),
    );
    checkSize(type, payload as unknown as Record<string, unknown>, message, queue);
    const flags = await this.evaluateFlags(job);
    if (routeFor(flags, unitId) === "legacy") return { unitId, route: "legacy", messageId: null };
    const [sent] = await this.#queues.send(queue, [message]);
    if (sent?.ok) return { unitId, route: "symphony", messageId: sent.messageId };
    throw sent?.error ?? new SymphonyAwsError("SQS.SendMessageBatch", queue.url, new Error(sent?.reason ?? "no answer"));
  }

  // ------------------------------------------------------------ health and metrics

  /** symphony-api's health: `ok` is false on its 503 (a check is unhealthy). */
  health(): Promise<Health> {
    return this.#api.health();
  }

  /** symphony-api's metrics over the last `minutes` (1 to 1440; the function's default 60). */
  metrics(options: { minutes?: number | undefined } = {}): Promise<Metrics> {
    return this.#api.metrics(options);
  }

  /** Closes the AWS clients this client made (not those it was given). */
  destroy(): void {
    if (this.#ownsClients.dynamodb) this.#dynamodb.destroy();
    if (this.#ownsClients.sqs) this.#sqs.destroy();
  }
}

/** A new client; see `SymphonyClientOptions`. */
export function createSymphonyClient(options: SymphonyClientOptions = {}): SymphonyClient {
  return new SymphonyClient(options);
}

/** Refuses a message the queue would refuse for its size, naming its largest field. */
function checkSize(what: string, payload: object, message: OutgoingMessage, queue: ResolvedQueue): void {
  if (message.size <= queue.maxMessageBytes) return;
  throw new SymphonyValidationError(what, [
    {
      field: largestField(payload),
      reason: `makes the message ${message.size} bytes, over the queue's limit of ${queue.maxMessageBytes} bytes (MaximumMessageSize)`,
    },
  ]);
}

function largestField(payload: object): string {
  let largest = "(message)";
  let bytes = -1;
  for (const [field, value] of Object.entries(payload)) {
    const size = typeof value === "string" ? Buffer.byteLength(value, "utf8") : 0;
    if (size > bytes) [largest, bytes] = [field, size];
  }
  return largest;
}

function idOf(input: unknown): string {
  const id = typeof input === "object" && input !== null ? (input as { emailId?: unknown }).emailId : undefined;
  return typeof id === "string" ? id : "";
}

/** `fn` over `items`, at most `limit` at once; results in order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index]!, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
