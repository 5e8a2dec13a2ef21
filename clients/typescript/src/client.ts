// The client a web app uses: dispatch (emails, campaign runs, SMS drip steps), flags,
// health and metrics. See README.md and docs/decisions/0016 for why emails are written as they are.

import { randomUUID } from "node:crypto";

import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { SQSClient } from "@aws-sdk/client-sqs";
import { defaultProvider } from "@aws-sdk/credential-provider-node";

import { SymphonyApi, type Health, type Metrics } from "./api.js";
import { resolveConfig, type ResolvedConfig, type SymphonyClientOptions } from "./config.js";
import { envelope, outgoing, tickEnvelopeSize, type OutgoingMessage } from "./envelope.js";
import {
  DYNAMODB_MAX_ITEM_BYTES,
  LIFECYCLE_HEADROOM_BYTES,
  MESSAGE_FIELDS,
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
  type EmailLeft,
  type EmailStatus,
} from "./errors.js";
import { FlagReader, flagOf, routeFor, type FlagEvaluation, type Job, type Route } from "./flags.js";
import type { EmailMessage, MessageType, PayloadByType, SmsDripMessage } from "./generated/contract.js";
import { MAX_BATCH_ENTRIES, Queues, type ResolvedQueue, type SendResult } from "./queues.js";
import {
  validateCampaignProcessingMessage,
  validateEmailMessage,
  validateSmsDripMessage,
} from "./validation.js";

export type { EmailLeft, EmailStatus } from "./errors.js";

/**
 * Emails a batch writes and sends at a time: their rows, then their envelopes, before the
 * next ones are written. A crash mid-batch leaves at most these claimed without a message.
 */
const BATCH_CHUNK = MAX_BATCH_ENTRIES;

/** What became of one email. */
export interface EmailDispatch {
  emailId: string;
  /**
   * - `symphony`: its row is claimed and its envelope is on the email queue (`messageId`);
   * - `legacy`: its row was written `queued`; the scheduled function sends it;
   * - `duplicate`: a row with this id and this content existed; nothing was written or
   *   sent: `status` says where it is (`failed` and `unknown` will not be sent by themselves).
   */
  route: Route | "duplicate";
  /** The SQS message id on the symphony route, otherwise `null`. */
  messageId: string | null;
  /**
   * The row's status: `claimed` on the symphony route, `queued` on the legacy route, the
   * existing row's on a duplicate (as written, should it be one this version does not know).
   */
  status: EmailStatus | (string & {});
  /**
   * `true` when the row existed already, claimed, with this content (a dispatch that died
   * between the row and the send, or the app dispatching again): its envelope was put on
   * the queue again. A worker's claim lets one delivery send.
   */
  redispatched: boolean;
}

export interface FailedEmail {
  /** Its position in the batch. */
  index: number;
  /** Its id, or `""` when it had none. */
  emailId: string;
  reason: string;
  /** Where it is (see `EmailLeft`). */
  emailLeft: EmailLeft;
}

export interface EmailBatchDispatch {
  /** On the email queue (the symphony route); `redispatched` as for one email. */
  dispatched: Array<{ emailId: string; messageId: string; redispatched: boolean }>;
  /** Written `queued` for the scheduled function (the legacy route). */
  legacy: string[];
  /**
   * Already there with the same content: nothing written or sent. `status` is the row's
   * (an email given twice in the batch: the status the first left it in).
   */
  duplicates: Array<{ emailId: string; status: EmailStatus | (string & {}) }>;
  /** Not dispatched, each with the reason and where it is. */
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
  now: Date;
}

/** What became of one email of a chunk. */
type EmailOutcome =
  | { kind: "dispatched"; messageId: string; redispatched: boolean }
  | { kind: "legacy" }
  | { kind: "duplicate"; status: string }
  | { kind: "failed"; error: SymphonyConflictError | SymphonyDispatchError | SymphonyValidationError };

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
      // Without these a request may wait for minutes (the SDK's socket default is five).
      requestHandler: {
        connectionTimeout: config.connectionTimeoutMs,
        requestTimeout: config.requestTimeoutMs,
        throwOnRequestTimeout: true,
        socketTimeout: config.requestTimeoutMs,
      },
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
   * symphony route puts its envelope on the email queue. Every error it raises says
   * where the email is, as `emailLeft`.
   *
   * @throws SymphonyValidationError before anything is written, naming the field.
   * @throws SymphonyConflictError when the id holds another email (nothing written).
   * @throws SymphonyDispatchError when an AWS call failed: the queue could not be found
   *   or the row write was refused (`none`), the row write's answer was lost however often
   *   it was tried (`unknown`), or the queue refused the envelope (the row's status).
   */
  async dispatchEmailMessage(payload: EmailMessage): Promise<EmailDispatch> {
    const message = validateEmailMessage(payload);
    let queue: ResolvedQueue;
    try {
      queue = await this.#queues.resolve("email");
    } catch (error) {
      if (error instanceof SymphonyAwsError) throw new SymphonyDispatchError(message.emailId, "none", error);
      throw error;
    }
    const flags = await this.evaluateFlags("email");
    const email = this.#prepareEmail(0, message, queue, flags, new Date());
    const outcome = (await this.#dispatchChunk(queue, [email]))[0]!;
    const { emailId } = message;
    switch (outcome.kind) {
      case "dispatched":
        return { emailId, route: "symphony", messageId: outcome.messageId, status: "claimed", redispatched: outcome.redispatched };
      case "legacy":
        return { emailId, route: "legacy", messageId: null, status: "queued", redispatched: false };
      case "duplicate":
        return { emailId, route: "duplicate", messageId: null, status: outcome.status, redispatched: false };
      case "failed":
        throw outcome.error;
    }
  }

  /**
   * Dispatches many emails: each validated, routed by the flags (read once for the
   * batch) and its rollout bucket; then ten at a time, their rows written and the
   * symphony ones put on the queue, before the next ten. Never throws for one email: each
   * that was not dispatched is in `failed`, with where it is.
   *
   * @throws SymphonyAwsError only when the email queue cannot be found (nothing written).
   */
  async dispatchEmailQueueBatch(emails: readonly EmailMessage[]): Promise<EmailBatchDispatch> {
    if (!Array.isArray(emails)) {
      throw new SymphonyValidationError("batch", [{ field: "emails", reason: "must be an array" }]);
    }
    const outcomes: Array<EmailOutcome | undefined> = new Array(emails.length);
    const ids: string[] = emails.map(idOf);

    // Validated; an id given again later in the batch follows its first email's fate.
    const leaders: Array<{ index: number; message: EmailMessage }> = [];
    const firstById = new Map<string, { index: number; message: EmailMessage }>();
    const followers: Array<{ index: number; leader: number }> = [];
    emails.forEach((input, index) => {
      let message: EmailMessage;
      try {
        message = validateEmailMessage(input);
      } catch (error) {
        if (!(error instanceof SymphonyValidationError)) throw error;
        outcomes[index] = { kind: "failed", error };
        return;
      }
      const first = firstById.get(message.emailId);
      if (first === undefined) {
        firstById.set(message.emailId, { index, message });
        leaders.push({ index, message });
        return;
      }
      const differing = MESSAGE_FIELDS.filter((field) => first.message[field] !== message[field]);
      if (differing.length > 0) {
        const error = new SymphonyConflictError(message.emailId, differing, `is given earlier in this batch (at ${first.index})`);
        outcomes[index] = { kind: "failed", error };
      } else {
        followers.push({ index, leader: first.index });
      }
    });

    if (leaders.length > 0) {
      const queue = await this.#queues.resolve("email");
      const flags = await this.evaluateFlags("email");
      const now = new Date();
      const prepared: PreparedEmail[] = [];
      for (const { index, message } of leaders) {
        try {
          prepared.push(this.#prepareEmail(index, message, queue, flags, now));
        } catch (error) {
          if (!(error instanceof SymphonyValidationError)) throw error;
          outcomes[index] = { kind: "failed", error };
        }
      }
      for (let start = 0; start < prepared.length; start += BATCH_CHUNK) {
        const chunk = prepared.slice(start, start + BATCH_CHUNK);
        const settled = await this.#dispatchChunk(queue, chunk);
        chunk.forEach((email, position) => (outcomes[email.index] = settled[position]));
      }
    }
    for (const { index, leader } of followers) {
      const first = outcomes[leader]!;
      outcomes[index] =
        first.kind === "dispatched"
          ? { kind: "duplicate", status: "claimed" }
          : first.kind === "legacy"
            ? { kind: "duplicate", status: "queued" }
            : first;
    }

    const result: EmailBatchDispatch = { dispatched: [], legacy: [], duplicates: [], failed: [] };
    for (let index = 0; index < emails.length; index += 1) {
      const emailId = ids[index]!;
      const outcome = outcomes[index];
      if (outcome === undefined) {
        // Never expected; reported rather than dropped.
        result.failed.push({ index, emailId, reason: "no outcome was recorded", emailLeft: "unknown" });
        continue;
      }
      switch (outcome.kind) {
        case "dispatched":
          result.dispatched.push({ emailId, messageId: outcome.messageId, redispatched: outcome.redispatched });
          break;
        case "legacy":
          result.legacy.push(emailId);
          break;
        case "duplicate":
          result.duplicates.push({ emailId, status: outcome.status });
          break;
        case "failed":
          result.failed.push({ index, emailId, reason: outcome.error.message, emailLeft: outcome.error.emailLeft });
          break;
      }
    }
    return result;
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
    const wire = this.#emailWire(message, now, nowSeconds);
    // Checked on every route, for this envelope and for the one the tick makes of the
    // same row when it sends it (a legacy email, a released or abandoned claim).
    const tickSize = tickEnvelopeSize("EmailMessage", message, message.emailId);
    const size = Math.max(wire.size, tickSize);
    if (size > queue.maxMessageBytes) {
      const whose = tickSize > wire.size ? " as the scheduled function would send it" : "";
      throw new SymphonyValidationError("EmailMessage", [
        {
          field: largestField(message),
          reason: `makes the message ${size} bytes${whose}, over the queue's limit of ${queue.maxMessageBytes} bytes (MaximumMessageSize)`,
        },
      ]);
    }
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
    return { index, message, route, claimToken, item, wire, now };
  }

  /** The email's envelope, due at `dueAtSeconds` (its row's `dueAt`). */
  #emailWire(message: EmailMessage, now: Date, dueAtSeconds: number): OutgoingMessage {
    return outgoing(
      envelope("EmailMessage", message.emailId, message, {
        correlationId: message.emailId,
        createdAt: now,
        source: this.#config.source,
        dueAt: new Date(dueAtSeconds * 1000),
      }),
    );
  }

  /**
   * Writes the rows of up to ten emails, then puts the symphony ones' envelopes on the
   * queue (with those of rows found claimed with the same content), and gives back the
   * claim of each the queue did not take. One outcome per email, in order.
   */
  async #dispatchChunk(queue: ResolvedQueue, emails: readonly PreparedEmail[]): Promise<EmailOutcome[]> {
    const table = this.#config.tables.emails;
    const outcomes: EmailOutcome[] = new Array(emails.length);
    const writes = await Promise.all(emails.map((email) => createRow(this.#dynamodb, table, email.item)));
    const toSend: Array<{ position: number; email: PreparedEmail; wire: OutgoingMessage; redispatch: boolean }> = [];
    writes.forEach((written, position) => {
      const email = emails[position]!;
      const { emailId } = email.message;
      switch (written.kind) {
        case "created":
          if (email.route === "legacy") outcomes[position] = { kind: "legacy" };
          else toSend.push({ position, email, wire: email.wire, redispatch: false });
          return;
        case "refused":
          outcomes[position] = { kind: "failed", error: new SymphonyDispatchError(emailId, "none", written.error) };
          return;
        case "ambiguous":
          outcomes[position] = { kind: "failed", error: new SymphonyDispatchError(emailId, "unknown", written.error) };
          return;
        case "exists": {
          const { existing, differingFields } = written;
          if (existing === undefined || differingFields.length > 0) {
            outcomes[position] = { kind: "failed", error: new SymphonyConflictError(emailId, differingFields) };
            return;
          }
          const status = existing["status"]?.S ?? "";
          if (written.afterAmbiguousTry && email.route === "legacy" && status === "queued") {
            // A queued row carries no token: after a try whose answer was lost, the row
            // found is this call's own (or an identical one): the tick sends it either way.
            outcomes[position] = { kind: "legacy" };
          } else if (status === "claimed" && email.route === "symphony") {
            // Claimed, never sent or not yet taken: its envelope goes again; the worker's
            // claim and begin_send let one delivery send.
            const dueAt = Number(existing["dueAt"]?.N);
            const dueAtSeconds = Number.isSafeInteger(dueAt) ? dueAt : Math.floor(email.now.getTime() / 1000);
            toSend.push({ position, email, wire: this.#emailWire(email.message, email.now, dueAtSeconds), redispatch: true });
          } else {
            outcomes[position] = { kind: "duplicate", status };
          }
          return;
        }
      }
    });
    if (toSend.length === 0) return outcomes;

    const sent = await this.#queues.send(
      queue,
      toSend.map((entry) => entry.wire),
    );
    await Promise.all(
      toSend.map(async ({ position, email, redispatch }, sentIndex) => {
        const result: SendResult = sent[sentIndex] ?? {
          ok: false,
          reason: "not sent",
          error: new SymphonyAwsError("SQS.SendMessageBatch", queue.url, new Error("not sent")),
          notSent: true,
        };
        if (result.ok) {
          outcomes[position] = { kind: "dispatched", messageId: result.messageId, redispatched: redispatch };
          return;
        }
        // A claim this call made is given back, for the next tick. One it found (a
        // redispatch) is not its to give: the row stays as found, claimed.
        const left: EmailLeft = redispatch
          ? "claimed"
          : await releaseClaim(
              this.#dynamodb,
              table,
              email.message.emailId,
              email.claimToken!,
              // Refused, the release leaves the claim as it was; after a send that may
              // have gone, a worker may have moved the row since.
              result.notSent ? "claimed" : "unknown",
            );
        outcomes[position] = { kind: "failed", error: new SymphonyDispatchError(email.message.emailId, left, result.error) };
      }),
    );
    return outcomes;
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
    throw sent?.error ?? new SymphonyAwsError("SQS.SendMessageBatch", queue.url, new Error("no answer"));
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


